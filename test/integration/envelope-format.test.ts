/**
 * The event envelope end to end through the JSONL sink on real PostgreSQL:
 * - `--format json-with-schema`: every line of every type (the all-types fixture), snapshot reads,
 *   updates, deletes, a primary-key change and a transaction's BEGIN/END events, is checked by the
 *   conformance checker (test/harness/connect-conformance.ts): each payload value fits its schema.
 * - a primary-key change becomes a delete of the old key and a create of the new one (headers naming
 *   the other key), under REPLICA IDENTITY DEFAULT and FULL; replaying the events gives the source.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freshDatabase, eventually } from '../harness/pg.ts';
import { commitOrder, compareRows, parseLines, replay, startPgcdc, type DeliveredEvent } from '../harness/cli.ts';
import { checkLine, unwrapLine, type Violation } from '../harness/connect-conformance.ts';
import { ALL_TYPES_TABLE, allTypesDdl, allTypesInserts } from '../fixtures/all-types.ts';

async function lines(dir: string): Promise<string[]> {
  let files: string[];
  try {
    files = (await readdir(dir)).filter((f) => f.endsWith('.jsonl')).sort();
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const file of files)
    for (const line of (await readFile(path.join(dir, file), 'utf8')).split('\n')) if (line.length > 0) out.push(line);
  return out;
}

/**
 * The differences from a strict reading that docs/events.md ("json-with-schema") documents: a multi-dimensional array
 * against its one-dimensional array schema, `infinity` in a column whose Debezium name promises
 * an ISO value (timestamptz, interval on 17+), and an xid8 above int64's range.
 */
function documented(v: Violation, line: string): boolean {
  const multiDimensional = /holds an array$/.test(v.problem) && /\[\d+\]$/.test(v.path);
  const unsigned64 = /^int64 field holds \d{19,20}, out of range$/.test(v.problem) && v.path.endsWith('c_xid8');
  const infinity = /^io\.debezium\.time\.(ZonedTimestamp|Interval): .*: "-?infinity"$/.test(v.problem);
  return (multiDimensional || infinity || unsigned64) && line.length > 0;
}

for (const style of ['pgcdc', 'debezium'] as const)
  test(`json-with-schema, values.style ${style}: every line of every type conforms to its own schema`, async () => {
    await everyTypeConforms(style);
  });

async function everyTypeConforms(style: 'pgcdc' | 'debezium'): Promise<void> {
  const db = await freshDatabase();
  const major = db.server.major;
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-format-'));
  for (const statement of allTypesDdl(major)) await db.sql.query(statement);
  await db.sql.query(`create table early (id int primary key, note text not null, at date)`);
  await db.sql.query(`insert into early values (1, 'before the slot', '2026-11-21'), (2, 'x', null)`);
  const events = path.join(dir, 'events');
  const config = path.join(dir, 'pgcdc.yaml');
  await writeFile(config, `values:\n  style: ${style}\n`);
  const proc = startPgcdc([
    'run',
    '--config',
    config,
    '--source',
    db.url,
    '--slot',
    `s_${db.name}`,
    '--publication',
    'format_pub',
    '--tables',
    `public.${ALL_TYPES_TABLE},public.early`,
    '--out',
    events,
    '--offsets',
    path.join(dir, 'offsets.json'),
    '--format',
    'json-with-schema',
    '--log-format',
    'json',
  ]);
  await eventually(async () => ((await lines(events)).length >= 2 ? true : undefined), 'the snapshot reads');
  const inserts = allTypesInserts(major);
  for (const statement of inserts) await db.sql.query(statement);
  await db.sql.query(`update early set note = 'changed' where id = 2`);
  await db.sql.query(`update early set id = 20 where id = 2`);
  await db.sql.query(`delete from early where id = 1`);
  const expected = 2 + inserts.length + 1 + 2 + 1;
  const all = await eventually(async () => {
    const got = await lines(events);
    return got.length >= expected ? got : undefined;
  }, `${expected} events`);
  proc.kill('SIGTERM');
  assert.equal(await proc.exited, 0, proc.stderr());

  assert.equal(all.length, expected);
  const violations = all.flatMap((line) => checkLine(line).map((v) => ({ ...v, line })));
  const unexpected = violations.filter((v) => !documented(v, v.line));
  assert.deepEqual(
    unexpected.map((v) => `${v.path}: ${v.problem}`),
    [],
  );
  // Every event has both parts wrapped, with Debezium's names.
  for (const line of all) {
    const event = JSON.parse(line) as {
      topic: string;
      key: { schema: { name: string } } | null;
      value: { schema: { name: string }; payload: { op: string } };
    };
    assert.equal(event.value.schema.name, `${event.topic}.Envelope`);
    if (event.value.payload.op !== 't') assert.equal(event.key?.schema.name, `${event.topic}.Key`);
  }
  // The key change: a delete and a create, each with its header, and the replay of the unwrapped
  // events gives the table.
  const early = all.map((l) => JSON.parse(unwrapLine(l)) as DeliveredEvent);
  const change = early.filter((e) => e.headers !== undefined);
  assert.deepEqual(
    change.map((e) => [e.value.op, e.key, e.headers]),
    [
      ['d', { id: 2 }, { '__debezium.newkey': { id: 20 } }],
      ['c', { id: 20 }, { '__debezium.oldkey': { id: 2 } }],
    ],
  );
  const replayed = replay(early).tables.get(`${db.name}.public.early`);
  assert.deepEqual([...(replayed?.entries() ?? [])], [['{"id":20}', { id: 20, note: 'changed', at: null }]]);
  const reads = early.filter((e) => e.value.op === 'r');
  assert.equal(reads[0]?.value.source.sequence, `[null,"${reads[0]?.value.source.lsn}"]`);
  const at = early.find((e) => e.value.op === 'c' && e.topic.endsWith('.early'))?.value.after?.at;
  assert.equal(at, null);
  const read = reads.find((e) => e.key?.id === 1)?.value.after?.at;
  assert.equal(read, style === 'debezium' ? Date.UTC(2026, 10, 21) / 86_400_000 : '2026-11-21');
}

