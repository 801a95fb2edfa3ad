/**
 * The supervisor's decisions with stand-in captures (the real capture against PostgreSQL is in
 * test/integration/recovery.test.ts): what is retried, the give-up time, the healthy reset, and
 * stops that are bounded in every state.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import pino from 'pino';
import { CdcError } from '../../../src/core/errors.ts';
import type { EngineEvent } from '../../../src/core/engine-events.ts';
import {
  StartupWarnings,
  Supervisor,
  type RetrySettings,
  type SupervisedCapture,
} from '../../../src/lifecycle/supervisor.ts';

interface Stand {
  readonly capture: SupervisedCapture;
  fail(error: CdcError): void;
}

/** A capture that runs until `fail` or `stop` (which resolves unless `stuck`). */
function standIn(stuck = false): Stand {
  let reject!: (error: CdcError) => void;
  let resolve!: () => void;
  const stopped = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  stopped.catch(() => undefined);
  return {
    capture: {
      stopped,
      stop: () => {
        if (stuck) return new Promise<void>(() => undefined);
        resolve();
        return stopped;
      },
    },
    fail: (error) => reject(error),
  };
}

function logger(): { log: pino.Logger; lines: () => Record<string, unknown>[] } {
  const records: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString().split('\n'))
        if (line) records.push(JSON.parse(line) as Record<string, unknown>);
      callback();
    },
  });
  return { log: pino({ level: 'info' }, stream), lines: () => records };
}

const lost = (): CdcError => new CdcError('CONNECTION_LOST', 'cannot connect to u@h:5432/db (ECONNREFUSED)');
const retry = (over: Partial<RetrySettings> = {}): RetrySettings => ({
  initialDelayMs: 1,
  maxDelayMs: 5,
  giveUpAfterMs: 60_000,
  resetAfterMs: 60_000,
  jitter: 'full',
  ...over,
});

function until(probe: () => boolean, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + 10_000;
    const poll = setInterval(() => {
      if (probe()) {
        clearInterval(poll);
        resolve();
      } else if (Date.now() > deadline) {
        clearInterval(poll);
        reject(new Error(`timed out waiting for ${what}`));
      }
    }, 2);
  });
}

test('a retried start-up failure is logged with its cause and delay, counted, then the capture runs', async () => {
  const { log, lines } = logger();
  const events: EngineEvent[] = [];
  let attempts = 0;
  const running = standIn();
  const supervisor = new Supervisor({
    start: () => (++attempts <= 2 ? Promise.reject(lost()) : Promise.resolve(running.capture)),
    retry: retry(),
    stopTimeoutMs: 1000,
    log,
    events: { emit: (event) => events.push(event) },
  });
  await until(() => supervisor.status.state === 'running', 'running');
  assert.equal(attempts, 3);
  assert.deepEqual(supervisor.status.lastCause, { code: 'CONNECTION_LOST', message: lost().message });
  assert.equal(supervisor.status.retries, 2);
  const warns = lines().filter((r) => r.level === 40);
  assert.equal(warns.length, 2);
  assert.equal(warns[0]?.code, 'CONNECTION_LOST');
  assert.equal(typeof warns[0]?.delayMs, 'number');
  assert.match(String(warns[0]?.msg), /^CONNECTION_LOST: cannot connect to u@h:5432\/db \(ECONNREFUSED\); starting/);
  assert.deepEqual(
    events.map((e) =>
      e.type === 'state' ? e.state : e.type === 'retry-scheduled' ? `${e.type} ${e.attempt}` : e.type,
    ),
    ['fault', 'retrying', 'retry-scheduled 1', 'fault', 'retrying', 'retry-scheduled 2'],
  );
  assert.equal(await supervisor.stop(), true);
  await supervisor.done;
  assert.equal(supervisor.status.state, 'stopped');
});

test('a fault while streaming starts the capture again; a fault the policy does not retry ends it', async () => {
  const { log } = logger();
  const stands: Stand[] = [];
  const supervisor = new Supervisor({
    start: () => {
      const stand = standIn();
      stands.push(stand);
      return Promise.resolve(stand.capture);
    },
    retry: retry(),
    stopTimeoutMs: 1000,
    log,
  });
  await until(() => stands.length === 1 && supervisor.status.state === 'running', 'first capture');
  stands[0]?.fail(new CdcError('CONNECTION_LOST', 'the replication connection was lost'));
  await until(() => stands.length === 2 && supervisor.status.state === 'running', 'second capture');
  const refusal = new CdcError('SLOT_LOST', 'slot s has lost WAL it needs');
  assert.equal(refusal.retryable, false);
  stands[1]?.fail(refusal);
  await assert.rejects(supervisor.done, (error) => error === refusal);
  assert.equal(supervisor.status.state, 'failed');
  assert.equal(stands.length, 2);
});

