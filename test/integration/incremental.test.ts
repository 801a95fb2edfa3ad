/**
 * Online incremental snapshots (DBLog watermarks) on a real PostgreSQL: every watermark method,
 * a 200,000-row backfill under a concurrent workload on the same keys, ad hoc requests by signal
 * row and by `pgcdc snapshot`, stop-snapshot and malformed signals, SIGKILL mid-snapshot then
 * resume at the last stored chunk. Each ends by replaying the delivered events onto an empty map
 * and comparing with the table: lost, extra, mismatched, duplicated rows must all be 0.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freshDatabase, eventually, testServer, type TestDatabase } from '../harness/pg.ts';
import { runPgcdc, startPgcdc } from '../harness/cli.ts';
import { ReadGate } from '../harness/read-gate.ts';
import {
  assertExact,
  caughtUp,
  incrementalDone,
  outDir,
  storedProgress,
  verifyTable,
  workload,
} from '../harness/snapshots.ts';

const SIGNAL = 'public.pgcdc_signal';

function runArgs(db: TestDatabase, dir: string, tables: string, extra: string[] = []): string[] {
  return [
    'run',
    '--source',
    db.url,
    '--slot',
    `s_${db.name}`,
    '--publication',
    'inc_pub',
    '--tables',
    tables,
    '--out',
    outDir(dir),
    '--offsets',
    path.join(dir, 'offsets.json'),
    '--log-format',
    'json',
    '--snapshot-progress',
    'off',
    ...extra,
  ];
}

async function seed(db: TestDatabase, table: string, rows: number): Promise<void> {
  await db.sql.query(`create table ${table} (id int primary key, n int not null, label text)`);
  await db.sql.query(`insert into ${table} select g, g % 97, 'row ' || g from generate_series(1, ${rows}) g`);
}

async function createSignalTable(db: TestDatabase): Promise<void> {
  await db.sql.query(
    `create table ${SIGNAL} (id varchar(255) primary key, type varchar(32) not null, data varchar(2000) null)`,
  );
}

/** Streams with --snapshot-mode never until the first checkpoint: the backfill is then ad hoc. */
async function streaming(db: TestDatabase, dir: string, tables: string, extra: string[]) {
  const proc = startPgcdc(runArgs(db, dir, tables, ['--snapshot-mode', 'never', ...extra]));
  await eventually(() => storedProgress(path.join(dir, 'offsets.json')), 'the first checkpoint');
  return proc;
}

async function finish(db: TestDatabase, dir: string, proc: ReturnType<typeof startPgcdc>): Promise<void> {
  const offsets = path.join(dir, 'offsets.json');
  // Up and streaming (its signal handlers are installed), not still loading.
  await eventually(() => (proc.stderr().includes('"msg":"streaming"') ? true : undefined), 'pgcdc to stream');
  await eventually(
    async () => (incrementalDone(await storedProgress(offsets)) ? true : undefined),
    'the incremental snapshot to finish',
    240_000,
  );
  await eventually(async () => ((await caughtUp(db.sql, offsets)) ? true : undefined), 'the stream to catch up');
  proc.kill('SIGTERM');
  assert.equal(await proc.exited, 0, proc.stderr());
}

test(
  'read-only method: a 200,000-row backfill while a ' + 'workload writes the same keys replays to the table exactly',
  async () => {
    const db = await freshDatabase();
    const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-inc-big-'));
    await seed(db, 'big', 200_000);
    const proc = await streaming(db, dir, 'public.big', [
      '--snapshot-method',
      'read-only',
      '--snapshot-chunk-size',
      '5000',
    ]);
    const load = workload(db, 'big', 210_000);
    const asked = await runPgcdc(['snapshot', 'public.big', '--offsets', path.join(dir, 'offsets.json'), '--json']);
    assert.equal(asked.code, 0, asked.stderr);
    assert.equal((JSON.parse(asked.stdout) as { outcome: string }).outcome, 'taken');
    await eventually(
      async () => (incrementalDone(await storedProgress(path.join(dir, 'offsets.json'))) ? true : undefined),
      'the backfill',
      240_000,
    );
    const statements = await load.stop();
    await finish(db, dir, proc);
    const verdict = await verifyTable(db, outDir(dir), 'big');
    assertExact(verdict, 'replay of the backfill plus the stream equals the table');
    assert.ok(statements > 0, 'the workload ran during the backfill');
    assert.ok(verdict.reads > 150_000, `most rows came from the backfill (${verdict.reads})`);
    assert.ok(verdict.events.filter((e) => e.value.op === 'r').every((e) => e.value.source.snapshot === 'incremental'));
  },
);

