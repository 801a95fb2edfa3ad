import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  CopyTextParser,
  escapeCopyText,
  parseLines,
  unescapeCopyText,
  type CopyRow,
} from '../../../src/snapshot/copy-text.ts';
import { CdcError } from '../../../src/core/errors.ts';

const value = fc.oneof(
  fc.constant(null),
  fc.string({ unit: 'grapheme' }),
  // Bias towards the characters that are escaped.
  fc.string({ unit: fc.constantFrom('\\', '\n', '\r', '\t', '\b', '\f', '\v', 'N', 'x', '0', 'a', 'é', '😀') }),
);

function encodeRows(rows: readonly CopyRow[]): string {
  return rows.map((r) => `${r.map(escapeCopyText).join('\t')}\n`).join('');
}

test('escape then unescape is the identity for every string', () => {
  fc.assert(
    fc.property(fc.string({ unit: 'binary' }), (s) => {
      assert.equal(unescapeCopyText(escapeCopyText(s)), s);
    }),
    { numRuns: 2000 },
  );
});

test('rows survive encoding and parsing, whatever the chunk boundaries', () => {
  fc.assert(
    fc.property(
      fc
        .integer({ min: 1, max: 5 })
        .chain((width) =>
          fc.tuple(
            fc.constant(width),
            fc.array(fc.array(value, { minLength: width, maxLength: width }), { maxLength: 8 }),
          ),
        ),
      fc.array(fc.nat(), { maxLength: 6 }),
      ([width, rows], cuts) => {
        const bytes = Buffer.from(encodeRows(rows), 'utf8');
        // Cut anywhere, including inside multi-byte characters and escapes.
        const points = [...new Set(cuts.map((c) => (bytes.length === 0 ? 0 : c % bytes.length)))].sort((a, b) => a - b);
        const parser = new CopyTextParser(width);
        const out: CopyRow[] = [];
        let at = 0;
        for (const p of [...points, bytes.length]) {
          parser.push(bytes.subarray(at, p), out);
          at = p;
        }
        parser.end();
        assert.deepEqual(out, rows);
        assert.equal(parser.rows, rows.length);
      },
    ),
    { numRuns: 1000 },
  );
});

test('NULL, empty string and the escapes COPY writes', () => {
  const out: CopyRow[] = [];
  parseLines('\\N\t\t\\\\N\ta\\tb\\nc\\\\\n', 4, out);
  assert.deepEqual(out, [[null, '', '\\N', 'a\tb\nc\\']]);
});

test('the escapes only COPY FROM writes: octal, hex (as UTF-8 bytes), other characters as themselves', () => {
  assert.equal(unescapeCopyText('\\101\\x42\\x4'), 'AB\x04');
  assert.equal(unescapeCopyText('\\303\\251t\\xc3\\xa9'), 'été');
  assert.equal(unescapeCopyText('\\q\\x\\N'), 'qxN');
  assert.equal(unescapeCopyText('\\1012'), 'A2');
});

test('malformed input is a typed error', () => {
  const bad = (text: string, width: number): void => {
    assert.throws(
      () => parseLines(text, width, []),
      (e: unknown) => e instanceof CdcError && e.code === 'SOURCE_QUERY_FAILED',
      JSON.stringify(text),
    );
  };
  bad('a\tb\n', 1);
  bad('a\n', 2);
  bad('a\tb\tc\n', 2);
  bad('x\n', 0);
  bad('a\\\n', 1);
  const parser = new CopyTextParser(1);
  parser.push(Buffer.from('a\nb'), []);
  assert.throws(() => parser.end(), CdcError);
});

test('zero-column rows are empty lines', () => {
  const out: CopyRow[] = [];
  parseLines('\n\n', 0, out);
  assert.deepEqual(out, [[], []]);
});
