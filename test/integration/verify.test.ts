/**
 * `pgcdc verify` against a real capture into JSONL: equal after a workload (keyed, composite-key and
 * keyless tables, a primary-key change, deletes); then, with the output edited, a deleted insert line
 * is a missing key, an edited value a different key, a removed file a missing table (exit 1); bad
 * input is one line and exit 2.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { eventually, freshDatabase, onTeardown, type TestDatabase } from '../harness/pg.ts';
import { runPgcdc, startPgcdc } from '../harness/cli.ts';

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-verify-'));
  onTeardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const TABLES = 'public.items,public.pairs,public.bag';

function common(db: TestDatabase, dir: string): string[] {
  return [
    '--source',
    db.url,
    '--publication',
    `p_${db.name}`,
    '--tables',
    TABLES,
    '--out',
    path.join(dir, 'events'),
    '--offsets',
    path.join(dir, 'offsets.json'),
  ];
}

interface Report {
  outcome: string;
  tables: {
    table: string;
    sink: string;
    sourceRows: number;
    sinkRows: number;
    missing: number;
    extra: number;
    different: number;
    missingKeys: string[];
    differentKeys: string[];
  }[];
}

async function verify(
  db: TestDatabase,
  dir: string,
  ...extra: string[]
): Promise<{ code: number; report: Report; stderr: string }> {
  const { code, stdout, stderr } = await runPgcdc(['verify', ...common(db, dir), '--json', '--wait', '30', ...extra]);
  assert.ok(!stdout.includes(db.url) && !stderr.includes(db.url), 'the connection string is never printed');
  return { code, report: JSON.parse(stdout || '{}') as Report, stderr };
}

test('verify: equal after a capture, then a deleted line, an edited value and a missing file are found', async () => {
  const db = await freshDatabase();
  await db.sql.query(
    `create table items (id int primary key, name text, price numeric(10,2), at timestamptz, doc jsonb)`,
  );
  await db.sql.query(`create table pairs (a int, b text, v int, primary key (a, b))`);
  await db.sql.query(`create table bag (x int, y text)`);
  await db.sql.query(`alter table bag replica identity full`);
  // Rows the initial snapshot reads.
  await db.sql.query(
    `insert into items select g, 'item-' || g, g * 1.5, '2024-01-01T00:00:00Z'::timestamptz + g * interval '1 hour',
       jsonb_build_object('g', g) from generate_series(1, 50) g`,
  );
  await db.sql.query(`insert into pairs select g % 5, 'k' || g, g from generate_series(1, 20) g`);
  await db.sql.query(`insert into bag select g % 3, 'same' from generate_series(1, 9) g`);
  const dir = await tempDir();
  const proc = startPgcdc(['run', ...common(db, dir), '--slot', `s_${db.name}`]);
  await eventually(() => (proc.stderr().includes('streaming') ? true : undefined), 'streaming');
  // The workload: inserts, updates, deletes, a primary-key change, keyless updates and deletes.
  await db.sql.query(
    `insert into items select g, 'item-' || g, g, now(), '{"new":true}' from generate_series(100, 120) g`,
  );
  await db.sql.query(`update items set price = price + 1, doc = doc || '{"u":1}' where id % 7 = 0`);
  await db.sql.query(`delete from items where id between 10 and 14`);
  await db.sql.query(`update items set id = 1000 where id = 20`);
  await db.sql.query(`update pairs set v = -v where a = 1`);
  await db.sql.query(`delete from pairs where a = 2`);
  await db.sql.query(`update bag set y = 'changed' where x = 1`);
  await db.sql.query(`delete from bag where x = 2`);
  // Stop once the last transaction's events are written (a clean stop stores their checkpoint).
  const bagFile = path.join(dir, 'events', `${db.name}.public.bag.jsonl`);
  await eventually(
    async () => ((await readFile(bagFile, 'utf8').catch(() => '')).split('"op":"d"').length === 4 ? true : undefined),
    'the keyless deletes written',
  );
  proc.kill('SIGTERM');
  assert.equal(await proc.exited, 0, proc.stderr());

  const equal = await verify(db, dir);
  assert.equal(equal.code, 0, `${equal.stderr} ${JSON.stringify(equal.report)}`);
  assert.equal(equal.report.outcome, 'equal');
  const items = equal.report.tables.find((t) => t.table === 'public.items');
  assert.equal(items?.sourceRows, 50 + 21 - 5);
  assert.equal(items?.sinkRows, 50 + 21 - 5);
  assert.equal(equal.report.tables.find((t) => t.table === 'public.bag')?.sourceRows, 6);

  // Text output: counts per table, exit 0.
  const text = await runPgcdc(['verify', ...common(db, dir)]);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /^verify: equal: 3 tables/);
  assert.match(text.stdout, /public\.pairs: equal: source 16 rows, sink 16 rows; missing 0, extra 0, different 0/);

  // Edit the output: delete the insert of id 110 (its only event), change the name of 105.
  const itemsFile = path.join(dir, 'events', `${db.name}.public.items.jsonl`);
  const lines = (await readFile(itemsFile, 'utf8')).split('\n');
  const only110 = lines.filter((l) => l.includes('"key":{"id":110}'));
  assert.equal(only110.length, 1);
  const edited = lines
    .filter((l) => !l.includes('"key":{"id":110}'))
    .map((l) => (l.includes('"key":{"id":105}') ? l.replace('"name":"item-105"', '"name":"item-1O5"') : l));
  await writeFile(itemsFile, edited.join('\n'));
  await unlink(path.join(dir, 'events', `${db.name}.public.pairs.jsonl`));

  const different = await verify(db, dir);
  assert.equal(different.code, 1, different.stderr);
  assert.equal(different.report.outcome, 'different');
  const byName = new Map(different.report.tables.map((t) => [t.table, t]));
  assert.deepEqual(byName.get('public.items')?.missingKeys, ['{"id":110}']);
  assert.deepEqual(byName.get('public.items')?.differentKeys, ['{"id":105}']);
  assert.equal(byName.get('public.items')?.extra, 0);
  assert.equal(byName.get('public.pairs')?.sink, 'absent');
  assert.equal(byName.get('public.pairs')?.missing, 16);
  assert.equal(byName.get('public.bag')?.missing, 0);

  const shown = await runPgcdc(['verify', ...common(db, dir), '--limit', '5']);
  assert.equal(shown.code, 1);
  assert.match(shown.stdout, /^verify: DIFFERENT: 2 of 3 tables differ/);
  assert.match(shown.stdout, /missing keys:\n\s+\{"id":110\}/);
  assert.match(shown.stdout, /different keys:\n\s+\{"id":105\}/);
  assert.match(shown.stdout, /missing table: the sink holds nothing for it/);
  assert.ok(!shown.stdout.includes('item-105'), 'no row values without --show-values');

  const bad = await runPgcdc(['verify', ...common(db, dir), '--wait', 'soon']);
  assert.equal(bad.code, 2);
  assert.equal(bad.stderr.trim().split('\n').length, 1, bad.stderr);
  assert.match(bad.stderr, /--wait must be a number of seconds/);
});
