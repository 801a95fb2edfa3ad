/**
 * What a failed query or a broken connection to the source means, as a CdcError whose code the error
 * policy can act on: a lost connection (CONNECTION_LOST) or a timeout (SOURCE_TIMEOUT) is retried, a
 * refusal by the server is not. Typed errors (a QueryWatch's SOURCE_TIMEOUT) pass through unchanged.
 */
import { CdcError } from '../core/errors.ts';

/** SQLSTATEs of a server going away or not taking connections (a restart, a terminated backend, recovery). */
const SERVER_GONE = new Set(['57P01', '57P02', '57P03', '08000', '08003', '08006', '08001', '08004']);
/** query_canceled: the server's statement_timeout (or a cancel request). */
const QUERY_CANCELED = '57014';

/** True for a connection that broke under a query: a reset, a closed socket, a server that went away. */
export function isConnectionLoss(error: unknown): boolean {
  const err = error as { code?: unknown; message?: unknown };
  const code = typeof err.code === 'string' ? err.code : '';
  const message = typeof err.message === 'string' ? err.message : '';
  return (
    SERVER_GONE.has(code) ||
    ['ECONNRESET', 'EPIPE', 'ECONNREFUSED', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH'].includes(code) ||
    /Connection terminated|not queryable|socket hang up/i.test(message)
  );
}

/** `what` failed with `cause`: one CdcError naming it (the message never holds a password: it comes from the server or node). */
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
