import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  drainCaptureConfig,
  DrainWatch,
  drainedLine,
  formatDuration,
  parseDuration,
  timeoutMessage,
} from '../../../src/cli/drain.ts';
import { CdcError } from '../../../src/core/errors.ts';
import type { Config } from '../../../src/config.ts';

test('parseDuration reads ms, s, m, h and bare seconds; refuses the rest with CONFIG_INVALID', () => {
  assert.equal(parseDuration('500ms'), 500);
  assert.equal(parseDuration('90s'), 90_000);
  assert.equal(parseDuration('10m'), 600_000);
  assert.equal(parseDuration('1h'), 3_600_000);
  assert.equal(parseDuration('30'), 30_000);
  assert.equal(parseDuration('1.5s'), 1500);
  for (const bad of ['', 'soon', '-1s', '0', '10 min', '8d', '1e3s'])
    assert.throws(
      () => parseDuration(bad),
      (e: unknown) => e instanceof CdcError && e.code === 'CONFIG_INVALID' && /--timeout/.test(e.message),
      bad,
    );
  assert.equal(formatDuration(600_000), '10m');
  assert.equal(formatDuration(3000), '3s');
  assert.equal(formatDuration(1500), '1500ms');
});

test('DrainWatch: reached once streaming, no snapshot pending and the confirmed flush is at the target', () => {
  let reached = 0;
  const watch = new DrainWatch('0/1000', false, () => reached++);
  const status = (acked: string): void => watch.emit({ type: 'status-sent', acked, received: acked, delivered: 3 });
  watch.emit({ type: 'state', state: 'starting' });
  status('0/FFE'); // not streaming yet: the initial snapshot may still be running
  assert.equal(reached, 0);
  watch.emit({ type: 'state', state: 'streaming' });
  status('0/FFF');
  assert.equal(reached, 0);
  watch.emit({ type: 'checkpoint-stored', lsn: '0/1000', events: 3, snapshotPending: true });
  status('0/1000');
  assert.equal(reached, 0, 'an incremental snapshot is still being read');
  watch.emit({ type: 'checkpoint-stored', lsn: '0/1100', events: 3, snapshotPending: false });
  assert.equal(reached, 1);
  status('0/1200');
  assert.equal(reached, 1, 'called once');
  const state = watch.state();
  assert.equal(state.acked, '0/1200');
  assert.equal(state.checkpoint, '0/1100');
  assert.equal(state.delivered, 3);
});

test('DrainWatch: a snapshot pending at the start holds it back until a checkpoint says otherwise', () => {
  let reached = false;
  const watch = new DrainWatch('0/10', true, () => (reached = true));
  watch.emit({ type: 'state', state: 'streaming' });
  watch.emit({ type: 'status-sent', acked: '0/20', received: '0/20', delivered: 0 });
  assert.equal(reached, false);
  watch.emit({ type: 'checkpoint-stored', lsn: '0/20', events: 0 });
  assert.equal(reached, false, 'a checkpoint that does not say keeps the earlier answer');
  watch.emit({ type: 'checkpoint-stored', lsn: '0/20', events: 0, snapshotPending: false });
  assert.equal(reached, true);
});

test('DrainWatch: a retried start must stream again before the drain counts', () => {
  let reached = false;
  const watch = new DrainWatch('0/10', false, () => (reached = true));
  watch.emit({ type: 'state', state: 'streaming' });
  watch.emit({ type: 'state', state: 'retrying' });
  watch.emit({ type: 'status-sent', acked: '0/20', received: '0/20', delivered: 0 });
  assert.equal(reached, false);
  watch.emit({ type: 'state', state: 'streaming' });
  watch.emit({ type: 'status-sent', acked: '0/20', received: '0/20', delivered: 0 });
  assert.equal(reached, true);
});

test('the drained line and the timeout message say what happened in one line', () => {
  const line = drainedLine({
    drained: true,
    slot: 'pgcdc_slot',
    target: '0/ABC',
    standby: false,
    confirmed: '0/ABD',
    checkpoint: '0/ABD',
    eventsDelivered: 1,
    alreadyDrained: false,
    elapsedMs: 10,
  });
  assert.match(line, /^drained: slot pgcdc_slot confirmed 0\/ABD >= target 0\/ABC; nothing is left to capture/);
  assert.doesNotMatch(line, /\n/);
  const state = {
    target: '0/2000',
    streaming: true,
    acked: '0/1000',
    received: '0/1800',
    checkpoint: '0/1000',
    snapshotPending: false,
    delivered: 5,
    fault: undefined,
  };
  const message = timeoutMessage(180_000, state, '0/1000');
  assert.match(
    message,
    /did not reach its target 0\/2000 within 3m: the confirmed position is 0\/1000 \(4096 bytes short/,
  );
  assert.match(timeoutMessage(1000, { ...state, streaming: false }, undefined), /not streaming yet/);
  assert.match(
    timeoutMessage(1000, { ...state, streaming: false, fault: 'SINK_FAILED: timeout' }, undefined),
    /starting again after a fault \(SINK_FAILED: timeout\)/,
  );
  assert.match(timeoutMessage(1000, { ...state, snapshotPending: true }, undefined), /incremental snapshot/);
  assert.match(timeoutMessage(1000, state, undefined, false), /did not stop cleanly/);
});

test('a drain confirms idle WAL at least every second, even with heartbeats turned off', () => {
  const config = (interval: number) => ({ heartbeat: { interval, message: false } }) as unknown as Config;
  assert.equal(drainCaptureConfig(config(0)).heartbeat.interval, 1000);
  assert.equal(drainCaptureConfig(config(10_000)).heartbeat.interval, 1000);
  const fast = config(200);
  assert.equal(drainCaptureConfig(fast), fast);
});
