/**
 * The HTTP sink when the endpoint fails under it: the real CLI, a real PostgreSQL, a real node:http
 * receiver and a steady insert/update/delete workload. The endpoint answers 503 for 20 s, then holds
 * every request past the sink's timeoutMs for 10 s, then answers 429 with Retry-After: 2, then
 * accepts again. Meanwhile pgcdc does not exit or restart its capture, the slot's confirmed position
 * does not move (nothing is acknowledged that the endpoint did not accept), memory stays bounded
 * (reading from PostgreSQL pauses); Retry-After is honoured; afterwards everything arrives and the
 * replay of what the endpoint accepted equals the source: 0 lost.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { lsnValue, startPgcdc, type PgcdcProcess } from '../harness/cli.ts';
import { Workload } from '../harness/faults.ts';
import { TestEndpoint, type Answer } from '../harness/http-endpoint.ts';
import {
  awaitStreaming,
  httpRunArgs,
  httpSinkSection,
  httpVerdict,
  SECRET_ENV,
  slotConfirmed,
  writeRunConfig,
} from '../harness/http-workload.ts';
import { eventually, freshDatabase, type TestDatabase } from '../harness/pg.ts';
import { logRecords, peakRssMb, type LogRecord } from '../harness/process.ts';

const SECRET = 'whsec-outage-77aa';
const UNAVAILABLE_MS = 20_000;
const HOLDING_MS = 10_000;
const TIMEOUT_MS = 1000;

async function walNow(db: TestDatabase): Promise<string> {
  const { rows } = await db.sql.query<{ lsn: string }>(`select pg_current_wal_insert_lsn()::text as lsn`);
  return rows[0]?.lsn ?? '0/0';
}

/** Waits until the slot's confirmed LSN is at or past `lsn`. */
function confirmedPast(db: TestDatabase, lsn: string, what: string): Promise<string> {
  return eventually(
    async () => {
      const confirmed = await slotConfirmed(db);
      return confirmed !== undefined && lsnValue(confirmed) >= lsnValue(lsn) ? confirmed : undefined;
    },
    what,
    180_000,
  );
}

/** Resident set size of a running process now, in MB. */
async function rssMb(pid: number): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  const match = /VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) / 1024 : NaN;
}

/** The sink's retry lines since log offset `from`. */
function sinkRetries(proc: PgcdcProcess, from: number): LogRecord[] {
  return logRecords(proc.stderr().slice(from)).filter((r) => typeof r.attempt === 'number' && r.level === 40);
}

