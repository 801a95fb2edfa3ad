/**
 * The initial snapshot: existing rows arrive as op 'r' reads consistent with the stream that
 * follows, under concurrent writes to the same keys; a crash mid-snapshot continues after its
 * last stored chunk;
 * `--snapshot-mode never` streams only.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freshDatabase, eventually, type TestDatabase } from '../harness/pg.ts';
import { compareRows, readJsonl, replay, startPgcdc } from '../harness/cli.ts';
import { storedProgress, type StoredProgress } from '../harness/snapshots.ts';

function args(db: TestDatabase, dir: string, extra: string[] = []): string[] {
  return [
    'run',
    '--source',
    db.url,
    '--slot',
    `s_${db.name}`,
    '--publication',
    'snap_pub',
    '--tables',
    'public.items',
    '--out',
    path.join(dir, 'events'),
    '--offsets',
    path.join(dir, 'offsets.json'),
    '--log-format',
    'json',
    ...extra,
  ];
}

function checkpointState(dir: string): Promise<StoredProgress | undefined> {
  return storedProgress(path.join(dir, 'offsets.json'));
}

async function caughtUp(db: TestDatabase, dir: string): Promise<true | undefined> {
  const state = await checkpointState(dir);
  if (!state || state.snapshot?.state === 'running') return undefined;
  if (state.incremental?.tables.some((t) => !t.cursor.done && t.stopped !== true)) return undefined;
  const { rows } = await db.sql.query<{ ok: boolean }>(`select $1::pg_lsn >= pg_current_wal_lsn() as ok`, [state.lsn]);
  return rows[0]?.ok ? true : undefined;
}

async function verify(db: TestDatabase, dir: string): Promise<number> {
  const events = await readJsonl(path.join(dir, 'events'));
  assert.equal(new Set(events.map((e) => e.id)).size, events.length, 'no event twice in the files');
  const { rows } = await db.sql.query<{ region: string; id: number; qty: number; note: string | null }>(
    `select region, id, qty, note from items`,
  );
  const source = new Map(
    rows.map((r) => [JSON.stringify({ region: r.region, id: r.id }), r as Record<string, unknown>]),
  );
  assert.deepEqual(compareRows(replay(events).tables.get(`${db.name}.public.items`), source), {
    lost: 0,
    extra: 0,
    mismatched: 0,
  });
  return events.filter((e) => e.value.op === 'r').length;
}

async function seed(db: TestDatabase, count: number): Promise<void> {
  await db.sql.query(`create table items (region text, id int, qty int not null, note text, primary key (region, id))`);
  await db.sql.query(
    `insert into items select (array['eu','us','Ä','z z'])[1 + g % 4], g, g % 50, 'n' || g from ` +
      `generate_series(1, ${count}) g`,
  );
}

test('existing rows arrive as snapshot reads, consistent with a concurrent workload on the same keys', async () => {
  const db = await freshDatabase();
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-snap-'));
  await seed(db, 6000);
  const proc = startPgcdc(args(db, dir, ['--snapshot-chunk-size', '150']));
  await eventually(() => checkpointState(dir), 'the first checkpoint');
  // Writes to the same keys while the snapshot is being read, and after.
  for (let i = 0; i < 30; i++) {
    await db.sql
      .query(`update items set qty = qty + 1 where id % 30 = ${i}; delete from items where id = ${i * 100 + 7};
      insert into items values ('new', ${i}, ${i}, null) on conflict do nothing`);
  }
  await eventually(() => caughtUp(db, dir), 'snapshot done and stream caught up');
  proc.kill('SIGTERM');
  assert.equal(await proc.exited, 0, proc.stderr());
  assert.equal(await verify(db, dir), 6000, 'every row that existed at the consistent point was read once');
  const reads = (await readJsonl(path.join(dir, 'events'))).filter((e) => e.value.op === 'r');
  assert.equal(reads.filter((e) => e.value.source.snapshot === 'last').length, 1);
});

test(
  'a crash in the middle of the snapshot continues after the last stored chunk, ' + 'exactly once in the files',
  async () => {
    const db = await freshDatabase();
    const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-snapkill-'));
    await seed(db, 60_000);
    // Chunks of 2500 rows: serialized on a thread (snapshot/serializer-pool.ts) when the kill comes.
    let proc = startPgcdc(args(db, dir, ['--snapshot-chunk-size', '2500', '--snapshot-threads', '1']));
    await eventually(
      async () =>
        (await readJsonl(path.join(dir, 'events'))).length > 2000 &&
        (await checkpointState(dir))?.snapshot?.state === 'running'
          ? true
          : undefined,
      'a snapshot under way',
    );
    proc.kill('SIGKILL');
    await proc.exited;
    await db.sql.query(`update items set qty = -1 where id < 100`);
    proc = startPgcdc(args(db, dir, ['--snapshot-chunk-size', '5000']));
    await eventually(() => caughtUp(db, dir), 'snapshot continued and stream caught up');
    proc.kill('SIGTERM');
    assert.equal(await proc.exited, 0, proc.stderr());
    assert.match(proc.stderr(), /continuing it online after its last stored chunk/);
    // Every row read once: the chunks stored before the crash are not read again.
    assert.equal(await verify(db, dir), 60_000);
    const reads = (await readJsonl(path.join(dir, 'events'))).filter((e) => e.value.op === 'r');
    const before = reads.filter((e) => e.value.source.snapshot === 'true').length;
    assert.ok(before >= 2000, `rows delivered before the crash kept (${before})`);
    assert.equal(reads.filter((e) => e.value.source.snapshot === 'incremental').length, 60_000 - before);
  },
);

test('--snapshot-mode never streams only', async () => {
  const db = await freshDatabase();
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-nosnap-'));
  await seed(db, 10);
  const proc = startPgcdc(args(db, dir, ['--snapshot-mode', 'never']));
  await eventually(() => checkpointState(dir), 'the first checkpoint');
  await db.sql.query(`insert into items values ('eu', 1000, 1, null)`);
  const events = await eventually(async () => {
    const all = await readJsonl(path.join(dir, 'events'));
    return all.length >= 1 ? all : undefined;
  }, 'the insert');
  proc.kill('SIGTERM');
  assert.equal(await proc.exited, 0, proc.stderr());
  assert.deepEqual(
    events.map((e) => e.value.op),
    ['c'],
  );
});

test('serializer threads write the same events as the main thread, byte for byte', async () => {
  const db = await freshDatabase();
  // Chunks of 2500 rows go to the threads (snapshot/serializer-pool.ts); values that need escaping,
  // every COPY escape, and types written through their encoders.
  await db.sql.query(
    `create table kinds (id int primary key, t text, n numeric, ts timestamptz, j jsonb, b bytea, a int[], x text)`,
  );
  await db.sql.query(
    `insert into kinds select g, 'tab\t nl\n bs\\ q" é ' || g, g / 7.0,
       '2026-01-01'::timestamptz + g * interval '1 minute', jsonb_build_object('g', g, 's', 'x"y'),
       decode(lpad(to_hex(g), 8, '0'), 'hex'), array[g, -g],
       case when g % 3 = 0 then null else repeat('w', g % 40) end
     from generate_series(1, 7000) g`,
  );
  const lines: string[][] = [];
  for (const threads of ['0', '2']) {
    const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-snapthreads-'));
    const run = [
      'run',
      '--source',
      db.url,
      '--slot',
      `s_${db.name}_${threads}`,
      '--publication',
      `p_${threads}`,
      '--tables',
      'public.kinds',
      '--out',
      path.join(dir, 'events'),
      '--offsets',
      path.join(dir, 'offsets.json'),
      '--snapshot-mode',
      'initial_only',
      '--snapshot-chunk-size',
      '2500',
      '--snapshot-parallelism',
      '2',
      '--snapshot-threads',
      threads,
    ];
    const proc = startPgcdc(run);
    assert.equal(await proc.exited, 0, proc.stderr());
    assert.equal(proc.stderr().includes('serializing large chunks on threads'), threads !== '0');
    const events = await readJsonl(path.join(dir, 'events'));
    assert.equal(events.length, 7000);
    // The runs differ only in their slot's position and the processing time: compare the bytes without them.
    const lsn = String(events[0]?.value.source.lsn);
    const lsnText = String(events[0]?.id).split(':r:')[0] as string;
    const files = (await readdir(path.join(dir, 'events'))).filter((f) => f.endsWith('.jsonl')).sort();
    const text = (await Promise.all(files.map((f) => readFile(path.join(dir, 'events', f), 'utf8')))).join('');
    lines.push(
      text
        .replaceAll(lsnText, 'LSN')
        .replaceAll(lsn, 'N')
        .replace(/"ts_(ms|us|ns)":\d+/g, '"ts":0')
        .split('\n'),
    );
  }
  assert.deepEqual(lines[1], lines[0]);
});
