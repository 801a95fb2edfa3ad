/**
 * Network faults between pgcdc and PostgreSQL, through a loopback proxy (test/harness/tcp-proxy.ts),
 * under an insert/update/delete workload: connections cut, the link stalled, the replication or the
 * catalog connection gone half-open (silent, never closed). The server's wal_sender_timeout is 5 s,
 * pgcdc's statement limit 5 s, so every fault is noticed quickly.
 *
 * 1. Detection: with retries off (--retry-give-up-after 0), each fault makes pgcdc fail promptly with
 *    SOURCE_TIMEOUT or CONNECTION_LOST instead of hanging; started again, it resumes with nothing lost
 *    or duplicated.
 * 2. Riding through: ONE pgcdc process, which never exits, through 10 cuts, 10 stalls (5 of 30 s, 5
 *    of 90 s), 5 half-open replication and 5 half-open catalog connections, recovering in the process
 *    (src/lifecycle/supervisor.ts). PGCDC_NETWORK_FAULTS_QUICK=1 runs one of each, with shorter
 *    stalls, for development.
 *
 * Each iteration prints its detection time (fault to pgcdc's line naming it) and recovery time (fault,
 * or the stall's end, to a change made afterwards being delivered); nothing asserts on times.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import {
  causeOf,
  faultBench,
  faultTable,
  lineAfter,
  markerDelivered,
  slotInactive,
  startThroughProxy,
  verdict,
  Workload,
  type FaultBench,
  type FaultRow,
} from '../harness/network-faults.ts';
import type { PgcdcProcess } from '../harness/cli.ts';

type Fault = 'cut' | 'stall' | 'half-open replication' | 'half-open catalog';

const FAULT_LINE = /SOURCE_TIMEOUT|CONNECTION_LOST|REPLICATION_STREAM_FAILED|SOURCE_QUERY_FAILED/;

/**
 * Applies `fault` and returns when it was applied; a stall also returns when it ended. A catalog
 * half-open is made to matter: a column added to acct sends a new Relation message, whose catalog
 * lookup is then the query that waits on the silent connection.
 */
async function inject(
  bench: FaultBench,
  fault: Fault,
  stallMs: number,
  iteration: number,
): Promise<{ at: number; stalled?: Promise<number> }> {
  const at = Date.now();
  switch (fault) {
    case 'cut':
      assert.ok(bench.proxy.cut() > 0, 'a connection to cut');
      return { at };
    case 'stall':
      return { at, stalled: bench.proxy.stall(stallMs).then(() => Date.now()) };
    case 'half-open replication':
      assert.equal(bench.proxy.halfOpen('replication'), 1, 'one replication connection');
      return { at };
    case 'half-open catalog': {
      assert.ok(bench.proxy.halfOpen('regular') >= 1, 'the catalog connection');
      await bench.db.sql.query(`alter table acct add column c${iteration}_${Date.now() % 100_000} int`);
      // The next change of acct (the workload's) carries the new Relation message.
      return { at: Date.now() };
    }
  }
}

async function runDetection(t: TestContext, bench: FaultBench, faults: readonly Fault[]): Promise<FaultRow[]> {
  const rows: FaultRow[] = [];
  for (const [index, fault] of faults.entries()) {
    await slotInactive(bench);
    const proc = startThroughProxy(bench, false);
    await markerDelivered(bench, proc, 120_000);
    const offset = proc.stderr().length;
    const injected = await inject(bench, fault, 30_000, index);
    const seen = await lineAfter(proc, offset, FAULT_LINE, `pgcdc to notice the ${fault}`, 180_000);
    const code = await proc.exited;
    assert.equal(code, 1, `pgcdc exits 1 on a retryable fault, not ${code}: ${proc.stderr().slice(offset)}`);
    const resumeFrom = injected.stalled ? await injected.stalled : seen.at;
    await slotInactive(bench);
    const again = startThroughProxy(bench);
    await markerDelivered(bench, again, 120_000);
    const row: FaultRow = {
      fault,
      iteration: index + 1,
      detectionMs: seen.at - injected.at,
      recoveryMs: Date.now() - resumeFrom,
      cause: causeOf(seen.line),
    };
    rows.push(row);
    t.diagnostic(`${fault}: detected in ${row.detectionMs} ms (${row.cause}); ${seen.line.slice(0, 300)}`);
    again.kill('SIGTERM');
    assert.equal(await again.exited, 0);
  }
  return rows;
}

const DETECTION_TEST =
  'each network fault makes pgcdc stop promptly with a retryable error, and a restart resumes exactly';
