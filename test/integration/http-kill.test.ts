/**
 * pgcdc SIGKILLed 10 times at random moments while it delivers a steady insert/update/delete
 * workload to a real node:http receiver, restarted each time with the same offsets file. At the end
 * the workload stops, pgcdc catches up, and what the receiver accepted (answered 2xx), replayed in
 * arrival order onto an empty map, must equal the source table: 0 lost, 0 extra, 0 mismatched. The
 * repeats (events after the last checkpoint sent again after a kill, each with its stable id) are
 * counted and printed, not bounded: the HTTP sink is at-least-once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startPgcdc, type PgcdcProcess } from '../harness/cli.ts';
import { Workload } from '../harness/faults.ts';
import { keyMatchesBody, TestEndpoint } from '../harness/http-endpoint.ts';
import {
  awaitStreaming,
  httpRunArgs,
  httpSinkSection,
  httpVerdict,
  SECRET_ENV,
  slotCaughtUp,
  writeRunConfig,
} from '../harness/http-workload.ts';
import { eventually, freshDatabase } from '../harness/pg.ts';

const KILLS = Number(process.env.PGCDC_HTTP_KILLS ?? 10);
const SECRET = 'whsec-kill-0c4d';

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

test(`${KILLS} SIGKILLs under a workload, then the replay of what was accepted equals the source`, async (t) => {
  const started = Date.now();
  const endpoint = await TestEndpoint.start({ secret: SECRET });
  const db = await freshDatabase();
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-http-kill-'));
  await db.sql.query(`create table acct (id int primary key, balance int not null)`);
  await db.sql.query(`insert into acct select g, g from generate_series(1, 200) g`);
  const config = await writeRunConfig(dir, httpSinkSection(['maxEvents: 20']));
  const args = httpRunArgs({
    db,
    url: endpoint.url,
    offsets: path.join(dir, 'offsets.json'),
    tables: 'public.acct',
    config,
  });
  const env = { [SECRET_ENV]: SECRET };
  const workload = new Workload(db.url, 15);
  let proc: PgcdcProcess | undefined;
  const delays: number[] = [];
  const startups: number[] = [];
  try {
    for (let kill = 1; kill <= KILLS; kill++) {
      const spawned = Date.now();
      proc = startPgcdc(args, env);
      await awaitStreaming(proc, `pgcdc ${kill} streaming`);
      startups.push(Date.now() - spawned);
      // A random moment after it streams again: the kill lands anywhere in its delivery cycle.
      const delay = 200 + Math.floor(Math.random() * 1000);
      delays.push(delay);
      await new Promise((resolve) => setTimeout(resolve, delay));
      assert.equal(proc.child.exitCode, null, `pgcdc ${kill} exited before its kill:\n${proc.stderr().slice(-3000)}`);
      proc.kill('SIGKILL');
      assert.equal(await proc.exited, 137);
    }
    proc = startPgcdc(args, env);
    await awaitStreaming(proc, 'the last pgcdc streaming');
  } finally {
    await workload.stop();
  }
  await eventually(() => slotCaughtUp(db), 'pgcdc caught up with the source', 120_000);
  proc.kill('SIGTERM');
  assert.equal(await proc.exited, 0, proc.stderr().slice(-3000));
  const verdict = await httpVerdict(endpoint, db);
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  t.diagnostic(
    `http-kill: ${KILLS} kills (delays ${Math.min(...delays)}-${Math.max(...delays)} ms), ${workload.committed} ` +
      `workload transactions, ${endpoint.log.length} requests (${verdict.requests} accepted), ${verdict.events} ` +
      `events accepted, start to streaming median ${median(startups)} ms; lost ${verdict.lost}, extra ` +
      `${verdict.extra}, mismatched ${verdict.mismatched}; ${seconds} s`,
  );
  t.diagnostic(`http-kill duplicates: ${verdict.duplicated}`);
  assert.ok(workload.committed > 0, 'the workload committed transactions');
  for (const request of endpoint.log) {
    assert.equal(request.signatureValid, true, 'every request is signed');
    assert.ok(keyMatchesBody(request), 'every Idempotency-Key matches its body');
  }
  assert.deepEqual(
    { lost: verdict.lost, extra: verdict.extra, mismatched: verdict.mismatched },
    { lost: 0, extra: 0, mismatched: 0 },
  );
});
