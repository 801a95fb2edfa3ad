import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../../../src/config.ts';
import { resolveEndpoint } from '../../../src/postgres/connect.ts';
import { LIVENESS_DEFAULTS } from '../../../src/postgres/connect-config.ts';
import { receiveTimeoutFor } from '../../../src/postgres/slot.ts';
import { CdcError } from '../../../src/core/errors.ts';

function configError(input: unknown): string {
  try {
    parseConfig(input, 'pgcdc.yaml');
  } catch (error) {
    assert.ok(error instanceof CdcError);
    assert.equal(error.code, 'CONFIG_INVALID');
    return error.message;
  }
  assert.fail('expected a configuration error');
}

test('liveness settings have finite defaults', () => {
  const config = parseConfig({});
  assert.equal(config.source.statementTimeoutMs, LIVENESS_DEFAULTS.statementTimeoutMs);
  assert.equal(config.source.tcpKeepaliveMs, LIVENESS_DEFAULTS.tcpKeepaliveMs);
  assert.equal(config.source.receiveTimeoutMs, undefined, 'derived from wal_sender_timeout at start');
  assert.equal(config.snapshot.queryTimeoutMs, 1_800_000);
  // A source section given in part still gets them.
  const partial = parseConfig({ source: { url: 'postgres://u@h/db' } });
  assert.equal(partial.source.statementTimeoutMs, LIVENESS_DEFAULTS.statementTimeoutMs);
});

test('liveness settings are validated with errors naming the key', () => {
  assert.match(configError({ source: { receiveTimeoutMs: 500 } }), /^pgcdc\.yaml: source\.receiveTimeoutMs: /);
  assert.match(configError({ source: { statementTimeoutMs: 0 } }), /source\.statementTimeoutMs/);
  assert.match(configError({ source: { tcpKeepaliveMs: -1 } }), /source\.tcpKeepaliveMs/);
  assert.match(configError({ snapshot: { queryTimeoutMs: 'long' } }), /snapshot\.queryTimeoutMs/);
  assert.equal(parseConfig({ source: { tcpKeepaliveMs: 0 } }).source.tcpKeepaliveMs, 0, '0 turns keepalives off');
});

test('the endpoint carries the liveness settings', () => {
  const config = parseConfig({
    source: { url: 'postgres://u@h/db', receiveTimeoutMs: 20_000, statementTimeoutMs: 7000, tcpKeepaliveMs: 0 },
  });
  const endpoint = resolveEndpoint(config.source, {});
  assert.equal(endpoint.receiveTimeoutMs, 20_000);
  assert.equal(endpoint.statementTimeoutMs, 7000);
  assert.equal(endpoint.tcpKeepaliveMs, 0);
});

test('the receive timeout: configured, else twice wal_sender_timeout, never infinite', () => {
  assert.deepEqual(receiveTimeoutFor(15_000, 60_000).timeoutMs, 15_000);
  assert.equal(receiveTimeoutFor(undefined, 60_000).timeoutMs, 120_000);
  assert.match(receiveTimeoutFor(undefined, 60_000).origin, /twice the server's wal_sender_timeout/);
  assert.equal(receiveTimeoutFor(undefined, 0).timeoutMs, LIVENESS_DEFAULTS.receiveTimeoutWithoutServerTimeoutMs);
  assert.match(receiveTimeoutFor(undefined, 0).origin, /wal_sender_timeout is 0/);
});
