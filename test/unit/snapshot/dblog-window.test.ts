import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ChunkWindow, reconcileChunk, type WindowEvent } from '../../../src/snapshot/dblog-window.ts';
import { keyText } from '../../../src/snapshot/keys.ts';
import { CdcError } from '../../../src/core/errors.ts';
import { UNCHANGED_TOAST } from '../../../src/protocol/messages.ts';
import type { TableSchema } from '../../../src/source/relations.ts';

interface Row {
  key: string;
  value: number;
}
const keyOf = (r: Row): string => r.key;
const row = (key: string, value = 0): Row => ({ key, value });
const change = (...keys: string[]): WindowEvent => ({ kind: 'change', keys });

test('rows whose key changed in the window are dropped, the rest survive in chunk order', () => {
  const result = reconcileChunk([row('a'), row('b'), row('c'), row('d')], keyOf, [
    change('b'),
    change('x'),
    change('d', 'e'),
  ]);
  assert.deepEqual(result, { kind: 'emit', survivors: [row('a'), row('c')], dropped: 2 });
});

test('events before and after the chunk read count the same', () => {
  const w = new ChunkWindow(keyOf);
  w.observe(change('a'));
  w.setChunk([row('a'), row('b'), row('c')]);
  w.observe(change('c'));
  assert.deepEqual(w.close(), { kind: 'emit', survivors: [row('b')], dropped: 2 });
  assert.equal(w.isOpen, false);
});

test('keys are compared exactly', () => {
  const result = reconcileChunk([row('{"id":"a"}'), row('{"id":"A"}'), row('{"id":"a "}')], keyOf, [
    change('{"id":"a"}'),
  ]);
  assert.deepEqual(result.kind === 'emit' ? result.survivors.map(keyOf) : [], ['{"id":"A"}', '{"id":"a "}']);
});

test('a truncate in the window drops the whole chunk, before or after the read', () => {
  assert.deepEqual(reconcileChunk([row('a'), row('b')], keyOf, [{ kind: 'truncate' }, change('z')]), {
    kind: 'emit',
    survivors: [],
    dropped: 2,
  });
  const w = new ChunkWindow(keyOf);
  w.observe({ kind: 'truncate' });
  w.setChunk([row('a')]);
  assert.deepEqual(w.close(), { kind: 'emit', survivors: [], dropped: 1 });
});

test('an event without a usable key makes the window ask for the chunk again', () => {
  assert.equal(reconcileChunk([row('a')], keyOf, [{ kind: 'unknown-key' }]).kind, 'retry');
});

test('misuse is an internal error', () => {
  const w = new ChunkWindow(keyOf);
  assert.throws(() => w.close(), CdcError); // no chunk yet
  assert.throws(() => w.observe(change('a')), CdcError); // closed
  const twice = new ChunkWindow(keyOf);
  twice.setChunk([]);
  assert.throws(() => twice.setChunk([]), CdcError);
  assert.throws(() => new ChunkWindow(keyOf).setChunk([row('a'), row('a')]), CdcError);
});

test('keyText: the event key JSON from a tuple; undefined when it cannot be known', () => {
  const encode = (text: string): string => text;
  const table: TableSchema = {
    relationId: 1,
    schema: 's',
    table: 't',
    replicaIdentity: 'd',
    columns: [
      { name: 'v', typeOid: 25, typeMod: -1, encode: (t) => JSON.stringify(t), plainString: true },
      { name: 'id', typeOid: 23, typeMod: -1, encode, plainString: false },
      { name: 'r"g', typeOid: 25, typeMod: -1, encode: (t) => JSON.stringify(t), plainString: true },
    ],
    keyIndexes: [1, 2],
  };
  assert.equal(keyText(table, ['x', '42', 'eu\n']), '{"id":42,"r\\"g":"eu\\n"}');
  assert.equal(keyText(table, ['x', '42', UNCHANGED_TOAST]), undefined);
  assert.equal(keyText({ ...table, keyIndexes: [] }, ['x', '1', 'y']), undefined);
});

// ---- The DBLog property: a whole incremental backfill interleaved with random writes. ----

type Op =
  | { kind: 'set'; key: number; value: number }
  | { kind: 'delete'; key: number }
  | { kind: 'move'; from: number; to: number }
  | { kind: 'truncate' };
type LogEntry =
  | { kind: 'change'; keys: number[]; apply: (m: Map<number, number>) => void }
  | { kind: 'truncate' }
  | { kind: 'low'; chunk: number }
  | { kind: 'high'; chunk: number };

const KEYS = 12;
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('set' as const),
      key: fc.integer({ min: 0, max: KEYS - 1 }),
      value: fc.integer({ min: 0, max: 99 }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({ kind: fc.constant('delete' as const), key: fc.integer({ min: 0, max: KEYS - 1 }) }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('move' as const),
      from: fc.integer({ min: 0, max: KEYS - 1 }),
      to: fc.integer({ min: 0, max: KEYS - 1 }),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: 'truncate' as const }) },
);