test('a primary-key change is a delete and a create; replay equals the source under DEFAULT and FULL', async () => {
  const db = await freshDatabase();
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-keychange-'));
  await db.sql.query(`create table d (id int primary key, v text)`);
  await db.sql.query(`create table f (id int, region text, v text, primary key (id, region))`);
  await db.sql.query(`alter table f replica identity full`);
  await db.sql.query(`create table k (v text)`);
  await db.sql.query(`alter table k replica identity full`);
  const events = path.join(dir, 'events');
  const proc = startPgcdc([
    'run',
    '--source',
    db.url,
    '--slot',
    `s_${db.name}`,
    '--publication',
    'keys_pub',
    '--tables',
    'public.d,public.f,public.k',
    '--out',
    events,
    '--offsets',
    path.join(dir, 'offsets.json'),
    '--log-format',
    'json',
  ]);
  await eventually(
    async () =>
      (await db.sql.query(`select 1 from pg_replication_slots where slot_name = $1`, [`s_${db.name}`])).rowCount ===
        1 || undefined,
    'slot created',
  ).catch((error: unknown) => {
    throw new Error(`${String(error)}: ${proc.stderr()}`);
  });
  await db.sql.query(`insert into d select g, 'v' || g from generate_series(1, 5) g`);
  await db.sql.query(`insert into f select g, 'eu', 'v' || g from generate_series(1, 5) g`);
  await db.sql.query(`insert into k values ('a')`);
  // Several key changes in one transaction, one of them twice, and one that swaps into a freed key.
  await db.sql.query(
    `begin; update d set id = id + 100 where id <= 2; update d set id = 1 where id = 101; ` +
      `update d set v = 'same key' where id = 3; commit`,
  );
  await db.sql.query(`update f set region = 'us' where id = 1`);
  await db.sql.query(`update f set id = 50, v = 'moved' where id = 2`);
  await db.sql.query(`update f set v = 'same key' where id = 3`);
  await db.sql.query(`update k set v = 'b'`);
  // 5 + 5 + 1 inserts; d: 2 changes x 2 + 1 change x 2 + 1 update; f: 2 x 2 + 1; k: 1
  const expected = 11 + 7 + 5 + 1;
  const all = await eventually(async () => {
    const got = parseLines((await lines(events)).join('\n'));
    return got.length >= expected ? got : undefined;
  }, `${expected} events`);
  proc.kill('SIGTERM');
  assert.equal(await proc.exited, 0, proc.stderr());
  assert.equal(all.length, expected);
  assert.equal(new Set(all.map((e) => e.id)).size, all.length, 'every id unique');

  const changes = all.filter((e) => e.headers !== undefined);
  assert.equal(changes.length, 10, 'five key changes, two events each');
  for (let i = 0; i < changes.length; i += 2) {
    const [d, c] = [changes[i], changes[i + 1]];
    assert.equal(d?.value.op, 'd');
    assert.equal(c?.value.op, 'c');
    assert.deepEqual(d?.headers, { '__debezium.newkey': c?.key });
    assert.deepEqual(c?.headers, { '__debezium.oldkey': d?.key });
    assert.equal(d?.value.after, null);
    assert.ok(d?.value.before !== null, 'the delete carries the old row or key');
  }
  // Debezium's source fields: sequence = [end of the previous commit, this change's LSN], rising
  // with the commits; the commit time in µs and ns beside ts_ms.
  let previous = -1n;
  for (const e of commitOrder(all)) {
    const source = e.value.source as DeliveredEvent['value']['source'] & { ts_us: number; ts_ns: number };
    const [last, lsn] = JSON.parse(String(source.sequence)) as [string | null, string];
    assert.equal(lsn, String(source.lsn));
    // null only before the first commit of a fresh start.
    if (last === null) assert.equal(previous, -1n, String(source.sequence));
    else {
      assert.ok(BigInt(last) <= BigInt(lsn) && BigInt(last) >= previous, String(source.sequence));
      previous = BigInt(last);
    }
    assert.equal(Math.floor(source.ts_us / 1000), source.ts_ms);
    assert.equal(source.xmin, null);
  }
  // Updates that kept their key stay updates, also on the keyless table.
  assert.equal(all.filter((e) => e.value.op === 'u').length, 3);

  const tables = replay(all).tables;
  const source = async (table: string, key: string[]): Promise<Map<string, Record<string, unknown>>> => {
    const { rows } = await db.sql.query<Record<string, unknown>>(`select * from ${table}`);
    return new Map(rows.map((r) => [JSON.stringify(Object.fromEntries(key.map((k) => [k, r[k]]))), r]));
  };
  assert.deepEqual(compareRows(tables.get(`${db.name}.public.d`), await source('d', ['id'])), {
    lost: 0,
    extra: 0,
    mismatched: 0,
  });
  assert.deepEqual(compareRows(tables.get(`${db.name}.public.f`), await source('f', ['id', 'region'])), {
    lost: 0,
    extra: 0,
    mismatched: 0,
  });
});
