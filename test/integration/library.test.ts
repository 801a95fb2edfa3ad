/**
 * The library (`import { capture } from 'pgcdc'`, docs/library.md) against real PostgreSQL: the
 * handler's events replayed onto an empty map equal the source after an initial snapshot and an
 * insert/update/delete workload; a handler that rejects is never acknowledged past and gets the
 * events again; stop() and a new capture resume from the checkpoint; a program using the library,
 * SIGKILLed under a workload, loses nothing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { capture, HandlerError, type CaptureSettings, type CdcEvent, type EngineEvent } from '../../src/index.ts';
import { compareRows, lsnValue, parseLines, replay, type DeliveredEvent } from '../harness/cli.ts';
import { Workload } from '../harness/faults.ts';
import { childStreaming, startLibraryChild } from '../harness/library-child.ts';
import { eventually, freshDatabase, type TestDatabase } from '../harness/pg.ts';
import type { PgcdcProcess } from '../harness/cli.ts';

const KILLS = Number(process.env.PGCDC_LIBRARY_KILLS ?? 5);

interface Acct {
  id: number;
  balance: number;
}

/** A database with `acct` seeded (the initial snapshot reads these rows), and capture settings for it. */
async function setup(): Promise<{ db: TestDatabase; settings: CaptureSettings; topic: string; dir: string }> {
  const db = await freshDatabase();
  await db.sql.query(`create table acct (id int primary key, balance int not null)`);
  await db.sql.query(`insert into acct select g, g from generate_series(1, 200) g`);
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-library-'));
  const settings: CaptureSettings = {
    source: { url: db.url },
    slot: `s_${db.name}`,
    publication: `p_${db.name}`,
    tables: ['public.acct'],
    offsets: path.join(dir, 'offsets.json'),
    statusIntervalMs: 200,
    heartbeat: { interval: 300 },
    batch: { maxDelayMs: 20 },
    retry: { initialDelayMs: 50, maxDelayMs: 500 },
    log: { level: 'error', format: 'json' },
  };
  return { db, settings, topic: `${db.name}.public.acct`, dir };
}

async function confirmedLsn(db: TestDatabase, slot: string): Promise<bigint> {
  const { rows } = await db.sql.query<{ lsn: string | null }>(
    `select confirmed_flush_lsn::text as lsn from pg_replication_slots where slot_name = $1`,
    [slot],
  );
  return lsnValue(rows[0]?.lsn ?? '0/0');
}

/** The slot confirmed the server's current WAL position: everything committed was handed over and acknowledged. */
async function caughtUp(db: TestDatabase, slot: string): Promise<true | undefined> {
  const { rows } = await db.sql.query<{ ok: boolean | null }>(
    `select confirmed_flush_lsn >= pg_current_wal_lsn() as ok from pg_replication_slots where slot_name = $1`,
    [slot],
  );
  return rows[0]?.ok ? true : undefined;
}

interface Verdict {
  lost: number;
  extra: number;
  mismatched: number;
  duplicates: number;
  events: number;
}

/** Replays `events` (in the order the handler got them) onto an empty map and compares it with `acct`. */
async function verdict(db: TestDatabase, topic: string, events: readonly unknown[]): Promise<Verdict> {
  const { rows } = await db.sql.query<Acct>(`select id, balance from acct`);
  const source = new Map(rows.map((r) => [JSON.stringify({ id: r.id }), { id: r.id, balance: r.balance }]));
  const replayed = replay(events as DeliveredEvent[]);
  return {
    ...compareRows(replayed.tables.get(topic), source),
    duplicates: replayed.duplicates,
    events: events.length,
  };
}

/** Waits until the workload committed `n` more transactions. */
async function committed(workload: Workload, n: number): Promise<void> {
  const target = workload.committed + n;
  await eventually(() => (workload.committed >= target ? true : undefined), `${n} workload transactions`);
}

