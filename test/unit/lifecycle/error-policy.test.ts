/**
 * The error policy (core/error-policy.ts): every code is classified (the table's type makes a
 * missing code a compile error), and failures from PostgreSQL and sockets land where they belong.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CdcError, USAGE_CODES, toCdcError, type ErrorCode } from '../../../src/core/errors.ts';
import {
  ERROR_POLICY,
  causeSaysTransient,
  isConnectionLoss,
  type ErrorClass,
  type ErrorPolicy,
} from '../../../src/core/error-policy.ts';
import { connectError, type SourceEndpoint } from '../../../src/postgres/connect.ts';
import { exitCodeFor } from '../../../src/cli/exit.ts';

// Compile-time: the table is exactly a Record over ErrorCode.
const exhaustive: Readonly<Record<ErrorCode, ErrorPolicy>> = ERROR_POLICY;

/** A PostgreSQL ErrorResponse as pg raises it. */
function pgError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code, severity: 'FATAL' });
}

function errno(code: string): Error {
  return Object.assign(new Error(`connect ${code} 10.0.0.1:5432`), { code });
}

const endpoint: SourceEndpoint = {
  host: 'db.example.com',
  port: 5432,
  user: 'app',
  password: 'hunter2',
  database: 'shop',
  sslmode: 'disable',
  sslrootcert: undefined,
  sslcert: undefined,
  sslkey: undefined,
  connectTimeoutMs: 10_000,
};

test('every code has a class and a reason; the retried ones are exactly the policy', () => {
  const classes: ReadonlySet<ErrorClass> = new Set(['retry', 'transient-if', 'user', 'bug']);
  const codes = Object.keys(exhaustive) as ErrorCode[];
  assert.ok(codes.length >= 30);
  for (const code of codes) {
    const policy = ERROR_POLICY[code];
    assert.ok(classes.has(policy.class), code);
    assert.ok(policy.why.length > 0, code);
    const flagged = new CdcError(code, 'x', { retryable: true });
    const unflagged = new CdcError(code, 'x');
    if (policy.class === 'retry') assert.equal(unflagged.retryable, true, code);
    if (policy.class === 'transient-if')
      assert.deepEqual([flagged.retryable, unflagged.retryable], [true, false], code);
    if (policy.class === 'user' || policy.class === 'bug') assert.equal(flagged.retryable, false, code);
  }
  // Bad input (exit 2) is never retried.
  for (const code of USAGE_CODES) assert.equal(ERROR_POLICY[code].class, 'user', code);
  for (const code of ['INTERNAL', 'PROTOCOL_INVALID', 'PROTOCOL_TRUNCATED', 'PROTOCOL_UNKNOWN_MESSAGE'] as const)
    assert.equal(ERROR_POLICY[code].class, 'bug');
  for (const code of [
    'SLOT_MISSING',
    'SLOT_LOST',
    'SLOT_AHEAD_OF_OFFSET',
    'SYSTEM_CHANGED',
    'OFFSETS_CORRUPT',
  ] as const)
    assert.equal(ERROR_POLICY[code].class, 'user');
  for (const code of ['CONNECTION_LOST', 'SOURCE_TIMEOUT'] as const) assert.equal(ERROR_POLICY[code].class, 'retry');
});

test('connection losses: refused, reset, EOF, a terminated backend, a server starting up', () => {
  for (const cause of [
    errno('ECONNREFUSED'),
    errno('ECONNRESET'),
    errno('EPIPE'),
    new Error('Connection terminated unexpectedly'),
    new Error('Client has encountered a connection error and is not queryable'),
    pgError('57P01', 'terminating connection due to administrator command'),
    pgError('57P03', 'the database system is starting up'),
    pgError('08006', 'connection failure'),
  ]) {
    assert.equal(isConnectionLoss(cause), true, cause.message);
    const wrapped = toCdcError(cause, 'SOURCE_QUERY_FAILED');
    assert.equal(wrapped.code, 'CONNECTION_LOST', cause.message);
    assert.equal(wrapped.retryable, true);
    // The line says the connection was lost, whatever node-postgres called it.
    assert.match(wrapped.message, /connection (to PostgreSQL )?was lost/, cause.message);
  }
  assert.equal(isConnectionLoss(pgError('42501', 'permission denied for table t')), false);
  // EPIPE looks like a SQLSTATE (five capitals) but is an errno.
  assert.equal(isConnectionLoss(Object.assign(new Error('x'), { code: 'EPERM' })), false);
});