test('faults for giveUpAfterMs end supervision with the last cause; 0 retries nothing', async () => {
  const { log, lines } = logger();
  let attempts = 0;
  const giveUp = new Supervisor({
    start: () => (attempts++, Promise.reject(lost())),
    retry: retry({ giveUpAfterMs: 100 }),
    stopTimeoutMs: 1000,
    log,
  });
  await assert.rejects(giveUp.done, (error) => error instanceof CdcError && error.code === 'CONNECTION_LOST');
  assert.ok(attempts > 1, `${attempts} attempts`);
  assert.ok(lines().some((r) => r.level === 50 && /^giving up/.test(String(r.msg))));

  let once = 0;
  const never = new Supervisor({
    start: () => (once++, Promise.reject(lost())),
    retry: retry({ giveUpAfterMs: 0 }),
    stopTimeoutMs: 1000,
    log,
  });
  await assert.rejects(never.done, (error) => error instanceof CdcError && error.code === 'CONNECTION_LOST');
  assert.equal(once, 1);
  assert.equal(never.status.retries, 0);
});

test('streaming for resetAfterMs ends the outage: the next delay is the first one again', async () => {
  const { log } = logger();
  const stands: Stand[] = [];
  let failures = 0;
  const delays: number[] = [];
  const supervisor = new Supervisor({
    start: () => {
      if (++failures <= 3) return Promise.reject(lost());
      const stand = standIn();
      stands.push(stand);
      return Promise.resolve(stand.capture);
    },
    retry: retry({ initialDelayMs: 8, maxDelayMs: 1000, resetAfterMs: 20 }),
    stopTimeoutMs: 1000,
    log,
    random: () => 0.999999,
    events: {
      emit: (event) => {
        if (event.type === 'retry-scheduled') delays.push(event.delayMs);
      },
    },
  });
  await until(() => stands.length === 1 && supervisor.status.healthy, 'a capture that streamed resetAfterMs');
  stands[0]?.fail(lost());
  await until(() => stands.length === 2, 'the next capture');
  assert.deepEqual(delays, [8, 16, 32, 8]);
  await supervisor.stop();
});

test('a stop in a backoff ends at once; a stuck capture stop is bounded by stopTimeoutMs', async () => {
  const { log } = logger();
  const backoff = new Supervisor({
    start: () => Promise.reject(lost()),
    retry: retry({ initialDelayMs: 600_000, maxDelayMs: 600_000 }),
    stopTimeoutMs: 60_000,
    log,
    random: () => 0.5,
  });
  await until(() => backoff.status.nextDelayMs !== undefined, 'a backoff');
  assert.equal(await backoff.stop(), true);
  await backoff.done;
  assert.equal(backoff.status.state, 'stopped');

  const stuck = standIn(true);
  const stalled = new Supervisor({
    start: () => Promise.resolve(stuck.capture),
    retry: retry(),
    stopTimeoutMs: 50,
    log,
  });
  await until(() => stalled.status.state === 'running', 'running');
  assert.equal(await stalled.stop(), false);
  assert.equal(stalled.status.state, 'stopping');
});

test('a stop during a start-up stops the capture it makes; nothing is retried after a stop', async () => {
  const { log } = logger();
  const stand = standIn();
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let attempts = 0;
  const supervisor = new Supervisor({
    start: async () => {
      attempts++;
      await gate;
      return stand.capture;
    },
    retry: retry(),
    stopTimeoutMs: 1000,
    log,
  });
  const stopping = supervisor.stop();
  release();
  assert.equal(await stopping, true);
  await supervisor.done;
  assert.equal(attempts, 1);
  assert.equal(supervisor.status.state, 'stopped');
});

test("a restart's start-up repeats no warning an earlier start-up gave; later warnings are untouched", () => {
  const { log, lines } = logger();
  const warnings = new StartupWarnings();
  const first = warnings.logger(log);
  first.log.warn({ code: 'tls-off' }, 'the connection is not encrypted');
  first.started();
  first.log.warn('a warning while streaming');
  const second = warnings.logger(log);
  second.log.warn({ code: 'tls-off' }, 'the connection is not encrypted');
  second.log.warn('a new start-up warning');
  second.started();
  second.log.warn('a warning while streaming');
  assert.deepEqual(
    lines().map((r) => `${String(r.level)} ${String(r.msg)}`),
    [
      '40 the connection is not encrypted',
      '40 a warning while streaming',
      '40 a new start-up warning',
      '40 a warning while streaming',
    ],
  );
});
