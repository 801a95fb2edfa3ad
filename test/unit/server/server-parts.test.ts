/**
 * The HTTP server's pure parts: listen addresses and loopback, the token's source and comparison,
 * the history ring, readiness and the redaction of recent events.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isLoopback, parseListen, httpSchema } from '../../../src/server/options.ts';
import { bearerMatches, resolveToken } from '../../../src/server/token.ts';
import { History } from '../../../src/server/history.ts';
import { ReadinessWatch } from '../../../src/server/readiness.ts';
import { redactValues } from '../../../src/server/routes.ts';
import type { RunStatus } from '../../../src/library/run.ts';

test('listen addresses: host:port and [v6]:port; loopback only for 127/8, ::1 and localhost', () => {
  assert.deepEqual(parseListen('127.0.0.1:9187'), { host: '127.0.0.1', port: 9187 });
  assert.deepEqual(parseListen('[::1]:0'), { host: '::1', port: 0 });
  assert.deepEqual(parseListen('localhost:80'), { host: 'localhost', port: 80 });
  for (const bad of ['9187', '127.0.0.1', '127.0.0.1:99999', '[nothex]:1', ':1', '::1:80', 'a b:1'])
    assert.equal(parseListen(bad), undefined, bad);
  for (const host of ['127.0.0.1', '127.1.2.3', '::1', 'localhost', '::ffff:127.0.0.1']) assert.ok(isLoopback(host));
  for (const host of ['0.0.0.0', '::', '10.0.0.1', 'example.com', '128.0.0.1']) assert.ok(!isLoopback(host), host);
});

const settings = (extra: Record<string, unknown> = {}) => httpSchema.parse({ listen: '127.0.0.1:0', ...extra });

test('the token comes from tokenEnv, else PGCDC_HTTP_TOKEN; too short is refused; the value is never in errors', () => {
  assert.equal(resolveToken(settings(), {}), undefined);
  assert.equal(resolveToken(settings(), { PGCDC_HTTP_TOKEN: 'abcdefghijklmnop' }), 'abcdefghijklmnop');
  process.env.PGCDC_UNIT_TOKEN = 'short';
  try {
    assert.throws(
      () => resolveToken(settings({ tokenEnv: 'PGCDC_UNIT_TOKEN' })),
      (error: Error) =>
        error.message ===
          'the HTTP bearer token (the environment variable PGCDC_UNIT_TOKEN) has 5 characters; at least 16 are ' +
            'required' && !error.message.includes('short'),
    );
  } finally {
    delete process.env.PGCDC_UNIT_TOKEN;
  }
  assert.throws(() => resolveToken(settings({ tokenEnv: 'PGCDC_UNIT_UNSET' })), /PGCDC_UNIT_UNSET is not set/);
});

test('the bearer header must carry exactly the token', () => {
  const token = 'abcdefghijklmnop';
  assert.ok(bearerMatches(token, `Bearer ${token}`));
  assert.ok(bearerMatches(token, `bearer ${token}`));
  for (const header of [undefined, '', token, `Bearer ${token}x`, `Bearer ${token.slice(1)}`, `Basic ${token}`])
    assert.ok(!bearerMatches(token, header), String(header));
});

test('the history keeps the last span of points, oldest first', () => {
  const history = new History(1000, 3000);
  const point = (at: number) => ({
    at,
    events: at,
    unackedBytes: null,
    lagBytes: null,
    lagSeconds: null,
    retainedWalBytes: null,
  });
  assert.deepEqual(history.list(), []);
  for (const at of [1, 2]) history.add(point(at));
  assert.deepEqual(
    history.list().map((p) => p.at),
    [1, 2],
  );
  for (const at of [3, 4, 5]) history.add(point(at));
  assert.deepEqual(
    history.list().map((p) => p.at),
    [3, 4, 5],
  );
});

function runStatus(state: RunStatus['state'], acked: string, received: string, lastEventAt: number): RunStatus {
  return {
    state,
    startedAt: new Date(0).toISOString(),
    lastEventAt: new Date(lastEventAt).toISOString(),
    ackedLsn: acked,
    receivedLsn: received,
    checkpointLsn: acked,
    eventsDelivered: 0,
    retries: 0,
    nextRetryDelayMs: undefined,
    lastFault: undefined,
    snapshot: [],
    supervisor: { state: 'running', retries: 0, lastCause: undefined, nextDelayMs: undefined, healthy: true },
  };
}

test('readiness: streaming and advancing is ready; an idle capture stays ready; a stuck acknowledgement is not', () => {
  let now = 1_000_000;
  const watch = new ReadinessWatch(60_000, 5_000, () => now);
  assert.deepEqual(watch.judge(undefined), { ready: false, reason: 'the capture has not started yet' });
  assert.deepEqual(watch.judge(runStatus('starting', '0/1', '0/1', now)), {
    ready: false,
    reason: 'the capture is starting, not streaming',
  });
  assert.deepEqual(watch.judge(runStatus('streaming', '0/10', '0/10', now)), { ready: true });
  // Idle for long: everything received is acknowledged.
  now += 600_000;
  assert.deepEqual(watch.judge(runStatus('streaming', '0/10', '0/10', now)), { ready: true });
  // WAL received and waiting, the acknowledgement stuck.
  watch.judge(runStatus('streaming', '0/10', '0/20', now));
  now += 61_000;
  const stuck = watch.judge(runStatus('streaming', '0/10', '0/30', now));
  assert.equal(stuck.ready, false);
  assert.match(
    stuck.ready ? '' : stuck.reason,
    /^stalled: the acknowledged position 0\/10 has not moved for 61 s while WAL up to 0\/30 was received/,
  );
  // It moves again: ready.
  assert.deepEqual(watch.judge(runStatus('streaming', '0/30', '0/30', now)), { ready: true });
  // No status update for long: the loop is stuck.
  const silent = watch.judge(runStatus('streaming', '0/30', '0/30', now - 70_000));
  assert.deepEqual(silent, {
    ready: false,
    reason: 'stalled: no standby status update for 70 s (the stream loop does not advance)',
  });
});

test('recent events keep keys and positions; values are redacted at any depth', () => {
  const event = {
    topic: 'db.public.t',
    key: { id: 1 },
    value: { before: null, after: { id: 1, secret: 'x' } },
    nested: { after: { secret: 'y' }, lsn: '0/1' },
  };
  assert.deepEqual(redactValues(event), {
    topic: 'db.public.t',
    key: { id: 1 },
    value: '[redacted]',
    nested: { after: '[redacted]', lsn: '0/1' },
  });
});
