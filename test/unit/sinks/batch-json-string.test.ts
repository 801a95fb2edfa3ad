/**
 * EventBatchBuilder.jsonString writes exactly JSON.stringify's bytes for any string: short ones
 * quoted in place, long ones (over 96 characters) encoded in place and checked, anything needing an
 * escape (control characters, quote, backslash, lone surrogates) through JSON.stringify.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { TopicRegistry } from '../../../src/sinks/batch.ts';
import { EventBatchBuilder } from '../../../src/sinks/batch-builder.ts';

function written(s: string): string {
  const builder = new EventBatchBuilder(new TopicRegistry(), 16);
  builder.startEvent();
  builder.jsonString(s);
  builder.endEvent(0);
  return builder.take(1).line(0);
}

/** Characters that take every branch: escapes, multi-byte UTF-8, surrogate pairs and halves, U+FFFD. */
const unit = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('a', 'Z', '0', ' ', '~', '\u007f') },
  { weight: 1, arbitrary: fc.constantFrom('"', '\\', '\n', '\t', '\u0000', '\u001f') },
  { weight: 1, arbitrary: fc.constantFrom('é', '€', '\u2028', '\ufffd', '😀', '\ud800', '\udfff', '\uffff') },
);

test('jsonString equals JSON.stringify for strings short and long', () => {
  fc.assert(
    fc.property(fc.string({ unit, minLength: 0, maxLength: 400 }), (s) => {
      assert.equal(written(s), JSON.stringify(s));
    }),
    { numRuns: 3000 },
  );
});

test('long strings with nothing to escape (the in-place path) equal JSON.stringify', () => {
  const clean = fc.constantFrom('a', ' ', '~', '\u007f', 'é', '€', '\u2028', '😀', '\uffff');
  fc.assert(
    fc.property(fc.string({ unit: clean, minLength: 97, maxLength: 2000 }), (s) => {
      assert.equal(written(s), JSON.stringify(s));
    }),
    { numRuns: 500 },
  );
});

test('a long string with nothing to escape, and one with an escape at its very end', () => {
  const long = 'x'.repeat(8000) + 'é😀';
  assert.equal(written(long), JSON.stringify(long));
  assert.equal(written(`${long}"`), JSON.stringify(`${long}"`));
  assert.equal(written(`${long}\ud800`), JSON.stringify(`${long}\ud800`));
});
