/** Shared assertions for the protocol tests. */
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { CdcError, type ErrorCode } from '../../../src/core/errors.ts';

/** Asserts `run` throws a CdcError with `code` (and, when given, a message matching `message`). */
export function assertCdcError(run: () => unknown, code: ErrorCode, message?: RegExp): CdcError {
  let thrown: unknown;
  try {
    run();
  } catch (error) {
    thrown = error;
  }
  assert.ok(
    thrown instanceof CdcError,
    `expected a CdcError ${code}, got ${thrown === undefined ? 'no error' : inspect(thrown)}`,
  );
  assert.equal(thrown.code, code, `expected ${code}, got ${thrown.code}: ${thrown.message}`);
  if (message) assert.match(thrown.message, message);
  return thrown;
}