test('capture: the handler gets the snapshot and every change; the replay equals the source', async (t) => {
  const { db, settings, topic } = await setup();
  const received: CdcEvent<Acct>[] = [];
  let batches = 0;
  const handle = capture<Acct>({
    ...settings,
    handler: (events) => {
      batches++;
      for (const event of events) received.push(event);
      return Promise.resolve();
    },
  });
  await eventually(() => (handle.status().state === 'streaming' ? true : undefined), 'the capture streaming');
  const workload = new Workload(db.url, 10);
  try {
    await committed(workload, 150);
  } finally {
    await workload.stop();
  }
  await db.sql.query(`truncate acct`);
  await db.sql.query(`insert into acct values (1, 1), (2, 2)`);
  await eventually(() => caughtUp(db, `s_${db.name}`), 'the slot caught up');
  assert.equal(await handle.stop(), true, 'a clean stop');
  await handle.done;
  const result = await verdict(db, topic, received);
  const ops = new Set(received.map((e) => e.op));
  t.diagnostic(
    `library replay: ${workload.committed} transactions, ${result.events} events in ${batches} batches; ` +
      `lost ${result.lost}, extra ${result.extra}, mismatched ${result.mismatched}, duplicates ${result.duplicates}`,
  );
  for (const op of ['r', 'c', 'u', 'd', 't'] as const) assert.ok(ops.has(op), `op ${op} delivered`);
  assert.equal(received.filter((e) => e.op === 'r').length, 200, 'the initial snapshot: every seeded row once');
  assert.deepEqual(result, { lost: 0, extra: 0, mismatched: 0, duplicates: 0, events: received.length });
  assert.ok(handle.status().eventsDelivered > 0, 'the status counts what the handler accepted');
});

test('a rejecting handler: nothing past it is acknowledged, the events come again, the replay is exact', async (t) => {
  const { db, settings, topic } = await setup();
  const slot = `s_${db.name}`;
  const MARKER = 100_000;
  const received: CdcEvent<Acct>[] = [];
  const engineEvents: EngineEvent[] = [];
  let rejectedAt: bigint | undefined;
  let confirmedAtRedelivery: bigint | undefined;
  const hasMarker = (events: readonly CdcEvent<Acct>[]): boolean =>
    events.some((e) => e.op === 'c' && e.value.after.id === MARKER);
  const handle = capture<Acct>({
    ...settings,
    onEngineEvent: (event) => engineEvents.push(event),
    handler: async (events) => {
      if (hasMarker(events)) {
        const commits = events.flatMap((e) => (e.op === 'c' || e.op === 'u' || e.op === 'd' ? [e] : []));
        const first = commits.reduce((min, e) => {
          const lsn = lsnValue(e.value.source.commit_lsn);
          return lsn < min ? lsn : min;
        }, lsnValue('FFFFFFFF/FFFFFFFF'));
        if (rejectedAt === undefined) {
          rejectedAt = first;
          throw new Error('the store is unavailable');
        }
        // Handed over again: the engine has not acknowledged anything of the rejected batch.
        confirmedAtRedelivery ??= await confirmedLsn(db, slot);
      }
      for (const event of events) received.push(event);
    },
  });
  await eventually(() => (handle.status().state === 'streaming' ? true : undefined), 'the capture streaming');
  const workload = new Workload(db.url, 10);
  try {
    await committed(workload, 40);
    await db.sql.query(`insert into acct values ($1, 0)`, [MARKER]);
    await eventually(() => (confirmedAtRedelivery === undefined ? undefined : true), 'the rejected batch again');
    await committed(workload, 40);
  } finally {
    await workload.stop();
  }
  await eventually(() => caughtUp(db, slot), 'the slot caught up');
  assert.equal(await handle.stop(), true);
  await handle.done;
  const result = await verdict(db, topic, received);
  const retry = engineEvents.find((e) => e.type === 'retry-scheduled');
  t.diagnostic(
    `library reject-once: rejected batch's first commit ${rejectedAt}, confirmed when handed over again ` +
      `${confirmedAtRedelivery}; ${result.events} events; lost ${result.lost}, extra ${result.extra}, mismatched ` +
      `${result.mismatched}, duplicates ${result.duplicates}`,
  );
  assert.ok(rejectedAt !== undefined && confirmedAtRedelivery !== undefined);
  assert.ok(confirmedAtRedelivery <= rejectedAt, 'the slot was not confirmed past the rejected batch');
  assert.deepEqual(retry && retry.type === 'retry-scheduled' ? retry.cause : undefined, 'SINK_FAILED');
  assert.equal(received.filter((e) => e.op === 'c' && e.value.after.id === MARKER).length, 1);
  assert.deepEqual(
    { lost: result.lost, extra: result.extra, mismatched: result.mismatched },
    {
      lost: 0,
      extra: 0,
      mismatched: 0,
    },
  );
});