test('the cause decides for transient-if codes: a SQLSTATE beats the call site flag', () => {
  const denied = new CdcError('SOURCE_QUERY_FAILED', 'x', { retryable: true, cause: pgError('42501', 'denied') });
  assert.equal(denied.retryable, false);
  for (const state of ['40001', '40P01', '57014', '53300', '55006'])
    assert.equal(new CdcError('SOURCE_QUERY_FAILED', 'x', { cause: pgError(state, 'y') }).retryable, true, state);
  const missing = new CdcError('REPLICATION_STREAM_FAILED', 'x', {
    retryable: true,
    cause: pgError('42704', 'publication "p" does not exist'),
  });
  assert.equal(missing.retryable, false);
  assert.equal(
    new CdcError('REPLICATION_STREAM_FAILED', 'the server ended the replication stream', { retryable: true }).retryable,
    true,
  );
  // A file system errno is not decisive: the sink's own judgement stands.
  const emfile = Object.assign(new Error('too many open files'), { code: 'EMFILE' });
  assert.equal(causeSaysTransient(emfile), undefined);
  assert.equal(new CdcError('SINK_FAILED', 'x', { retryable: true, cause: emfile }).retryable, true);
  assert.equal(new CdcError('SINK_FAILED', 'x', { cause: emfile }).retryable, false);
  // A bug stays a bug whatever the site says.
  assert.equal(new CdcError('INTERNAL', 'x', { retryable: true, cause: errno('ECONNRESET') }).retryable, false);
});

test('a raw PostgreSQL error is SOURCE_QUERY_FAILED, not INTERNAL', () => {
  const wrapped = toCdcError(pgError('42P01', 'relation "t" does not exist'));
  assert.equal(wrapped.code, 'SOURCE_QUERY_FAILED');
  assert.equal(wrapped.retryable, false);
  assert.equal(toCdcError(new Error('boom')).code, 'INTERNAL');
});

test('connectError: a server that is not there yet is retried (exit 1 at give-up); bad input is exit 2', () => {
  for (const cause of [
    errno('ECONNREFUSED'),
    errno('ETIMEDOUT'),
    errno('EHOSTUNREACH'),
    errno('EAI_AGAIN'),
    new Error('Connection terminated due to connection timeout'),
    pgError('57P03', 'the database system is in recovery mode'),
    pgError('53300', 'sorry, too many clients already'),
  ]) {
    const error = connectError(endpoint, cause);
    assert.equal(error.code, 'CONNECTION_LOST', cause.message);
    assert.equal(error.retryable, true);
    assert.equal(exitCodeFor(error), 1);
    assert.match(error.message, /^cannot connect to app@db\.example\.com:5432\/shop \(/);
    assert.doesNotMatch(error.message, /10\.0\.0\.1|hunter2/, 'never the dialled address or the password');
  }
  for (const [cause, code] of [
    [errno('ENOTFOUND'), 'CONNECT_FAILED'],
    [pgError('3D000', 'database "shop" does not exist'), 'CONNECT_FAILED'],
    [pgError('28P01', 'password authentication failed'), 'AUTH_FAILED'],
    [pgError('28000', 'no pg_hba.conf entry'), 'AUTH_FAILED'],
    [pgError('42501', 'permission denied for database shop'), 'CONNECT_FAILED'],
  ] as const) {
    const error = connectError(endpoint, cause);
    assert.equal(error.code, code, cause.message);
    assert.equal(error.retryable, false);
    assert.equal(exitCodeFor(error), 2);
  }
});