test('503 for 20 s, timeouts, then 429 + Retry-After: pgcdc waits, acknowledges nothing, delivers all', async (t) => {
  const endpoint = await TestEndpoint.start({ secret: SECRET });
  const db = await freshDatabase();
  await db.sql.query(`create table acct (id int primary key, balance int not null)`);
  await db.sql.query(`insert into acct select g, g from generate_series(1, 200) g`);
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-http-outage-'));
  const sink = [`timeoutMs: ${TIMEOUT_MS}`, 'retry:', '  initialMs: 100', '  maxMs: 2000'];
  const config = await writeRunConfig(dir, httpSinkSection(sink));
  const args = httpRunArgs({
    db,
    url: endpoint.url,
    offsets: path.join(dir, 'offsets.json'),
    tables: 'public.acct',
    config,
  });
  const proc = startPgcdc(args, { [SECRET_ENV]: SECRET });
  await awaitStreaming(proc, 'pgcdc streaming');
  const workload = new Workload(db.url, 10);
  try {
    await eventually(() => (workload.committed >= 20 ? true : undefined), 'the workload to commit');
    await confirmedPast(db, await walNow(db), 'delivery under the workload');
    const logFrom = proc.stderr().length;

    // 1. 503 Service Unavailable. Once the first request was refused and the sink said it retries,
    // nothing more can be acknowledged until the endpoint accepts again.
    endpoint.answer = { kind: 'status', status: 503, body: 'down for maintenance' };
    const downAt = Date.now();
    await eventually(() => (sinkRetries(proc, logFrom).length > 0 ? true : undefined), 'the first retry');
    const confirmedAtStop = await slotConfirmed(db);
    const walAtStop = await walNow(db);
    const seen = new Set<string | undefined>();
    let outageRss = 0;
    /** Samples the slot and the memory while `answer` lasts `ms`. */
    const during = async (answer: Answer, ms: number): Promise<void> => {
      endpoint.answer = answer;
      const until = Date.now() + ms;
      while (Date.now() < until) {
        seen.add(await slotConfirmed(db));
        outageRss = Math.max(outageRss, await rssMb(proc.child.pid ?? 0));
        assert.equal(proc.child.exitCode, null, `pgcdc exited during the outage: ${proc.stderr().slice(-3000)}`);
        await delay(250);
      }
    };
    await during({ kind: 'status', status: 503, body: 'down for maintenance' }, UNAVAILABLE_MS - (Date.now() - downAt));
    const refused = endpoint.log.filter((r) => r.status === 503).length;

    // 2. Requests held past timeoutMs: the sink gives up on each and sends it again.
    const heldFrom = endpoint.log.length;
    await during({ kind: 'hold' }, HOLDING_MS);
    const timedOut = endpoint.log.slice(heldFrom).filter((r) => r.status === 0).length;

    // 3. 429 Too Many Requests with Retry-After: 2 (seconds): the next attempt waits for it.
    const throttledFrom = endpoint.log.length;
    endpoint.answer = { kind: 'status', status: 429, body: 'slow down', retryAfter: '2' };
    await eventually(
      () => (endpoint.log.slice(throttledFrom).some((r) => r.status === 429) ? true : undefined),
      'a 429 answer',
    );
    seen.add(await slotConfirmed(db));
    const walAtRecovery = await walNow(db);
    const outageMs = Date.now() - downAt;
    endpoint.answer = { kind: 'accept' };
    const upAt = Date.now();
    await confirmedPast(db, walAtRecovery, 'the backlog of the outage delivered');
    const caughtUpMs = Date.now() - upAt;

    const throttled = endpoint.log.slice(throttledFrom);
    const firstThrottled = throttled.findIndex((r) => r.status === 429);
    const after429 = throttled[firstThrottled + 1];
    const retries = sinkRetries(proc, logFrom);
    const honoured = retries.filter((r) => r.retryAfterMs === 2000);
    assert.ok(honoured.length > 0 && honoured.every((r) => r.delayMs === 2000), 'Retry-After: 2 sets the delay');
    assert.ok(after429 !== undefined, 'a request after the 429');
    const waited = after429.at - (throttled[firstThrottled]?.at ?? 0);
    // A lower bound only: the retry comes no sooner than the endpoint asked.
    assert.ok(waited >= 1900, `the request after the 429 came ${waited} ms later, before Retry-After`);

    await workload.stop();
    await confirmedPast(db, await walNow(db), 'every change confirmed');
    const peak = await peakRssMb(proc.child.pid ?? 0);
    proc.kill('SIGTERM');
    assert.equal(await proc.exited, 0, proc.stderr().slice(-3000));

    const verdict = await httpVerdict(endpoint, db);
    const restarts = logRecords(proc.stderr()).filter((r) => typeof r.retry === 'number');
    t.diagnostic(
      `http outage: ${outageMs} ms without acceptance (${refused} requests answered 503 over ` +
        `${UNAVAILABLE_MS / 1000} s, ${timedOut} held past timeoutMs ${TIMEOUT_MS} ms over ${HOLDING_MS / 1000} s, ` +
        `then 429 Retry-After 2: next request ${waited} ms later); ` +
        `${(lsnValue(walAtRecovery) - lsnValue(walAtStop)) / 1024n} KiB of WAL written meanwhile; ` +
        `${retries.length} sink retries (delays ${retries.map((r) => r.delayMs).join(', ')} ms); ` +
        `caught up ${caughtUpMs} ms after recovery; peak RSS ${peak.toFixed(0)} MB ` +
        `(${outageRss.toFixed(0)} MB at most during the outage); confirmed LSN during the outage: ` +
        `${[...seen].join(', ')}; capture restarts ${restarts.length}; ${workload.committed} transactions; ` +
        `lost ${verdict.lost}, extra ${verdict.extra}, mismatched ${verdict.mismatched}, ` +
        `duplicates ${verdict.duplicated}`,
    );
    assert.deepEqual([...seen], [confirmedAtStop], 'the confirmed LSN does not move while the endpoint refuses');
    assert.ok(refused > 0 && timedOut > 0, 'both faults were met');
    assert.equal(restarts.length, 0, 'the sink rode through: the capture never restarted');
    // Bounded, not proportional to the outage: reading pauses once Delivery holds 48 MB (and one batch
    // in flight); Node and tsx take ~150 MB.
    assert.ok(peak < 450, `peak RSS ${peak.toFixed(0)} MB`);
    assert.deepEqual(
      { lost: verdict.lost, extra: verdict.extra, mismatched: verdict.mismatched },
      { lost: 0, extra: 0, mismatched: 0 },
    );
  } finally {
    await workload.stop();
  }
});
