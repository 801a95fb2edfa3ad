/**
 * The chunked comparison (src/verify/chunks.ts, keyed-table.ts) without a server: per-chunk sums
 * are order-independent and change with any one row; the sink's key hash -> row hash table keeps
 * the last row of each key through updates, deletes, truncates and growth; and a verify of a
 * 30,000-row table whose JSONL output lost one line and had one value edited drills into exactly
 * the chunks of those two keys, and names them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
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
import { chunkCountFor, chunkOf, ChunkSums, keyHashOf, RowHashTable } from '../../../src/verify/chunks.ts';
import { JsonlSinkReader } from '../../../src/verify/jsonl-reader.ts';
import { drillPasses, verifyKeyedTable } from '../../../src/verify/keyed-table.ts';
import type { SourceTable } from '../../../src/verify/source-snapshot.ts';

const values = parseConfig({ source: { url: 'postgres://u@h/db' } }).values;
const naming: TopicNaming = {
  prefix: 'db',
  database: 'db',
  naming: 'prefix',
  envelope: { format: 'json', unavailableValue: 'X', type: 'debezium' },
};

function schema(): ReturnType<typeof backfillTableSchema> {
  const column = (name: string, typeOid: number, typeName: string) => ({
    name,
    typeOid,
    typeMod: -1,
    typeSchema: 'pg_catalog',
    typeName,
    collatable: typeOid === 25,
  });
  const table: BackfillTable = {
    oid: 1,
    schema: 'public',
    table: 't',
    columns: [column('id', 20, 'int8'), column('name', 25, 'text')],
    keyIndexes: [0],
  };
  return backfillTableSchema(table, () => undefined, values);
}

function source(): SourceTable {
  const s = schema();
  const settings = naming.envelope ?? { format: 'json' as const, unavailableValue: 'X' };
  return {
    schema: s,
    rows: new RowWriter(s, s, undefined, undefined, settings),
    keyed: true,
    select: '',
    columnIndex: new Map(s.columns.map((c, i) => [c.name, i])),
  };
}

/** 'r' event lines at LSN 0/100 for `rows`, as the initial snapshot writes them. */
function readLines(rows: readonly CopyRow[]): string[] {
  const registry = new TopicRegistry();
  const serializer = new TableSerializer(schema(), naming, registry);
  const builder = new EventBatchBuilder(registry);
  const tail = serializer.readTail('true', 0x100, '0/100', 1_700_000_000_000);
  rows.forEach((row, i) => {
    builder.startEvent();
    serializer.writeRead(builder, row, readIdHead('0/100:r:0:'), i, tail);
    builder.endEvent(serializer.topicNumber);
  });
  return builder.take(builder.count).data.toString('utf8').split('\n').slice(0, rows.length);
}

const keyHash = (text: string): number => {
  const bytes = Buffer.from(text);
  return keyHashOf(bytes, 0, bytes.length);
};

test('chunk sums: order does not matter; one changed, missing or extra row changes its chunk only', () => {
  const entries = Array.from({ length: 5000 }, (_, i) => [keyHash(`{"id":${i}}`), i * 7919 + 1] as const);
  const chunks = chunkCountFor(entries.length * 10);
  const forward = new ChunkSums(chunks);
  for (const [k, r] of entries) forward.add(k, r);
  const backward = new ChunkSums(chunks);
  for (const [k, r] of [...entries].reverse()) backward.add(k, r);
  assert.deepEqual(forward.differing(backward), []);

  const [k0, r0] = entries[42] as readonly [number, number];
  const changed = new ChunkSums(chunks);
  for (const [k, r] of entries) changed.add(k, k === k0 ? r0 + 2 ** 40 : r);
  assert.deepEqual(forward.differing(changed), [chunkOf(k0, chunks)]);

  const missing = new ChunkSums(chunks);
  for (const [k, r] of entries) if (k !== k0) missing.add(k, r);
  assert.deepEqual(forward.differing(missing), [chunkOf(k0, chunks)]);

  // Two rows swapping their row hashes: the sums mix key and row, so both chunks differ.
  const [k1, r1] = entries[43] as readonly [number, number];
  const swapped = new ChunkSums(chunks);
  for (const [k, r] of entries) swapped.add(k, k === k0 ? r1 : k === k1 ? r0 : r);
  assert.deepEqual(forward.differing(swapped), [...new Set([chunkOf(k0, chunks), chunkOf(k1, chunks)])].sort());
});