const scenario = fc.record({
  initial: fc.dictionary(fc.integer({ min: 0, max: KEYS - 1 }).map(String), fc.integer({ min: 0, max: 99 })),
  chunkSize: fc.integer({ min: 1, max: 5 }),
  // true: the next write happens; false: the backfill takes its next step (L, read, H).
  schedule: fc.array(fc.tuple(fc.boolean(), opArb), { maxLength: 60 }),
  // Whether the consumer hands the chunk to the window at L (before the window's events) or at H.
  chunkEarly: fc.boolean(),
});

type Scenario = typeof scenario extends fc.Arbitrary<infer S> ? S : never;

/** Runs the scenario; returns the replayed map and the table. `naive` skips the window (must fail). */
function simulate(s: Scenario, naive: boolean): { replay: Map<number, number>; table: Map<number, number> } {
  const table = new Map<number, number>(Object.entries(s.initial).map(([k, v]) => [Number(k), v]));
  const log: LogEntry[] = [];
  const chunks: Row[][] = [];
  const write = (op: Op): void => {
    switch (op.kind) {
      case 'set': {
        const { key, value } = op;
        table.set(key, value);
        log.push({ kind: 'change', keys: [key], apply: (m) => m.set(key, value) });
        return;
      }
      case 'delete': {
        if (!table.has(op.key)) return;
        const { key } = op;
        table.delete(key);
        log.push({ kind: 'change', keys: [key], apply: (m) => m.delete(key) });
        return;
      }
      case 'move': {
        const { from, to } = op;
        const value = table.get(from);
        if (value === undefined || table.has(to) || from === to) return;
        table.delete(from);
        table.set(to, value);
        log.push({ kind: 'change', keys: [from, to], apply: (m) => (m.delete(from), m.set(to, value)) });
        return;
      }
      case 'truncate':
        table.clear();
        log.push({ kind: 'truncate' });
        return;
    }
  };
  // The backfill driver: phase 0 writes L, 1 reads the chunk, 2 writes H.
  let phase = 0;
  let after = -1;
  let done = false;
  const step = (): void => {
    // After the last chunk's H, no new chunk starts.
    if (done && phase === 0) return;
    if (phase === 0) log.push({ kind: 'low', chunk: chunks.length });
    else if (phase === 1) {
      const rows = [...table.keys()]
        .filter((k) => k > after)
        .sort((a, b) => a - b)
        .slice(0, s.chunkSize);
      chunks.push(rows.map((k) => ({ key: String(k), value: table.get(k) as number })));
      if (rows.length > 0) after = rows[rows.length - 1] as number;
      if (rows.length < s.chunkSize) done = true;
    } else log.push({ kind: 'high', chunk: chunks.length - 1 });
    phase = (phase + 1) % 3;
  };
  for (const [isWrite, op] of s.schedule) {
    if (isWrite) write(op);
    else step();
  }
  while (!done || phase !== 0) step();

  // The consumer: log events pass through; at H the window's survivors are applied.
  const replay = new Map<number, number>();
  let window: ChunkWindow<Row> | undefined;
  for (const entry of log) {
    switch (entry.kind) {
      case 'change':
        entry.apply(replay);
        window?.observe({ kind: 'change', keys: entry.keys.map(String) });
        break;
      case 'truncate':
        replay.clear();
        window?.observe({ kind: 'truncate' });
        break;
      case 'low':
        window = new ChunkWindow(keyOf);
        if (s.chunkEarly) window.setChunk(chunks[entry.chunk] ?? []);
        break;
      case 'high': {
        assert.ok(window);
        if (!s.chunkEarly) window.setChunk(chunks[entry.chunk] ?? []);
        const result = window.close();
        assert.equal(result.kind, 'emit');
        const survivors = naive ? (chunks[entry.chunk] ?? []) : result.kind === 'emit' ? result.survivors : [];
        for (const r of survivors) replay.set(Number(r.key), r.value);
        window = undefined;
        break;
      }
    }
  }
  return { replay, table };
}

const sorted = (m: Map<number, number>): [number, number][] => [...m].sort((a, b) => a[0] - b[0]);

test('replaying log events plus window survivors equals the table, for any interleaving', () => {
  fc.assert(
    fc.property(scenario, (s) => {
      const { replay, table } = simulate(s, false);
      assert.deepEqual(sorted(replay), sorted(table));
    }),
    { numRuns: 3000 },
  );
});

test('the property has teeth: emitting chunks without the window loses or resurrects rows', () => {
  const outcome = fc.check(
    fc.property(scenario, (s) => {
      const { replay, table } = simulate(s, true);
      assert.deepEqual(sorted(replay), sorted(table));
    }),
    { numRuns: 3000 },
  );
  assert.equal(outcome.failed, true);
});
