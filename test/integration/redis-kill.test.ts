/**
 * pgcdc SIGKILLed 10 times at random moments while it delivers a steady insert/update/delete workload
 * to a real redis-server (AOF, appendfsync always), restarted each time with the same offsets file.
 * At the end the workload stops, pgcdc catches up, and the streams are read back with XRANGE; the
 * replay onto an empty map must equal the source table: 0 lost, 0 extra, 0 mismatched. The repeats
 * (entries added again after a kill, each with its stable `id` field, which a consumer drops) are
 * counted and printed, not bounded: Redis has no server-side deduplication.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startPgcdc, type PgcdcProcess } from '../harness/cli.ts';
import { Workload } from '../harness/faults.ts';
import { eventually, freshDatabase, requireOrSkip } from '../harness/pg.ts';
import { logRecords } from '../harness/process.ts';
import { redisAvailable, redisForFile } from '../harness/redis.ts';
import { awaitStreaming, redisRunArgs, redisVerdict, slotCaughtUp, writeRunConfig } from '../harness/redis-workload.ts';

const skip = requireOrSkip(redisAvailable(), 'redis-server');
const KILLS = Number(process.env.PGCDC_REDIS_KILLS ?? 10);

const redis = redisForFile();

test(
  `${KILLS} SIGKILLs of pgcdc under a workload, then the replay from XRANGE equals the source`,
  { skip },
  async (t) => {
    const started = Date.now();
    const server = await redis();
    const db = await freshDatabase();
    const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-redis-kill-'));
    await db.sql.query(`create table acct (id int primary key, balance int not null)`);
    await db.sql.query(`insert into acct select g, g from generate_series(1, 200) g`);
    const config = await writeRunConfig(dir);
    const args = redisRunArgs({
      db,
      url: server.url(),
      offsets: path.join(dir, 'offsets.json'),
      tables: 'public.acct',
      config,
    });
    const workload = new Workload(db.url, 15);
    let proc: PgcdcProcess | undefined;
    const delays: number[] = [];
    let retries = 0;
    try {
      for (let kill = 1; kill <= KILLS; kill++) {
        proc = startPgcdc(args);
        await awaitStreaming(proc, `pgcdc ${kill} streaming`);
        retries += logRecords(proc.stderr()).filter((r) => typeof r.retry === 'number').length;
        // A random moment after it streams again: the kill lands anywhere in its delivery cycle.
        const delay = 200 + Math.floor(Math.random() * 1000);
        delays.push(delay);
        await new Promise((resolve) => setTimeout(resolve, delay));
        assert.equal(proc.child.exitCode, null, `pgcdc ${kill} exited before its kill:\n${proc.stderr().slice(-3000)}`);
        proc.kill('SIGKILL');
        assert.equal(await proc.exited, 137);
      }
      proc = startPgcdc(args);
      await awaitStreaming(proc, 'the last pgcdc streaming');
    } finally {
      await workload.stop();
    }
    await eventually(() => slotCaughtUp(db), 'pgcdc caught up with the source', 120_000);
    proc.kill('SIGTERM');
    assert.equal(await proc.exited, 0, proc.stderr().slice(-3000));
    const verdict = await redisVerdict(server, db);
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    t.diagnostic(
      `redis-kill: ${KILLS} kills (delays ${Math.min(...delays)}-${Math.max(...delays)} ms), ${workload.committed} ` +
        `workload transactions, ${verdict.events} entries read, ${retries} retries before streaming; lost ` +
        `${verdict.lost}, extra ${verdict.extra}, mismatched ${verdict.mismatched}; ${seconds} s`,
    );
    t.diagnostic(`redis-kill duplicates (dropped by a consumer by the id field): ${verdict.duplicated}`);
    assert.ok(workload.committed > 0, 'the workload committed transactions');
    assert.deepEqual(
      { lost: verdict.lost, extra: verdict.extra, mismatched: verdict.mismatched, fields: verdict.mismatchedFields },
      { lost: 0, extra: 0, mismatched: 0, fields: 0 },
    );
  },
);