test(DETECTION_TEST, async (t) => {
  const bench = await faultBench();
  const workload = await Workload.start(bench.db);
  const rows = await runDetection(t, bench, ['cut', 'half-open replication', 'half-open catalog', 'stall']);
  await workload.stop();
  await slotInactive(bench);
  const last = startThroughProxy(bench);
  await markerDelivered(bench, last, 120_000);
  last.kill('SIGTERM');
  assert.equal(await last.exited, 0);
  for (const line of faultTable(rows)) t.diagnostic(line);
  const result = await verdict(bench);
  t.diagnostic(`workload: ${workload.operations} transactions, ${result.events} events delivered`);
  for (const row of rows) assert.notEqual(row.cause, '?', `${row.fault}: the line names the fault`);
  assert.deepEqual(
    { lost: result.lost, extra: result.extra, mismatched: result.mismatched, duplicated: result.duplicated },
    { lost: 0, extra: 0, mismatched: 0, duplicated: 0 },
  );
});

/** The fault plan of the never-exiting run: [fault, stall duration]. */
function plan(): [Fault, number][] {
  if (process.env.PGCDC_NETWORK_FAULTS_QUICK === '1')
    return [
      ['cut', 0],
      ['stall', 15_000],
      ['half-open replication', 0],
      ['half-open catalog', 0],
    ];
  const faults: [Fault, number][] = [];
  for (let i = 0; i < 10; i++) faults.push(['cut', 0]);
  for (let i = 0; i < 10; i++) faults.push(['stall', i < 5 ? 30_000 : 90_000]);
  for (let i = 0; i < 5; i++) faults.push(['half-open replication', 0]);
  for (let i = 0; i < 5; i++) faults.push(['half-open catalog', 0]);
  return faults;
}

async function rideThrough(t: TestContext, bench: FaultBench, proc: PgcdcProcess): Promise<FaultRow[]> {
  const rows: FaultRow[] = [];
  const iterations = new Map<Fault, number>();
  for (const [index, [fault, stallMs]] of plan().entries()) {
    const iteration = (iterations.get(fault) ?? 0) + 1;
    iterations.set(fault, iteration);
    // Streaming before each fault: a marker delivered.
    await markerDelivered(bench, proc);
    const offset = proc.stderr().length;
    const injected = await inject(bench, fault, stallMs, index);
    // A stall shorter than the receive timeout may pass unnoticed: then there is no line to wait for.
    const seen = await Promise.race([
      lineAfter(proc, offset, FAULT_LINE, `pgcdc to notice the ${fault}`),
      ...(injected.stalled ? [injected.stalled.then(() => undefined)] : []),
    ]);
    const resumeFrom = injected.stalled ? await injected.stalled : (seen?.at ?? Date.now());
    await markerDelivered(bench, proc);
    assert.equal(proc.child.exitCode, null, `pgcdc still runs after ${fault} ${iteration}`);
    const row: FaultRow = {
      fault: fault === 'stall' ? `stall ${stallMs / 1000} s` : fault,
      iteration,
      detectionMs: seen === undefined ? undefined : seen.at - injected.at,
      recoveryMs: Date.now() - resumeFrom,
      cause: seen === undefined ? 'not noticed' : causeOf(seen.line),
    };
    rows.push(row);
    const line =
      `${row.fault} #${iteration}: detection ${row.detectionMs ?? '-'} ms (${row.cause}), ` +
      `recovery ${row.recoveryMs} ms`;
    t.diagnostic(line);
  }
  return rows;
}

const RIDE_TEST = 'one pgcdc process rides through cuts, stalls and half-open connections: nothing lost or duplicated';
test(RIDE_TEST, async (t) => {
  const bench = await faultBench();
  const workload = await Workload.start(bench.db);
  const proc = startThroughProxy(bench);
  const rows = await rideThrough(t, bench, proc);
  await workload.stop();
  await markerDelivered(bench, proc);
  proc.kill('SIGTERM');
  assert.equal(await proc.exited, 0, 'the one pgcdc process stops cleanly at the end, and only then');
  for (const line of faultTable(rows)) t.diagnostic(line);
  const result = await verdict(bench);
  t.diagnostic(
    `workload: ${workload.operations} transactions, ${result.events} events; lost ${result.lost}, ` +
      `duplicated ${result.duplicated}`,
  );
  assert.deepEqual(
    { lost: result.lost, extra: result.extra, mismatched: result.mismatched, duplicated: result.duplicated },
    { lost: 0, extra: 0, mismatched: 0, duplicated: 0 },
  );
});
