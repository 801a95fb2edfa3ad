/**
 * `pgcdc drain`: under a running workload, drain captures everything committed up to the WAL
 * position it read at the start, confirms it in the slot and exits 0; a second drain exits 0 too;
 * a stalled sink makes it exit 3 at --timeout; --json's shape; it refuses while another pgcdc runs.
 * What was delivered is replayed against the rows the workload committed: 0 lost, 0 duplicated.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { eventually, freshDatabase, onTeardown, startCluster, type TestDatabase } from '../harness/pg.ts';
import { startStandby } from '../harness/standby.ts';
import {
  captureArgs,
  jsonlArgs,
  lsnValue,
  readJsonl,
  runPgcdc,
  sourceArgs,
  startPgcdc,
  type PgcdcProcess,
} from '../harness/cli.ts';
import { TestEndpoint } from '../harness/http-endpoint.ts';
import { httpSinkSection, SECRET_ENV } from '../harness/http-workload.ts';

interface DrainJson {
  drained: boolean;
  slot: string;
  target: string;
  standby: boolean;
  confirmed: string | null;
  checkpoint: string | null;
  eventsDelivered: number;
  alreadyDrained: boolean;
  elapsedMs: number;
  error?: string;
}

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-drain-'));
  onTeardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function streaming(proc: PgcdcProcess): Promise<void> {
  await eventually(() => (proc.stderr().includes('"msg":"streaming"') ? true : undefined), 'streaming');
}

async function slotConfirmed(sql: pg.Client, slot: string): Promise<string> {
  const { rows } = await sql.query<{ lsn: string }>(
    'select confirmed_flush_lsn::text as lsn from pg_replication_slots where slot_name = $1',
    [slot],
  );
  assert.ok(rows[0], `slot ${slot} exists`);
  return rows[0].lsn;
}

/**
 * One row per transaction, ids 1, 2, 3, ... in commit order (one connection). For each id the WAL
 * position right after its commit: at or past the commit's end, so an id whose position is at or
 * before a drain's target certainly committed before it and must be delivered.
 */
class LogWorkload {
  readonly after = new Map<number, string>();
  private stopping = false;
  private readonly client: pg.Client;
  private readonly running: Promise<void>;

  constructor(url: string) {
    this.client = new pg.Client({ connectionString: url });
    this.running = this.loop();
  }

  get committed(): number {
    return this.after.size;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.running;
    await this.client.end().catch(() => undefined);
  }