test("onHandlerError 'stop': the capture ends with the handler's error, nothing of it acknowledged", async () => {
  const { db, settings } = await setup();
  const slot = `s_${db.name}`;
  let rejectedAt: bigint | undefined;
  const handle = capture<Acct>({
    ...settings,
    onHandlerError: (error) => (error instanceof RangeError ? 'stop' : 'retry'),
    handler: (events) => {
      const change = events.find((e) => e.op === 'c');
      if (change?.op === 'c') {
        rejectedAt = lsnValue(change.value.source.commit_lsn);
        return Promise.reject(new RangeError('balance out of range'));
      }
      return Promise.resolve();
    },
  });
  await eventually(() => (handle.status().state === 'streaming' ? true : undefined), 'the capture streaming');
  await db.sql.query(`insert into acct values (500, 1)`);
  const failure = await handle.done.then(
    () => undefined,
    (error: unknown) => error,
  );
  assert.ok(failure instanceof HandlerError, String(failure));
  assert.equal(failure.code, 'SINK_FAILED');
  assert.equal(failure.retryable, false);
  assert.ok(failure.cause instanceof RangeError);
  assert.match(failure.message, /^the capture handler rejected a batch of 1 event \(.+\): balance out of range$/);
  assert.ok(rejectedAt !== undefined && (await confirmedLsn(db, slot)) <= rejectedAt);
  assert.equal(await handle.stop(), true, 'stop after the end is a no-op');
});

test('stop() and a new capture: it resumes from the checkpoint, nothing lost or repeated', async (t) => {
  const { db, settings, topic } = await setup();
  const slot = `s_${db.name}`;
  const received: CdcEvent<Acct>[] = [];
  const runCapture = (): ReturnType<typeof capture> =>
    capture<Acct>({
      ...settings,
      handler: (events) => {
        for (const event of events) received.push(event);
        return Promise.resolve();
      },
    });
  const first = runCapture();
  await eventually(() => (first.status().state === 'streaming' ? true : undefined), 'the first capture streaming');
  const workload = new Workload(db.url, 10);
  let second: ReturnType<typeof capture> | undefined;
  try {
    await committed(workload, 50);
    assert.equal(await first.stop(), true, 'the first capture stopped cleanly');
    await first.done;
    const firstCount = received.length;
    // Changes while nothing captures.
    await committed(workload, 50);
    second = runCapture();
    await eventually(() => (second?.status().state === 'streaming' ? true : undefined), 'the second capture streaming');
    await committed(workload, 50);
    t.diagnostic(`library resume: ${firstCount} events before the stop`);
  } finally {
    await workload.stop();
  }
  await eventually(() => caughtUp(db, slot), 'the slot caught up');
  assert.equal(await second.stop(), true);
  await second.done;
  const result = await verdict(db, topic, received);
  t.diagnostic(
    `library resume: ${result.events} events; lost ${result.lost}, extra ${result.extra}, mismatched ` +
      `${result.mismatched}, duplicates ${result.duplicates}`,
  );
  assert.equal(received.filter((e) => e.op === 'r').length, 200, 'the snapshot was taken once');
  assert.deepEqual(result, { lost: 0, extra: 0, mismatched: 0, duplicates: 0, events: received.length });
});

test(`a program using the library, SIGKILLed ${KILLS} times under a workload, loses nothing`, async (t) => {
  const { db, settings, topic, dir } = await setup();
  const slot = `s_${db.name}`;
  const out = path.join(dir, 'events.jsonl');
  const workload = new Workload(db.url, 15);
  let proc: PgcdcProcess | undefined;
  try {
    for (let kill = 1; kill <= KILLS; kill++) {
      proc = startLibraryChild(out, settings);
      await childStreaming(proc, `library child ${kill} streaming`);
      // A random moment after it streams: the kill lands anywhere in its delivery cycle.
      await new Promise((resolve) => setTimeout(resolve, 200 + Math.floor(Math.random() * 800)));
      assert.equal(proc.child.exitCode, null, `child ${kill} exited before its kill:\n${proc.stderr()}`);
      proc.kill('SIGKILL');
      assert.equal(await proc.exited, 137);
    }
    proc = startLibraryChild(out, settings);
    await childStreaming(proc, 'the last library child streaming');
  } finally {
    await workload.stop();
  }
  await eventually(() => caughtUp(db, slot), 'the slot caught up', 120_000);
  proc.kill('SIGTERM');
  assert.equal(await proc.exited, 0, proc.stderr());
  const events = parseLines(await readFile(out, 'utf8'));
  const result = await verdict(db, topic, events);
  t.diagnostic(
    `library-kill: ${KILLS} SIGKILLs, ${workload.committed} workload transactions, ${result.events} events; ` +
      `lost ${result.lost}, extra ${result.extra}, mismatched ${result.mismatched}, duplicates ${result.duplicates}`,
  );
  assert.ok(workload.committed > 0);
  assert.deepEqual(
    { lost: result.lost, extra: result.extra, mismatched: result.mismatched },
    {
      lost: 0,
      extra: 0,
      mismatched: 0,
    },
  );
});
