/**
 * pgcdc SIGKILLed 20 times at random moments while it delivers a steady insert/update/delete workload
 * to a real Kafka broker, in each delivery mode, restarted each time with the same offsets file. At the
 * end the workload stops, pgcdc catches up, and Kafka's own Java consumer (read_committed) reads every
 * topic back; the replay onto an empty map must equal the source table.
 *
 * - exactly-once: 0 lost, 0 extra, 0 mismatched and no event id twice (a kill before the transaction's
 *   commit leaves nothing visible; the next pgcdc aborts it and writes the batch again).
 * - at-least-once: 0 lost, 0 extra, 0 mismatched; the repeats (records sent again after a kill, each
 *   with its stable id) are counted and printed, not bounded.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startPgcdc, type PgcdcProcess } from '../harness/cli.ts';
import { Workload } from '../harness/faults.ts';
import { kafkaAvailable, kafkaForFile } from '../harness/kafka.ts';
import {
  awaitStreaming as streaming,
  kafkaRunArgs,
  kafkaVerdict,
  slotCaughtUp,
  writeRunConfig,
} from '../harness/kafka-workload.ts';
import { eventually, freshDatabase, requireOrSkip } from '../harness/pg.ts';
import { logRecords } from '../harness/process.ts';

const skip = requireOrSkip(kafkaAvailable(), 'Apache Kafka (java, and the test/kafka jars or mvn)');
const KILLS = Number(process.env.PGCDC_KAFKA_KILLS ?? 20);

const kafka = kafkaForFile();

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

for (const delivery of ['exactly-once', 'at-least-once'] as const) {
  test(`${delivery}: ${KILLS} SIGKILLs under a workload, then the replay equals the source`, { skip }, async (t) => {
    const started = Date.now();
    const broker = await kafka();
    const db = await freshDatabase();
    const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-kafka-kill-'));
    await db.sql.query(`create table acct (id int primary key, balance int not null)`);
    await db.sql.query(`insert into acct select g, g from generate_series(1, 200) g`);
    const config = await writeRunConfig(dir);
    const args = kafkaRunArgs({
      db,
      bootstrap: broker.bootstrap,
      offsets: path.join(dir, 'offsets.json'),
      delivery,
      tables: 'public.acct',
      config,
    });
    const workload = new Workload(db.url, 15);
    let proc: PgcdcProcess | undefined;
    const delays: number[] = [];
    const startups: number[] = [];
    let retries = 0;
    try {
      for (let kill = 1; kill <= KILLS; kill++) {
        const spawned = Date.now();
        proc = startPgcdc(args);
        await streaming(proc, `pgcdc ${kill} streaming`);
        startups.push(Date.now() - spawned);
        retries += logRecords(proc.stderr()).filter((r) => typeof r.retry === 'number').length;
        // A fixed random moment after it streams again: the kill lands anywhere in its delivery cycle.
        const delay = 200 + Math.floor(Math.random() * 1000);
        delays.push(delay);
        await new Promise((resolve) => setTimeout(resolve, delay));
        assert.equal(proc.child.exitCode, null, `pgcdc ${kill} exited before its kill:\n${proc.stderr().slice(-3000)}`);
        proc.kill('SIGKILL');
        assert.equal(await proc.exited, 137);
      }
      proc = startPgcdc(args);
      await streaming(proc, 'the last pgcdc streaming');
    } finally {
      await workload.stop();
    }
    await eventually(() => slotCaughtUp(db), 'pgcdc caught up with the source', 120_000);
    proc.kill('SIGTERM');
    assert.equal(await proc.exited, 0, proc.stderr().slice(-3000));
    const verdict = await kafkaVerdict(broker.bootstrap, db);
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    t.diagnostic(
      `kafka-kill ${delivery}: ${KILLS} kills (delays ${Math.min(...delays)}-${Math.max(...delays)} ms), ` +
        `${workload.committed} workload transactions, ${verdict.events} events read, ${verdict.checkpoints} ` +
        `checkpoints, start to streaming median ${median(startups)} ms, ${retries} retries before streaming; ` +
        `lost ${verdict.lost}, extra ${verdict.extra}, mismatched ${verdict.mismatched}; ${seconds} s`,
    );
    t.diagnostic(`kafka-kill ${delivery} duplicates: ${verdict.duplicated}`);
    assert.ok(workload.committed > 0, 'the workload committed transactions');
    assert.deepEqual(
      { lost: verdict.lost, extra: verdict.extra, mismatched: verdict.mismatched },
      { lost: 0, extra: 0, mismatched: 0 },
    );
    if (delivery === 'exactly-once') assert.equal(verdict.duplicated, 0, 'no event id twice');
    assert.ok(verdict.checkpoints > 0, 'checkpoints are in the offsets topic');
  });
}
