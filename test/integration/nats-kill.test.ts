/**
 * pgcdc SIGKILLed 10 times at random moments while it delivers a steady insert/update/delete workload
 * to a real nats-server with JetStream, restarted each time with the same offsets file. At the end the
 * workload stops, pgcdc catches up, and an ordered consumer reads the stream back; the replay onto an
 * empty map must equal the source table: 0 lost, 0 extra, 0 mismatched, and no event id twice in the
 * stream (the events sent again after each kill carry the same Nats-Msg-Id, and JetStream's duplicate
 * window drops them). How many each restarted pgcdc sent again and JetStream dropped is read from
 * its log line and printed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startPgcdc, type PgcdcProcess } from '../harness/cli.ts';
import { Workload } from '../harness/faults.ts';
import { natsAvailable, natsForFile } from '../harness/nats.ts';
import {
  awaitStreaming as streaming,
  natsRunArgs,
  natsVerdict,
  slotCaughtUp,
  writeRunConfig,
} from '../harness/nats-workload.ts';
import { eventually, freshDatabase, requireOrSkip } from '../harness/pg.ts';
import { logRecords } from '../harness/process.ts';

const skip = requireOrSkip(natsAvailable(), 'nats-server');
const KILLS = Number(process.env.PGCDC_NATS_KILLS ?? 10);

const nats = natsForFile();

test(
  `${KILLS} SIGKILLs under a workload: the replay equals the source, no duplicate in the stream`,
  { skip },
  async (t) => {
    const started = Date.now();
    const server = await nats();
    const db = await freshDatabase();
    const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-nats-kill-'));
    await db.sql.query(`create table acct (id int primary key, balance int not null)`);
    await db.sql.query(`insert into acct select g, g from generate_series(1, 200) g`);
    const config = await writeRunConfig(dir);
    const args = natsRunArgs({
      db,
      url: server.url,
      offsets: path.join(dir, 'offsets.json'),
      tables: 'public.acct',
      config,
    });
    const workload = new Workload(db.url, 15);
    let proc: PgcdcProcess | undefined;
    const procs: PgcdcProcess[] = [];
    const delays: number[] = [];
    try {
      for (let kill = 1; kill <= KILLS; kill++) {
        proc = startPgcdc(args);
        procs.push(proc);
        await streaming(proc, `pgcdc ${kill} streaming`);
        // A fixed random moment after it streams again: the kill lands anywhere in its delivery cycle.
        const delay = 200 + Math.floor(Math.random() * 1000);
        delays.push(delay);
        await new Promise((resolve) => setTimeout(resolve, delay));
        assert.equal(proc.child.exitCode, null, `pgcdc ${kill} exited before its kill:\n${proc.stderr().slice(-3000)}`);
        proc.kill('SIGKILL');
        assert.equal(await proc.exited, 137);
      }
      proc = startPgcdc(args);
      procs.push(proc);
      await streaming(proc, 'the last pgcdc streaming');
    } finally {
      await workload.stop();
    }
    await eventually(() => slotCaughtUp(db), 'pgcdc caught up with the source', 120_000);
    proc.kill('SIGTERM');
    assert.equal(await proc.exited, 0, proc.stderr().slice(-3000));
    const verdict = await natsVerdict(server, db);
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    let dropped = 0;
    for (const one of procs)
      for (const record of logRecords(one.stderr()))
        if (typeof record.duplicates === 'number' && record.msg.startsWith('JetStream dropped'))
          dropped += record.duplicates;
    t.diagnostic(
      `nats-kill: ${KILLS} kills (delays ${Math.min(...delays)}-${Math.max(...delays)} ms), ${workload.committed} ` +
        `workload transactions, ${verdict.events} messages in the stream; lost ${verdict.lost}, extra ` +
        `${verdict.extra}, mismatched ${verdict.mismatched}, duplicates ${verdict.duplicated} (JetStream dropped ` +
        `${dropped} resent events as duplicates); ${seconds} s`,
    );
    assert.ok(workload.committed > 0, 'the workload committed transactions');
    assert.deepEqual(
      { lost: verdict.lost, extra: verdict.extra, mismatched: verdict.mismatched, duplicated: verdict.duplicated },
      { lost: 0, extra: 0, mismatched: 0, duplicated: 0 },
    );
  },
);
