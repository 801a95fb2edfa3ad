/**
 * verify's sink side and comparison without a server: 'r' event lines written by the real
 * TableSerializer (Debezium, flat, json-with-schema) into a JSONL file, replayed by JsonlSinkReader
 * up to an LSN and a durable length (a torn tail and later events ignored), and compared with the
 * same rows through TableComparer.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile, appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseConfig } from '../../../src/config.ts';
import { readIdHead, TableSerializer } from '../../../src/envelope/json.ts';
import type { TopicNaming } from '../../../src/envelope/topics.ts';
import { RowWriter } from '../../../src/envelope/row-writer.ts';
import { TopicRegistry } from '../../../src/sinks/batch.ts';
import { EventBatchBuilder } from '../../../src/sinks/batch-builder.ts';
import { backfillTableSchema } from '../../../src/snapshot/keys.ts';
import type { BackfillTable } from '../../../src/snapshot/query.ts';
import type { CopyRow } from '../../../src/snapshot/copy-text.ts';
import { TableComparer } from '../../../src/verify/compare.ts';
import { emptyScan, scanEventLine } from '../../../src/verify/event-scan.ts';
import { JsonlSinkReader } from '../../../src/verify/jsonl-reader.ts';
import { KeyedState, KeylessState } from '../../../src/verify/sink-state.ts';
import type { SourceTable } from '../../../src/verify/source-snapshot.ts';

const values = parseConfig({ source: { url: 'postgres://u@h/db' } }).values;

function table(keyed: boolean): BackfillTable {
  const column = (name: string, typeOid: number, typeName: string) => ({
    name,
    typeOid,
    typeMod: -1,
    typeSchema: 'pg_catalog',
    typeName,
    collatable: typeOid === 25,
  });
  return {
    oid: 1,
    schema: 'public',
    table: 't',
    columns: [column('id', 23, 'int4'), column('name', 25, 'text'), column('n', 1700, 'numeric')],
    keyIndexes: keyed ? [0] : [],
  };
}

function naming(format: 'json' | 'json-with-schema', type: 'debezium' | 'flat'): TopicNaming {
  return { prefix: 'db', database: 'db', naming: 'prefix', envelope: { format, unavailableValue: 'X', type } };
}

function source(keyed: boolean, n: TopicNaming): SourceTable {
  const schema = backfillTableSchema(table(keyed), () => undefined, values);
  const settings = n.envelope ?? { format: 'json' as const, unavailableValue: 'X' };
  return {
    schema,
    rows: new RowWriter(schema, schema, undefined, undefined, settings),
    keyed,
    select: '',
    columnIndex: new Map(schema.columns.map((c, i) => [c.name, i])),
  };
}

/** 'r' event lines at `lsn` for `rows`, as the initial snapshot writes them. */
function readLines(keyed: boolean, n: TopicNaming, rows: CopyRow[], lsn: number): string {
  const schema = backfillTableSchema(table(keyed), () => undefined, values);
  const registry = new TopicRegistry();
  const serializer = new TableSerializer(schema, n, registry);
  const builder = new EventBatchBuilder(registry);
  const lsnText = `0/${lsn.toString(16).toUpperCase()}`;
  const tail = serializer.readTail('true', lsn, lsnText, 1_700_000_000_000);
  rows.forEach((row, i) => {
    builder.startEvent();
    serializer.writeRead(builder, row, readIdHead(`${lsnText}:r:0:`), i, tail);
    builder.endEvent(serializer.topicNumber);
  });
  const batch = builder.take(builder.count);
  return batch.data.toString('utf8');
}

const ROWS: CopyRow[] = [
  ['1', 'a', '1.50'],
  ['2', 'b\tc"é', null],
  ['3', 'c', '-3'],
];

