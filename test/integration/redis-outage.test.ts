/**
 * redis-server SIGKILLed for 20 s and started again (same port, same AOF dir) while pgcdc delivers a
 * steady insert/update/delete workload: pgcdc does not exit, acknowledges nothing to PostgreSQL while
 * Redis is down (the slot's confirmed_flush_lsn does not move), keeps its memory bounded, resumes by
 * itself, and what the streams hold afterwards (XRANGE), replayed by key, equals the source: entries
 * Redis acknowledged before its crash survived in the AOF (appendfsync always), the rest came again.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { lsnValue, startPgcdc } from '../harness/cli.ts';
import { Workload } from '../harness/faults.ts';
import { eventually, freshDatabase, requireOrSkip, type TestDatabase } from '../harness/pg.ts';
import { logRecords, peakRssMb } from '../harness/process.ts';
import { redisAvailable, redisForFile } from '../harness/redis.ts';
import { redisRunArgs, redisVerdict, slotConfirmed, writeRunConfig } from '../harness/redis-workload.ts';

const skip = requireOrSkip(redisAvailable(), 'redis-server');

/** How long Redis stays down: the fault's duration (the 20 s), not a wait for state. */
const OUTAGE_MS = 20_000;

const redis = redisForFile();

async function confirmed(db: TestDatabase): Promise<string> {
  const lsn = await slotConfirmed(db);
  if (lsn === undefined) throw new Error('no slot yet');
  return lsn;
}

async function walNow(db: TestDatabase): Promise<string> {
  const { rows } = await db.sql.query<{ lsn: string }>(`select pg_current_wal_insert_lsn()::text as lsn`);
  return rows[0]?.lsn ?? '0/0';
}

/** Waits until the slot's confirmed LSN is at or past `lsn`: every change before it is in Redis. */
function confirmedPast(db: TestDatabase, lsn: string, what: string): Promise<string> {
  return eventually(
    async () => {
      const at = await confirmed(db);
      return lsnValue(at) >= lsnValue(lsn) ? at : undefined;
    },
    what,
    180_000,
  );
}

async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const match = /VmRSS:\s+(\d+) kB/.exec(status);
  return match ? Number(match[1]) / 1024 : NaN;
}

test(
  'redis-server killed for 20 s: pgcdc waits with bounded memory, acknowledges nothing, then delivers all',
  { skip },
  async (t) => {
    const server = await redis();
    const db = await freshDatabase();
    await db.sql.query(`create table acct (id int primary key, balance int not null)`);
    await db.sql.query(`insert into acct select g, g from generate_series(1, 200) g`);
    const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-redis-outage-'));
    const config = await writeRunConfig(dir);
    // The default backoff grows to 30 s: a server back after 20 s would wait up to that long again.
    const pgcdc = startPgcdc(
      redisRunArgs({
        db,
        url: server.url(),
        offsets: path.join(dir, 'offsets.json'),
        config,
        extra: ['--retry-max-delay', '4000'],
      }),
    );
    const workload = new Workload(db.url, 10);
    try {
      await confirmedPast(db, await walNow(db), 'delivery under the workload');
      const logBefore = pgcdc.stderr().length;

      await server.kill();
      const downAt = Date.now();
      const walAtKill = await walNow(db);
      // The capture has seen the outage once it schedules a retry: from then on nothing may be confirmed.
      await eventually(
        () => (logRecords(pgcdc.stderr().slice(logBefore)).some((r) => typeof r.retry === 'number') ? true : undefined),
        'pgcdc to notice that Redis is down',
      );
      const confirmedAtStop = await confirmed(db);
      const seen = new Set<string>();
      let outageRss = 0;
      while (Date.now() - downAt < OUTAGE_MS) {
        seen.add(await confirmed(db));
        outageRss = Math.max(outageRss, await rssMb(pgcdc.child.pid ?? 0));
        assert.equal(pgcdc.child.exitCode, null, `pgcdc exited while Redis was down: ${pgcdc.stderr().slice(-3000)}`);
        await delay(250);
      }
      const walAtRestart = await walNow(db);
      await server.start();
      const upAt = Date.now();
      const outageLog = logRecords(pgcdc.stderr().slice(logBefore));
      await confirmedPast(db, walAtRestart, 'the backlog of the outage delivered');
      const caughtUpMs = Date.now() - upAt;
      await workload.stop();
      await confirmedPast(db, await walNow(db), 'every change confirmed');
      const peak = await peakRssMb(pgcdc.child.pid ?? 0);
      pgcdc.kill('SIGTERM');
      assert.equal(await pgcdc.exited, 0, pgcdc.stderr().slice(-3000));

      const verdict = await redisVerdict(server, db);
      const retries = outageLog.filter((r) => typeof r.retry === 'number');
      t.diagnostic(
        `redis outage: ${upAt - downAt} ms down, ${(lsnValue(walAtRestart) - lsnValue(walAtKill)) / 1024n} KiB of ` +
          `WAL written meanwhile; ${retries.length} retries (delays ${retries.map((r) => r.delayMs).join(', ')} ms); ` +
          `caught up ${caughtUpMs} ms after the restart; peak RSS ${peak.toFixed(0)} MB (${outageRss.toFixed(0)} MB ` +
          `at most during the outage); confirmed LSN during the outage: ${[...seen].join(', ')} (WAL at the kill ` +
          `${walAtKill}); ${verdict.events} entries; lost ${verdict.lost}, extra ${verdict.extra}, mismatched ` +
          `${verdict.mismatched}, duplicates ${verdict.duplicated}`,
      );
      assert.deepEqual([...seen], [confirmedAtStop], 'the confirmed LSN does not move while Redis is down');
      assert.ok(lsnValue(confirmedAtStop) <= lsnValue(walAtKill), 'nothing written after the kill was confirmed');
      assert.ok(retries.length > 0, 'the capture was retried');
      // Bounded, not proportional to the outage: while Redis is down every start-up fails before the
      // replication connection opens, so nothing is read.
      assert.ok(peak < 450, `peak RSS ${peak.toFixed(0)} MB`);
      assert.deepEqual(
        { lost: verdict.lost, extra: verdict.extra, mismatched: verdict.mismatched },
        { lost: 0, extra: 0, mismatched: 0 },
      );
    } finally {
      await workload.stop();
    }
  },
);
