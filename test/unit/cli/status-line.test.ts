/** The status line's interval key, its deprecated earlier name, and the warning for it. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../../../src/config.ts';
import { deprecatedIntervalKey, statusLineIntervalMs } from '../../../src/cli/status-line.ts';

const logOf = (log: unknown) => parseConfig({ source: { database: 'db' }, log }).log;

test('without either key the status line comes every minute, with no warning', () => {
  const log = logOf({});
  assert.equal(statusLineIntervalMs(log), 60_000);
  assert.equal(deprecatedIntervalKey(log), undefined);
});

test('log.statusLineIntervalMs sets the interval; 0 turns the line off', () => {
  assert.equal(statusLineIntervalMs(logOf({ statusLineIntervalMs: 300 })), 300);
  assert.equal(statusLineIntervalMs(logOf({ statusLineIntervalMs: 0 })), 0);
  assert.equal(deprecatedIntervalKey(logOf({ statusLineIntervalMs: 300 })), undefined);
});

test('the deprecated log.progressIntervalMs is still accepted, with a warning naming the new key', () => {
  const log = logOf({ progressIntervalMs: 300 });
  assert.equal(statusLineIntervalMs(log), 300);
  assert.match(
    deprecatedIntervalKey(log) ?? '',
    /log\.progressIntervalMs is deprecated: rename it to log\.statusLineIntervalMs/,
  );
});

test('with both keys the new one wins and the warning says the old one is ignored', () => {
  const log = logOf({ progressIntervalMs: 300, statusLineIntervalMs: 5000 });
  assert.equal(statusLineIntervalMs(log), 5000);
  assert.match(deprecatedIntervalKey(log) ?? '', /ignored/);
});