test('signal-table method: execute-snapshot row, malformed signals ignored, signal rows not delivered', async () => {
  const db = await freshDatabase();
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-inc-signal-'));
  await seed(db, 'items', 20_000);
  await createSignalTable(db);
  const proc = await streaming(db, dir, `public.items,${SIGNAL}`, [
    '--signal-table',
    SIGNAL,
    '--snapshot-method',
    'signal-table',
    '--snapshot-chunk-size',
    '1000',
  ]);
  await db.sql.query(
    `insert into ${SIGNAL} values ('bad-1', 'execute-snapshot', 'not json'), ('bad-2', 'execute-snapshot', ` +
      `'{"data-collections": ["public.items"], "additional-conditions": [{"filter": "1=1; drop table items"}]}')`,
  );
  const load = workload(db, 'items', 21_000);
  await db.sql.query(
    `insert into ${SIGNAL} values ('go-1', 'execute-snapshot', '{"data-collections": ["public.items"], "type": ` +
      `"incremental"}')`,
  );
  await eventually(
    async () => (incrementalDone(await storedProgress(path.join(dir, 'offsets.json'))) ? true : undefined),
    'the backfill',
    120_000,
  );
  await load.stop();
  await finish(db, dir, proc);
  assertExact(await verifyTable(db, outDir(dir), 'items'), 'signal-table method replay');
  assert.match(proc.stderr(), /ignored a signal: /);
  assert.match(proc.stderr(), /executes no SQL taken from a signal/);
  const { rows } = await db.sql.query<{ n: number }>(`select count(*)::int as n from items`);
  assert.ok((rows[0]?.n ?? 0) > 0, 'the table was not dropped by the signal');
  const signalEvents = (await verifyTable(db, outDir(dir), 'pgcdc_signal')).events;
  assert.equal(signalEvents.length, 0, 'signal rows are control, not data');
  const left = await db.sql.query<{ n: number }>(
    `select count(*)::int as n from ${SIGNAL} where type like 'snapshot-window-%'`,
  );
  assert.equal(left.rows[0]?.n, 0, 'window rows are removed once their window closed');
});

// Skipped inside the test, not by a top-level await in its options (see assertTeardownPending).
test('message method (PG14+): pgcdc snapshot request, workload on the same keys', async (t) => {
  if ((await testServer()).major < 14) {
    t.skip('logical messages need PostgreSQL 14+');
    return;
  }
  const db = await freshDatabase();
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-inc-msg-'));
  await seed(db, 'items', 20_000);
  const proc = await streaming(db, dir, 'public.items', [
    '--snapshot-method',
    'message',
    '--snapshot-chunk-size',
    '1000',
  ]);
  const load = workload(db, 'items', 21_000);
  const asked = await runPgcdc(['snapshot', 'public.items', '--offsets', path.join(dir, 'offsets.json')]);
  assert.equal(asked.code, 0, asked.stderr);
  assert.match(asked.stdout, /taken by pgcdc/);
  await eventually(
    async () => (incrementalDone(await storedProgress(path.join(dir, 'offsets.json'))) ? true : undefined),
    'the backfill',
    120_000,
  );
  await load.stop();
  await finish(db, dir, proc);
  assertExact(await verifyTable(db, outDir(dir), 'items'), 'message method replay');
});

test('stop-snapshot ends the backfill of a table; what was delivered stays', async () => {
  const db = await freshDatabase();
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-inc-stop-'));
  await seed(db, 'items', 30_000);
  await createSignalTable(db);
  const offsets = path.join(dir, 'offsets.json');
  const proc = await streaming(db, dir, `public.items,${SIGNAL}`, [
    '--signal-table',
    SIGNAL,
    '--snapshot-chunk-size',
    '200',
  ]);
  await db.sql.query(
    `insert into ${SIGNAL} values ('go', 'execute-snapshot', '{"data-collections": ["public.items"]}')`,
  );
  await eventually(
    async () => (((await storedProgress(offsets))?.incremental?.tables[0]?.emitted ?? 0) > 0 ? true : undefined),
    'the first chunks',
  );
  await db.sql.query(
    `insert into ${SIGNAL} values ('stop', 'stop-snapshot', '{"data-collections": ["public.items"], "type": ` +
      `"incremental"}')`,
  );
  const stopped = await eventually(async () => {
    const table = (await storedProgress(offsets))?.incremental?.tables[0];
    return table?.stopped === true ? table : undefined;
  }, 'the stop');
  assert.ok(!stopped.cursor.done && stopped.emitted < 30_000, 'stopped before the end');
  await eventually(async () => ((await caughtUp(db.sql, offsets)) ? true : undefined), 'the stream to catch up');
  proc.kill('SIGTERM');
  assert.equal(await proc.exited, 0, proc.stderr());
  assert.match(proc.stderr(), /stop-snapshot signal/);
});

test(
  'SIGKILL in the middle of an incremental snapshot: ' + 'the restart continues after the last stored chunk',
  async () => {
    const db = await freshDatabase();
    const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-inc-kill-'));
    const offsets = path.join(dir, 'offsets.json');
    await seed(db, 'items', 50_000);
    let proc = await streaming(db, dir, 'public.items', ['--snapshot-chunk-size', '200']);
    // pgcdc may read the whole table between two looks at the offsets file (it did, on a busy
    // machine): its chunk reads pass a gate one at a time, so the kill lands in the middle for sure.
    const gate = await ReadGate.close(db, 'items');
    assert.equal((await runPgcdc(['snapshot', 'public.items', '--offsets', offsets])).code, 0);
    const storedRead = async (): Promise<number> => (await storedProgress(offsets))?.incremental?.tables[0]?.read ?? 0;
    for (;;) {
      await gate.readerWaiting(); // pgcdc reads nothing more until let through
      if ((await storedRead()) >= 4_000) break;
      await gate.letOneThrough();
    }
    const before = await storedRead();
    proc.kill('SIGKILL');
    await proc.exited;
    await gate.open();
    const stored = (await storedProgress(offsets))?.incremental?.tables[0];
    assert.ok(stored !== undefined && !stored.cursor.done && stored.read < 50_000, 'killed in the middle of the table');
    proc = startPgcdc(runArgs(db, dir, 'public.items', ['--snapshot-mode', 'never', '--snapshot-chunk-size', '5000']));
    await finish(db, dir, proc);
    const verdict = await verifyTable(db, outDir(dir), 'items');
    assertExact(verdict, 'replay after the crash');
    // Not restarted from the beginning: no key was read twice, and every row was read exactly once.
    assert.equal(verdict.reads, 50_000);
    assert.ok(before >= 4_000);
  },
);
