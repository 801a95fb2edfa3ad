/**
 * `pgcdc run --http`: the routes answer what the capture does (/healthz, /readyz, /status), bad
 * requests get their JSON error and never stop the capture, and an address that cannot be bound
 * stops pgcdc at start with one line.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { eventually, freshDatabase, onTeardown, type TestDatabase } from '../harness/pg.ts';
import { captureArgs, readJsonl, runPgcdc, startPgcdc, type PgcdcProcess } from '../harness/cli.ts';
import { logRecords } from '../harness/process.ts';

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-http-server-'));
  onTeardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** `pgcdc run` with the HTTP server on a free loopback port (port 0: the log says which). */
function run(source: string, dir: string, name: string, tables: string, extra: string[] = []): PgcdcProcess {
  return startPgcdc(captureArgs({ url: source, name }, dir, tables, ['--http', '127.0.0.1:0', ...extra]));
}

/** The server's base URL, from its start line. */
async function baseUrl(proc: PgcdcProcess): Promise<string> {
  const listen = await eventually(
    () => logRecords(proc.stderr()).find((r) => r.msg.startsWith('HTTP server on '))?.listen,
    'the HTTP server start line',
  );
  return `http://${String(listen)}`;
}

interface Answer {
  status: number;
  body: Record<string, unknown>;
}

async function call(url: string, init: RequestInit = {}): Promise<Answer> {
  const response = await fetch(url, init);
  const text = await response.text();
  assert.match(response.headers.get('content-type') ?? '', /^application\/json/, `${url}: ${text}`);
  return { status: response.status, body: JSON.parse(text) as Record<string, unknown> };
}

const post = (url: string, body: string, type = 'application/json'): Promise<Answer> =>
  call(url, { method: 'POST', headers: { 'content-type': type }, body });

async function streamingCapture(db: TestDatabase, dir: string): Promise<{ proc: PgcdcProcess; base: string }> {
  const proc = run(db.url, dir, db.name, 'public.t');
  const base = await baseUrl(proc);
  await eventually(() => (proc.stderr().includes('"msg":"streaming"') ? true : undefined), 'streaming');
  return { proc, base };
}

test('routes: /healthz, /readyz and /status describe a streaming capture', async () => {
  const db = await freshDatabase();
  await db.sql.query('create table t (id int primary key, note text)');
  const dir = await tempDir();
  const { proc, base } = await streamingCapture(db, dir);

  const alive = await call(`${base}/healthz`);
  assert.equal(alive.status, 200);
  assert.equal(alive.body.status, 'alive');
  const ready = await eventually(async () => {
    const answer = await call(`${base}/readyz`);
    return answer.status === 200 ? answer : undefined;
  }, '/readyz 200 once streaming');
  assert.equal(ready.body.state, 'streaming');

  await db.sql.query(`insert into t select g, 'x' from generate_series(1, 25) g`);
  const status = await eventually(async () => {
    const answer = await call(`${base}/status`);
    return answer.body.eventsDelivered === 25 ? answer : undefined;
  }, '/status counting the 25 events');
  assert.equal(status.status, 200);
  assert.equal(status.body.state, 'streaming');
  assert.match(String(status.body.ackedLsn), /^[0-9A-F]+\/[0-9A-F]+$/);
  assert.equal(status.body.retries, 0);
  // The initial snapshot read the empty table.
  assert.deepEqual(status.body.snapshot, [{ table: 'public.t', rows: 0, done: true }]);
  assert.equal((status.body.supervisor as { state: string }).state, 'running');
  // The health monitor's latest sample of the slot, with its alerts.
  const health = await eventually(async () => {
    const answer = await call(`${base}/status`);
    return answer.body.health === null ? undefined : (answer.body.health as Record<string, unknown>);
  }, 'a health sample in /status');
  const sample = health.sample as Record<string, unknown>;
  assert.equal(sample.slot, `s_${db.name}`);
  assert.equal(sample.exists, true);
  assert.ok(Array.isArray(health.alerts) && health.alerts.length > 0);
  const withLag = await eventually(async () => {
    const points = (await call(`${base}/api/history`)).body.points as Record<string, unknown>[];
    return points.find((p) => typeof p.lagBytes === 'number' && typeof p.retainedWalBytes === 'number');
  }, 'a history point with the slot lag and retained WAL');
  assert.ok(Number(withLag.lagBytes) >= 0);
  assert.equal((await readJsonl(path.join(dir, 'events'))).length, 25);

  const tables = await call(`${base}/api/tables`);
  assert.deepEqual(tables.body, { current: true, tables: ['public.t'] });
  const history = await call(`${base}/api/history`);
  assert.equal(history.body.stepMs, 5000);
  assert.ok(Array.isArray(history.body.points) && history.body.points.length >= 1);
  const metrics = await fetch(`${base}/metrics`);
  assert.equal(metrics.status, 200);
  assert.match(await metrics.text(), /^pgcdc_events_total\{table="public\.t",op="c"\} 25$/m);

  proc.kill('SIGTERM');
  assert.equal(await proc.exited, 0, proc.stderr());
});

