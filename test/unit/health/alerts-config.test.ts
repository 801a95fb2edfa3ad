import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../../../src/config.ts';
import { CdcError } from '../../../src/core/errors.ts';

function errorOf(input: unknown): string {
  try {
    parseConfig(input, 'pgcdc.yaml');
  } catch (error) {
    assert.ok(error instanceof CdcError);
    return error.message;
  }
  assert.fail('expected an error');
}

test('alerts defaults: 10 s sampling, GiB lag and retained WAL, 50%/20% of max_slot_wal_keep_size', () => {
  const { alerts } = parseConfig({});
  assert.equal(alerts.intervalMs, 10_000);
  assert.deepEqual(alerts.lagBytes, { warning: 1024 ** 3, critical: 10 * 1024 ** 3 });
  assert.deepEqual(alerts.lagSeconds, { warning: 300, critical: 1800 });
  assert.deepEqual(alerts.safeWalSizeBytes, { warning: { percent: 50 }, critical: { percent: 20 } });
  assert.equal(alerts.webhook, undefined);
});

test('alerts: sizes as text, one threshold overridden keeps the other default', () => {
  const { alerts } = parseConfig({
    alerts: { lagBytes: { warning: '256MB' }, safeWalSizeBytes: { critical: '1GiB', warning: '2GiB' } },
  });
  assert.deepEqual(alerts.lagBytes, { warning: 256 * 1024 ** 2, critical: 10 * 1024 ** 3 });
  assert.deepEqual(alerts.safeWalSizeBytes, { warning: { bytes: 2 * 1024 ** 3 }, critical: { bytes: 1024 ** 3 } });
});

test('alerts: bad values are named by their key path', () => {
  assert.match(
    errorOf({ alerts: { lagBytes: { warning: '12XB' } } }),
    /^pgcdc\.yaml: alerts\.lagBytes\.warning: must be a size/,
  );
  assert.match(
    errorOf({ alerts: { lagBytes: { warning: '20GiB' } } }),
    /alerts\.lagBytes\.critical: must be at least the warning threshold/,
  );
  assert.match(
    errorOf({ alerts: { safeWalSizeBytes: { warning: '10%', critical: '30%' } } }),
    /alerts\.safeWalSizeBytes\.critical: must not be above the warning threshold/,
  );
  assert.match(errorOf({ alerts: { safeWalSizeBytes: { warning: '150%' } } }), /alerts\.safeWalSizeBytes\.warning/);
  assert.match(errorOf({ alerts: { intervalMs: 5 } }), /alerts\.intervalMs/);
  assert.match(errorOf({ alerts: { webhook: { url: 'ftp://x/y' } } }), /alerts\.webhook\.url: must be an http/);
  assert.match(
    errorOf({ alerts: { webhook: { url: 'http://x/y', tokenFile: 'a', tokenEnv: 'B' } } }),
    /alerts\.webhook\.tokenEnv: set tokenFile or tokenEnv, not both/,
  );
  assert.match(errorOf({ alerts: { lagSecond: {} } }), /alerts/);
});