  private async loop(): Promise<void> {
    await this.client.connect();
    for (let id = 1; !this.stopping; id++) {
      await this.client.query('insert into log (id, v) values ($1, $2)', [id, `v${id}`]);
      const { rows } = await this.client.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn');
      this.after.set(id, rows[0]?.lsn ?? '0/0');
      // Pacing, not waiting for a state: a steady trickle of transactions.
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }
}

function drainArgs(db: TestDatabase, dir: string, extra: string[] = []): string[] {
  return captureArgs(db, dir, 'public.log', ['--snapshot-mode', 'never', ...extra], 'drain');
}

test('drain under a workload: every change up to the target delivered once, slot confirmed, then exit 0', async () => {
  const db = await freshDatabase();
  const slot = `s_${db.name}`;
  await db.sql.query('create table log (id int primary key, v text not null)');
  const dir = await tempDir();
  // The capture of an upgrade runbook: running, then stopped while the application still writes.
  const proc = startPgcdc(captureArgs(db, dir, 'public.log', ['--snapshot-mode', 'never']));
  await streaming(proc);
  const workload = new LogWorkload(db.url);
  onTeardown(() => workload.stop());
  await eventually(() => (workload.committed > 50 ? true : undefined), 'the workload committed');
  proc.kill('SIGTERM');
  assert.equal(await proc.exited, 0, proc.stderr());
  const atStop = workload.committed;
  await eventually(() => (workload.committed > atStop + 200 ? true : undefined), 'more commits while stopped');

  // Refused while another pgcdc runs on the same offsets file: one line, exit 1, nothing started.
  const other = startPgcdc(captureArgs(db, dir, 'public.log', ['--snapshot-mode', 'never']));
  await streaming(other);
  const refused = await runPgcdc(drainArgs(db, dir));
  assert.equal(refused.code, 1, refused.stderr);
  assert.match(refused.stderr, /^pgcdc: error: .*stop the running pgcdc first/);
  assert.equal(refused.stderr.trim().split('\n').length, 1, refused.stderr);
  other.kill('SIGTERM');
  assert.equal(await other.exited, 0, other.stderr());

  // The drain, with the workload still writing.
  const drained = await runPgcdc(drainArgs(db, dir, ['--json', '--progress-interval', '1s']));
  assert.equal(drained.code, 0, drained.stderr);
  const json = JSON.parse(drained.stdout) as DrainJson;
  assert.equal(json.drained, true);
  assert.equal(json.slot, slot);
  assert.equal(json.standby, false);
  assert.ok(lsnValue(json.confirmed ?? '0/0') >= lsnValue(json.target), `${json.confirmed} >= ${json.target}`);
  assert.ok(lsnValue(await slotConfirmed(db.sql, slot)) >= lsnValue(json.target), 'the slot shows the target');
  assert.match(drained.stderr, /draining up to/);
  const committedAtEnd = workload.committed;
  await workload.stop();
  assert.ok(committedAtEnd > atStop + 200);

  // Replay: ids in the output, each once; every id committed before the target among them.
  const events = (await readJsonl(path.join(dir, 'events'))).filter((e) => e.value.op === 'c');
  const seen = new Map<number, number>();
  for (const e of events) {
    const id = Number(e.value.after?.id);
    seen.set(id, (seen.get(id) ?? 0) + 1);
    assert.equal(e.value.after?.v, `v${id}`, `the value of id ${id}`);
  }
  const duplicated = [...seen.values()].filter((n) => n > 1).length;
  const required = [...workload.after.entries()].filter(([, lsn]) => lsnValue(lsn) <= lsnValue(json.target));
  const lost = required.filter(([id]) => !seen.has(id)).length;
  const extra = [...seen.keys()].filter((id) => !workload.after.has(id)).length;
  process.stderr.write(
    `drain: target ${json.target}, confirmed ${json.confirmed}, ${required.length} commits up to the target ` +
      `(${committedAtEnd} in all), ${seen.size} delivered, ${lost} lost, ${duplicated} duplicated, ${extra} extra, ` +
      `${json.elapsedMs} ms\n`,
  );
  assert.ok(required.length > 200, `commits before the target: ${required.length}`);
  assert.equal(lost, 0);
  assert.equal(duplicated, 0);
  assert.equal(extra, 0);

  // Again with nothing new: exit 0 with the one line.
  const again = await runPgcdc(drainArgs(db, dir));
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /^drained: slot \S+ confirmed \S+ >= target \S+; nothing is left to capture/);
  assert.equal(again.stdout.trim().split('\n').length, 1, again.stdout);
  const third = await runPgcdc(drainArgs(db, dir, ['--json']));
  assert.equal(third.code, 0, third.stderr);
  const thirdJson = JSON.parse(third.stdout) as DrainJson;
  process.stderr.write(
    `drain again: alreadyDrained ${thirdJson.alreadyDrained}, ${thirdJson.eventsDelivered} events, ` +
      `${thirdJson.elapsedMs} ms\n`,
  );
  assert.equal(thirdJson.eventsDelivered, 0);
  const after = (await readJsonl(path.join(dir, 'events'))).filter((e) => e.value.op === 'c');
  const ids = new Set(after.map((e) => Number(e.value.after?.id)));
  assert.equal(ids.size, workload.committed, 'every commit delivered by the drains');
  assert.equal(after.length, ids.size, 'each once');
});