test('row hash table: last row per key through updates, deletes, a truncate and growth', () => {
  const table = new RowHashTable(16);
  const expected = new Map<number, number>();
  for (let i = 0; i < 50_000; i++) {
    const k = keyHash(`{"id":${i % 20_000}}`);
    if (i % 11 === 5) {
      table.delete(k);
      expected.delete(k);
    } else {
      table.set(k, i + 1);
      expected.set(k, i + 1);
    }
  }
  assert.equal(table.size, expected.size);
  for (const [k, r] of expected) assert.equal(table.get(k), r);
  const chunks = chunkCountFor(expected.size);
  const direct = new ChunkSums(chunks);
  for (const [k, r] of expected) direct.add(k, r);
  assert.deepEqual(table.sums(chunks).differing(direct), []);
  table.clear();
  assert.equal(table.size, 0);
  assert.equal(table.get(keyHash('{"id":1}')), undefined);
  table.set(keyHash('{"id":1}'), 5);
  assert.equal(table.get(keyHash('{"id":1}')), 5);
});

test('drill passes: differing chunks grouped under a key budget', () => {
  const counts = new Float64Array([5, 5, 20, 5, 5]);
  assert.deepEqual(drillPasses([0, 1, 2, 3, 4], counts, 10), [[0, 1], [2], [3, 4]]);
  assert.deepEqual(drillPasses([], counts, 10), []);
});

test('a verify of 30,000 rows drills into the chunks of one lost line and one edited value only', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-verify-chunks-'));
  try {
    const rows: CopyRow[] = Array.from({ length: 30_000 }, (_, i) => [String(i + 1), `name-${i + 1}`]);
    const lines = readLines(rows)
      .filter((line) => !line.includes('"key":{"id":888}'))
      .map((line) => (line.includes('"key":{"id":777}') ? line.replace('"name-777"', '"name-7770"') : line));
    const text = `${lines.join('\n')}\n`;
    await writeFile(path.join(dir, 'db.public.t.jsonl'), text);
    const reader = new JsonlSinkReader({
      dir,
      durable: new Map([['db.public.t', Buffer.byteLength(text)]]),
      fileName: (t) => `${t}.jsonl`,
    });
    let sourcePasses = 0;
    const drilled: number[][] = [];
    const { comparison, outcome } = await verifyKeyedTable({
      name: 'public.t',
      source: source(),
      streamSource: (onRows) => {
        sourcePasses++;
        for (let i = 0; i < rows.length; i += 4096) onRows(rows.slice(i, i + 4096));
        return Promise.resolve();
      },
      reader,
      replay: {
        name: 'public.t',
        topic: 'db.public.t',
        format: { withSchema: false, flat: false },
        placeholderJson: Buffer.from('"X"'),
      },
      upTo: 0x200,
      estimate: 30_000,
      limit: 10,
      showValues: false,
      onDrill: (chunks) => drilled.push([...chunks]),
    });
    assert.equal(outcome.kind, 'replayed');
    const chunks = chunkCountFor(30_000);
    assert.equal(chunks, 4);
    const expected = [...new Set([chunkOf(keyHash('{"id":777}'), chunks), chunkOf(keyHash('{"id":888}'), chunks)])];
    assert.deepEqual(drilled, [expected.sort()]);
    assert.equal(sourcePasses, 2, 'one pass for the sums, one for the drill-down');
    assert.equal(comparison.chunks, 4);
    assert.equal(comparison.chunksDifferent, expected.length);
    assert.deepEqual([comparison.sourceRows, comparison.sinkRows], [30_000, 29_999]);
    assert.deepEqual(
      [comparison.missing, comparison.extra, comparison.different],
      [1, 0, 1],
      JSON.stringify(comparison),
    );
    assert.deepEqual(comparison.missingKeys, ['{"id":888}']);
    assert.deepEqual(comparison.differentKeys, ['{"id":777}']);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the JSONL reader replays a line longer than its read buffer and lines across reads', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-verify-chunks-'));
  try {
    const rows: CopyRow[] = [
      ['1', 'x'.repeat(9_000_000)],
      ...Array.from({ length: 50_000 }, (_, i) => [String(i + 2), 'y']),
    ];
    const text = `${readLines(rows).join('\n')}\n`;
    await writeFile(path.join(dir, 'db.public.t.jsonl'), text);
    const reader = new JsonlSinkReader({
      dir,
      durable: new Map([['db.public.t', Buffer.byteLength(text)]]),
      fileName: (t) => `${t}.jsonl`,
    });
    const table = new RowHashTable();
    const outcome = await reader.replayTable(
      {
        name: 'public.t',
        topic: 'db.public.t',
        format: { withSchema: false, flat: false },
        placeholderJson: Buffer.from('"X"'),
      },
      0x200,
      table,
    );
    assert.equal(outcome.kind, 'replayed');
    if (outcome.kind === 'replayed') assert.deepEqual([outcome.events, outcome.malformed], [50_001, 0]);
    assert.equal(table.size, 50_001);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
