import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../../../src/config.ts';
import { flagNamer, flagsToConfig } from '../../../src/cli/run-command.ts';

test('retry settings: defaults, the file, and the flags', () => {
  assert.deepEqual(parseConfig({}).retry, {
    initialDelayMs: 500,
    maxDelayMs: 30_000,
    giveUpAfterMs: 900_000,
    resetAfterMs: 30_000,
    jitter: 'full',
  });
  assert.deepEqual(parseConfig({}).shutdown, { timeoutMs: 30_000 });
  const fromFile = parseConfig({ retry: { initialDelayMs: 100, jitter: 'decorrelated' } }).retry;
  assert.equal(fromFile.initialDelayMs, 100);
  assert.equal(fromFile.jitter, 'decorrelated');
  const flags = flagsToConfig({ retryInitialDelay: '250', retryMaxDelay: '2000', retryGiveUpAfter: '0' });
  assert.deepEqual(parseConfig(flags).retry, {
    initialDelayMs: 250,
    maxDelayMs: 2000,
    giveUpAfterMs: 0,
    resetAfterMs: 30_000,
    jitter: 'full',
  });
});

test('bad retry settings: one line naming the key or the flag', () => {
  assert.throws(
    () => parseConfig({ retry: { initialDelayMs: 5000, maxDelayMs: 1000 } }, 'pgcdc.yaml'),
    /^CdcError: pgcdc\.yaml: retry\.maxDelayMs: must be at least retry\.initialDelayMs$/,
  );
  assert.throws(() => parseConfig({ retry: { giveUpAfterMs: -1 } }, 'pgcdc.yaml'), /retry\.giveUpAfterMs/);
  assert.throws(() => parseConfig({ retry: { backoff: 3 } }, 'pgcdc.yaml'), /retry: .*backoff/);
  const flags = flagsToConfig({ retryInitialDelay: '5000', retryMaxDelay: '1000' });
  assert.throws(() => parseConfig(flags, 'flags', flagNamer(flags)), /--retry-max-delay: must be at least/);
  assert.throws(() => flagsToConfig({ retryGiveUpAfter: 'soon' }), /--retry-give-up-after must be a non-negative/);
  assert.throws(() => flagsToConfig({ retryInitialDelay: '0' }), /--retry-initial-delay must be a positive/);
});