async function withDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-verify-unit-'));
  try {
    await body(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

for (const [format, type] of [
  ['json', 'debezium'],
  ['json-with-schema', 'debezium'],
  ['json', 'flat'],
  ['json-with-schema', 'flat'],
] as const) {
  test(`${format} ${type}: replay equals the source rows; edits are missing, different, extra keys`, async () => {
    await withDir(async (dir) => {
      const n = naming(format, type);
      const file = path.join(dir, 'db.public.t.jsonl');
      const text = readLines(true, n, ROWS, 0x100);
      await writeFile(file, text);
      const durable = Buffer.byteLength(text);
      // Past the durable length: a complete line and a torn one, never sink content.
      await appendFile(file, readLines(true, n, [['9', 'late', '0']], 0x100) + '{"id":"0/100:r:0:7","top');
      const reader = new JsonlSinkReader({
        dir,
        durable: new Map([['db.public.t', durable]]),
        fileName: (t) => `${t}.jsonl`,
      });
      const replay = async (upTo: number): Promise<KeyedState> => {
        const state = new KeyedState();
        const outcome = await reader.replayTable(
          {
            name: 'public.t',
            topic: 'db.public.t',
            format: { withSchema: format === 'json-with-schema', flat: type === 'flat' },
            placeholderJson: Buffer.from('"X"'),
          },
          upTo,
          state,
        );
        assert.equal(outcome.kind, 'replayed');
        if (outcome.kind === 'replayed') assert.equal(outcome.malformed, 0);
        return state;
      };
      const state = await replay(0x200);
      assert.equal(state.size, 3, 'the late line and the torn tail are not read');
      const equal = new TableComparer('public.t', source(true, n), state, 10, false);
      equal.add(ROWS);
      const same = equal.finish();
      assert.deepEqual([same.missing, same.extra, same.different, same.sourceRows], [0, 0, 0, 3]);

      // Events at or after the verify's LSN do not count.
      assert.equal((await replay(0x100)).size, 0);

      const compare = new TableComparer('public.t', source(true, n), await replay(0x200), 10, true);
      compare.add([
        ['1', 'a', '1.5'],
        ['2', 'b\tc"é', null],
        ['4', 'd', '4'],
      ]);
      const result = compare.finish();
      assert.deepEqual(result.differentKeys, ['{"id":1}'], 'numeric 1.5 is not 1.50');
      assert.deepEqual(result.missingKeys, ['{"id":4}']);
      assert.deepEqual(result.extraKeys, ['{"id":3}']);
      assert.equal(result.sourceValues['{"id":4}'], '{"id":4,"name":"d","n":"4"}');
    });
  });
}

test('a keyless table compares as a multiset of rows', async () => {
  await withDir(async (dir) => {
    const n = naming('json', 'debezium');
    const rows: CopyRow[] = [
      ['1', 'a', '1'],
      ['1', 'a', '1'],
      ['2', 'b', '2'],
    ];
    const text = readLines(false, n, rows, 0x10);
    await writeFile(path.join(dir, 'db.public.t.jsonl'), text);
    const reader = new JsonlSinkReader({
      dir,
      durable: new Map([['db.public.t', Buffer.byteLength(text)]]),
      fileName: (t) => `${t}.jsonl`,
    });
    const state = new KeylessState();
    await reader.replayTable(
      {
        name: 'public.t',
        topic: 'db.public.t',
        format: { withSchema: false, flat: false },
        placeholderJson: Buffer.from('"X"'),
      },
      0x20,
      state,
    );
    assert.equal(state.size, 3);
    const compare = new TableComparer('public.t', source(false, n), state, 10, false);
    compare.add([
      ['1', 'a', '1'],
      ['2', 'b', '2'],
      ['2', 'b', '2'],
    ]);
    const result = compare.finish();
    assert.deepEqual([result.missing, result.extra, result.different], [1, 1, 0]);
  });
});

test('a file the checkpoint lists but that is gone is an absent table; a malformed line is counted', async () => {
  await withDir(async (dir) => {
    const reader = new JsonlSinkReader({ dir, durable: new Map([['db.public.t', 10]]), fileName: (t) => `${t}.jsonl` });
    const format = { withSchema: false, flat: false };
    const outcome = await reader.replayTable(
      { name: 'public.t', topic: 'db.public.t', format, placeholderJson: Buffer.from('"X"') },
      1,
      new KeyedState(),
    );
    assert.equal(outcome.kind, 'absent');
    await writeFile(path.join(dir, 'db.public.t.jsonl'), 'not json\n');
    const bad = await reader.replayTable(
      { name: 'public.t', topic: 'db.public.t', format, placeholderJson: Buffer.from('"X"') },
      1,
      new KeyedState(),
    );
    assert.ok(bad.kind === 'replayed' && bad.malformed === 1);
    const scan = emptyScan();
    assert.equal(scanEventLine(Buffer.from('{"id":"zz"}'), 0, 11, format, scan), false);
  });
});