test('drain exits 3 at --timeout while the sink does not answer, with --json saying why', async () => {
  const endpoint = await TestEndpoint.start({ secret: 'drain-secret-0123456789' });
  const db = await freshDatabase();
  await db.sql.query('create table log (id int primary key, v text not null)');
  const dir = await tempDir();
  const config = path.join(dir, 'pgcdc.yaml');
  await writeFile(config, [...httpSinkSection(['timeoutMs: 60000']), 'shutdown:', '  timeoutMs: 2000', ''].join('\n'));
  const args = [
    'drain',
    '--config',
    config,
    ...sourceArgs(db),
    '--tables',
    'public.log',
    '--http-url',
    endpoint.url,
    '--offsets',
    path.join(dir, 'offsets.json'),
    '--snapshot-mode',
    'never',
    '--log-format',
    'json',
  ];
  const env = { [SECRET_ENV]: 'drain-secret-0123456789' };
  // The slot exists first (a drain with nothing to deliver would not need the sink).
  const first = await runPgcdc([...args, '--timeout', '60s'], env);
  assert.equal(first.code, 0, first.stderr);
  await db.sql.query(`insert into log select g, 'v' || g from generate_series(1, 100) g`);
  // Change events are held (never answered): the capture streams, and its first batch never becomes durable.
  endpoint.answerWhen((body) => body.includes('"op":"c"'), { kind: 'hold' });
  const stalled = await runPgcdc([...args, '--timeout', '15s', '--json'], env);
  assert.equal(stalled.code, 3, stalled.stdout + stalled.stderr);
  const errors = stalled.stderr.split('\n').filter((line) => line.startsWith('pgcdc: error: '));
  assert.equal(errors.length, 1, stalled.stderr);
  assert.match(errors[0] ?? '', /did not reach its target \S+ within 15s: /);
  // Once it streamed (a slow start-up may take the whole time), the cause is the sink: bytes short.
  if (stalled.stderr.includes('"msg":"streaming"'))
    assert.match(errors[0] ?? '', /the confirmed position is \S+ \(\d+ bytes short; is the sink slow or stalled/);
  const json = JSON.parse(stalled.stdout) as DrainJson;
  assert.equal(json.drained, false);
  assert.match(json.error ?? '', /within 15s/);
  process.stderr.write(`drain timeout: ${errors[0]}\n`);

  // Bad input: one line, exit 2.
  const bad = await runPgcdc([...args, '--timeout', 'soon'], env);
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(bad.stderr, /--timeout must be a duration/);
});

test('drain on a PostgreSQL 16 standby: up to its replay position, every row the primary wrote before it', async () => {
  const primary = await startCluster({ major: 16 });
  const sql = new pg.Client({ connectionString: primary.url('postgres') });
  await sql.connect();
  onTeardown(() => sql.end().catch(() => undefined));
  await sql.query(`create table log (id int primary key, v text not null); create publication drain_pub for table log`);
  const standby = await startStandby(primary, { hotStandbyFeedback: true });
  await standby.caughtUp();
  const dir = await tempDir();
  const args = [
    '--source',
    standby.cluster.url('postgres'),
    '--slot',
    'drain_standby',
    '--publication',
    'drain_pub',
    '--tables',
    'public.log',
    '--no-create-publication',
    '--snapshot-mode',
    'never',
    ...jsonlArgs(dir),
  ];
  // The slot first: a logical slot on a standby waits for the primary to log its running transactions.
  const run = startPgcdc(['run', ...args]);
  await eventually(async () => {
    await sql.query('select pg_log_standby_snapshot()');
    return run.stderr().includes('"msg":"streaming"') ? true : undefined;
  }, 'streaming on the standby');
  run.kill('SIGTERM');
  assert.equal(await run.exited, 0, run.stderr());
  await sql.query(`insert into log select g, 'v' || g from generate_series(1, 500) g`);
  await standby.caughtUp();
  const drained = await runPgcdc(['drain', ...args, '--json']);
  assert.equal(drained.code, 0, drained.stderr);
  const json = JSON.parse(drained.stdout) as DrainJson;
  assert.equal(json.standby, true);
  assert.equal(json.drained, true);
  assert.ok(lsnValue(json.confirmed ?? '0/0') >= lsnValue(json.target), `${json.confirmed} >= ${json.target}`);
  const events = (await readJsonl(path.join(dir, 'events'))).filter((e) => e.value.op === 'c');
  const ids = new Set(events.map((e) => Number(e.value.after?.id)));
  process.stderr.write(
    `drain on a standby: target ${json.target} (replay), confirmed ${json.confirmed}, ${ids.size} of 500 rows, ` +
      `${events.length - ids.size} duplicated\n`,
  );
  assert.equal(ids.size, 500);
  assert.equal(events.length, 500);
  await standby.cluster.destroy();
});