test('bad requests get a JSON error (404, 405, 400, 413, 415) and the capture streams on', async () => {
  const db = await freshDatabase();
  await db.sql.query('create table t (id int primary key, note text)');
  const dir = await tempDir();
  const { proc, base } = await streamingCapture(db, dir);

  const unknown = await call(`${base}/no/such/route`);
  assert.equal(unknown.status, 404);
  assert.match(String(unknown.body.error), /^no route GET \/no\/such\/route/);
  assert.equal((await call(`${base}/status`, { method: 'DELETE' })).status, 405);
  const badJson = await post(`${base}/api/snapshot`, '{"tables": [');
  assert.equal(badJson.status, 400);
  assert.equal(badJson.body.error, 'the body is not valid JSON');
  const badShape = await post(`${base}/api/snapshot`, '{"tables": "public.t"}');
  assert.equal(badShape.status, 400);
  assert.equal((await post(`${base}/api/snapshot`, '{"tables":["public.t"]}', 'text/plain')).status, 415);
  const oversized = await post(`${base}/api/snapshot`, JSON.stringify({ tables: ['x'.repeat(100_000)] }));
  assert.equal(oversized.status, 413);
  const uncaptured = await post(`${base}/api/snapshot`, JSON.stringify({ tables: ['public.nope'] }));
  assert.equal(uncaptured.status, 400);
  assert.equal(uncaptured.body.code, 'TABLE_MISSING');
  assert.match(
    String(uncaptured.body.error),
    /^public\.nope is not captured by the pgcdc run using .*offsets\.json \(pid \d+; it captures public\.t\)\. /,
  );
  const malformed = await post(`${base}/api/snapshot`, JSON.stringify({ tables: ['a.b.c'] }));
  assert.equal(malformed.status, 400);
  assert.match(String(malformed.body.error), /table name "a\.b\.c" is not of the form schema\.table/);
  assert.equal((await call(`${base}/api/snapshot/..%2F..%2Fetc`)).status, 404);

  // Still streaming: a change made now is delivered and counted.
  await db.sql.query(`insert into t values (1, 'after the bad requests')`);
  await eventually(async () => ((await readJsonl(path.join(dir, 'events'))).length === 1 ? true : undefined), 'event');
  await eventually(async () => ((await call(`${base}/status`)).body.eventsDelivered === 1 ? true : undefined), 'count');
  assert.equal(proc.child.exitCode, null);
  proc.kill('SIGTERM');
  assert.equal(await proc.exited, 0, proc.stderr());
});

test('/readyz answers 503 with the reason while the capture cannot reach its source; /healthz 200', async () => {
  const dir = await tempDir();
  // Nothing listens on port 1: the capture retries its start-up, never streaming.
  const proc = run('postgres://nobody@127.0.0.1:1/none?sslmode=disable', dir, 'unreachable', 'public.t');
  const base = await baseUrl(proc);
  const answer = await eventually(async () => {
    const ready = await call(`${base}/readyz`);
    return ready.body.state === 'retrying' ? ready : undefined;
  }, '/readyz while retrying');
  assert.equal(answer.status, 503);
  assert.match(String(answer.body.reason), /^the capture is retrying after [A-Z_]+, not streaming$/);
  assert.equal((await call(`${base}/healthz`)).status, 200);
  proc.kill('SIGTERM');
  assert.equal(await proc.exited, 0, proc.stderr());
});

test('an address in use stops pgcdc at start with one line, exit 2', async () => {
  const taken = createServer();
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  onTeardown(() => new Promise((resolve) => taken.close(resolve)));
  const address = taken.address();
  assert.ok(typeof address === 'object' && address !== null);
  const result = await runPgcdc([
    'run',
    '--source',
    'postgres://nobody@127.0.0.1:1/none',
    '--http',
    `127.0.0.1:${address.port}`,
  ]);
  assert.equal(result.code, 2, result.stderr);
  assert.equal(
    result.stderr,
    `pgcdc: error: cannot listen on 127.0.0.1:${address.port} for the HTTP server: the port is in use by another ` +
      'process. choose another address with --http host:port (http.listen) [CONFIG_INVALID]\n',
  );
});
