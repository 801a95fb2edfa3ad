/**
 * What a failed query or a broken connection to the source means, as a CdcError whose code the error
 * policy can act on: a lost connection (CONNECTION_LOST) or a timeout (SOURCE_TIMEOUT) is retried, a
 * refusal by the server is not. Typed errors (a QueryWatch's SOURCE_TIMEOUT) pass through unchanged.
 */
import { isConnectionLoss } from '../core/error-policy.ts';
import { CdcError } from '../core/errors.ts';

/** query_canceled: the server's statement_timeout (or a cancel request). */
const QUERY_CANCELED = '57014';

/**
 * `what` failed with `cause`: one CdcError naming it (the message never holds a password: it comes from the
 * server or node).
 */
export function sourceFailure(cause: unknown, what: string): CdcError {
  if (cause instanceof CdcError) return cause;
  const message = cause instanceof Error ? cause.message : String(cause);
  const code = (cause as { code?: unknown }).code;
  if (code === QUERY_CANCELED) {
    return new CdcError('SOURCE_TIMEOUT', `${what} was cancelled by the server: ${message}`, {
      cause,
      retryable: true,
      hint: 'the server ended a statement that ran past its statement_timeout (source.statementTimeoutMs)',
    });
  }
  if (isConnectionLoss(cause)) {
    return new CdcError('CONNECTION_LOST', `${what} failed: the connection was lost (${message})`, {
      cause,
      retryable: true,
    });
  }
  return new CdcError('SOURCE_QUERY_FAILED', `${what} failed: ${message}`, { cause });
}
