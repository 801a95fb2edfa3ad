/**
 * The HTTP sink end to end: the real CLI, a real PostgreSQL and a real node:http receiver in this
 * process (test/harness/http-endpoint.ts). An initial snapshot of 200 rows, then a keyed
 * insert/update/delete workload; what the receiver accepted, replayed in arrival order onto an empty
 * map, equals the source table (0 lost, extra, mismatched; repeats counted and printed).
 *
 * Every request is checked by the receiver: its X-Pgcdc-Signature verifies with the shared secret,
 * its Idempotency-Key is `<first event id>..<last event id>` of its body, its Content-Type is the
 * format's, and the configured headers (one from a file) arrive. With `ordering: { lanes: 4 }` and
 * small requests, each key's events arrive in commit order, and 4 requests (never more) are in flight
 * while the receiver holds its answers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { commitOrder, startPgcdc, type DeliveredEvent } from '../harness/cli.ts';
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
  type HttpVerdict,
} from '../harness/http-workload.ts';
import { eventually, freshDatabase } from '../harness/pg.ts';

const SECRET = 'whsec-test-3f9a1c';
const TOKEN = 'Bearer tok-from-a-file-77';

interface Outcome {
  endpoint: TestEndpoint;
  verdict: HttpVerdict;
  snapshotReads: number;
}

/** Snapshot + workload through pgcdc into a fresh receiver with `sink` settings (YAML lines). */
async function deliver(
  sink: (dir: string) => Promise<string[]>,
  whileStarting?: (endpoint: TestEndpoint) => Promise<void>,
): Promise<Outcome> {
  const endpoint = await TestEndpoint.start({ secret: SECRET });
  const db = await freshDatabase();
  await db.sql.query(`create table acct (id int primary key, balance int not null)`);
  await db.sql.query(`insert into acct select g, g from generate_series(1, 200) g`);
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-http-'));
  const config = await writeRunConfig(dir, httpSinkSection(await sink(dir)));
  const args = httpRunArgs({
    db,
    url: endpoint.url,
    offsets: path.join(dir, 'offsets.json'),
    tables: 'public.acct',
    config,
  });
  const proc = startPgcdc(args, { [SECRET_ENV]: SECRET });
  await whileStarting?.(endpoint);
  await awaitStreaming(proc, 'pgcdc streaming');
  const workload = new Workload(db.url, 5);
  try {
    await eventually(() => (workload.committed >= 200 ? true : undefined), 'the workload to commit', 120_000);
  } finally {
    await workload.stop();
  }
  await eventually(() => slotCaughtUp(db), 'pgcdc caught up with the source', 120_000);
  proc.kill('SIGTERM');
  assert.equal(await proc.exited, 0, proc.stderr().slice(-3000));
  assert.ok(!proc.stderr().includes(SECRET) && !proc.stderr().includes(TOKEN), 'no secret in the log');
  const verdict = await httpVerdict(endpoint, db);
  const snapshotReads = endpoint.acceptedEvents().filter((e) => e.value.op === 'r').length;
  return { endpoint, verdict, snapshotReads };
}

function assertEveryRequest(endpoint: TestEndpoint, contentType: string): void {
  assert.ok(endpoint.log.length > 0, 'requests arrived');
  for (const request of endpoint.log) {
    assert.equal(request.signatureValid, true, 'the signature verifies with the shared secret');
    assert.ok(keyMatchesBody(request), `Idempotency-Key ${String(request.headers['idempotency-key'])}`);
    assert.equal(request.headers['content-type'], contentType);
  }
}

function assertReplay(outcome: Outcome, label: string, t: { diagnostic(message: string): void }): void {
  const { verdict } = outcome;
  t.diagnostic(
    `http ${label}: ${verdict.requests} requests, ${verdict.events} events (${outcome.snapshotReads} snapshot ` +
      `reads); lost ${verdict.lost}, extra ${verdict.extra}, mismatched ${verdict.mismatched}, duplicates ` +
      `${verdict.duplicated}; at most ${outcome.endpoint.maxInFlight} requests in flight`,
  );
  assert.equal(outcome.snapshotReads, 200, 'the initial snapshot arrived');
  assert.deepEqual(
    { lost: verdict.lost, extra: verdict.extra, mismatched: verdict.mismatched },
    { lost: 0, extra: 0, mismatched: 0 },
  );
}

test('json-array, strict: snapshot and workload replay equal the source; signed, keyed, headers sent', async (t) => {
  const outcome = await deliver(async (dir) => {
    const tokenFile = path.join(dir, 'authorization');
    await writeFile(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
    return ['headers:', '  Authorization:', `    file: ${tokenFile}`, '  X-Tenant: shop-eu', 'lingerMs: 50'];
  });
  assertReplay(outcome, 'json-array strict', t);
  assertEveryRequest(outcome.endpoint, 'application/json');
  for (const request of outcome.endpoint.log) {
    assert.equal(request.headers.authorization, TOKEN);
    assert.equal(request.headers['x-tenant'], 'shop-eu');
  }
  assert.equal(outcome.endpoint.maxInFlight, 1, 'strict: one request at a time');
  assert.equal(outcome.verdict.duplicated, 0, 'no repeats without a fault');
});

/** Each key's events, in arrival order, are in commit order. */
function assertPerKeyOrder(events: readonly DeliveredEvent[]): number {
  const byKey = new Map<string, DeliveredEvent[]>();
  for (const event of events) {
    const key = `${event.topic}|${JSON.stringify(event.key)}`;
    const list = byKey.get(key) ?? [];
    list.push(event);
    byKey.set(key, list);
  }
  for (const [key, list] of byKey) {
    const ids = list.map((e) => e.id);
    assert.deepEqual(
      ids,
      commitOrder(list).map((e) => e.id),
      `the events of key ${key} arrive in commit order`,
    );
  }
  return byKey.size;
}

test('ndjson, 4 lanes, 25 events per request: replay equals the source, each key in commit order', async (t) => {
  const outcome = await deliver(
    () => Promise.resolve(['format: ndjson', 'ordering:', '  lanes: 4', 'maxEvents: 25', 'maxBytes: 4096']),
    // The snapshot's rows spread over the lanes: with answers held, the lanes' first requests pile up.
    async (endpoint) => {
      endpoint.answer = { kind: 'hold' };
      await eventually(() => (endpoint.heldCount >= 4 ? true : undefined), '4 lanes with a request in flight');
      endpoint.answer = { kind: 'accept' };
      endpoint.release();
    },
  );
  assertReplay(outcome, 'ndjson 4 lanes', t);
  assertEveryRequest(outcome.endpoint, 'application/x-ndjson');
  const keys = assertPerKeyOrder(outcome.endpoint.acceptedEvents());
  t.diagnostic(`http lanes: ${keys} keys, each in commit order`);
  assert.equal(outcome.endpoint.maxInFlight, 4, 'at most 4 requests in flight, and 4 once answers are slow');
  for (const request of outcome.endpoint.log) assert.ok(Number(request.headers['x-pgcdc-events']) <= 25);
});
