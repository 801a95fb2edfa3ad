/**
 * Typed errors. Every failure pgcdc reports carries a closed `code`, whether retrying could help,
 * and a `hint` telling the user what to do. Messages never contain passwords or full connection
 * strings: build them from `describeEndpoint()` in postgres/connect.ts, never from a URL.
 * Whether an error is retried comes from the error policy (error-policy.ts), not from call sites.
 */
import { isConnectionLoss, isRetryable, sqlStateOf } from './error-policy.ts';

export type ErrorCode =
  // bad input from the user: exit code 2
  | 'CONFIG_INVALID'
  | 'USAGE'
  // the source database
  | 'CONNECT_FAILED'
  | 'AUTH_FAILED'
  | 'SOURCE_QUERY_FAILED'
  | 'SOURCE_NOT_READY'
  | 'PUBLICATION_MISSING'
  | 'TABLE_MISSING'
  | 'REPLICATION_STREAM_FAILED'
  /** The connection to the source was refused, reset or closed (a restart, a terminated walsender, a cut). */
  | 'CONNECTION_LOST'
  /**
   * The source sent nothing within the receive timeout, or a query outlived its timeout (a stall,
   * a half-open link).
   */
  | 'SOURCE_TIMEOUT'
  /** DDL (e.g. TRUNCATE) on a snapshot table between the slot's creation and the readers' lock. */
  | 'SNAPSHOT_CONFLICT'
  // preflight (pgcdc run stops on check errors), setup and tunnels
  | 'PREFLIGHT_FAILED'
  | 'SETUP_FAILED'
  | 'TUNNEL_FAILED'
  // the never-lose-data checks: refusing to resume
  | 'SLOT_MISSING'
  | 'SLOT_LOST'
  | 'SLOT_AHEAD_OF_OFFSET'
  | 'SYSTEM_CHANGED'
  /** The stored offset is past the server's WAL (a restored or replaced server, an edited offsets file). */
  | 'OFFSET_AHEAD_OF_SERVER'
  | 'OFFSETS_LOCKED'
  | 'OFFSETS_CORRUPT'
  /** The offsets file and the checkpoint a sink stores (Kafka) disagree in a way that may hide a gap. */
  | 'OFFSETS_DIVERGED'
  // bytes on the wire
  | 'PROTOCOL_TRUNCATED'
  | 'PROTOCOL_UNKNOWN_MESSAGE'
  | 'PROTOCOL_INVALID'
  | 'DECODE_UNKNOWN_RELATION'
  | 'VALUE_INVALID'
  // delivery
  | 'SINK_FAILED'
  /** Another pgcdc took over the sink's transactional identity (Kafka zombie fencing): this one must stop. */
  | 'SINK_FENCED'
  /** Another process streams the slot this pgcdc held before a retry (slot-ownership.ts): this one must stop. */
  | 'SLOT_TAKEN_OVER'
  /**
   * The local disk (offsets file, its lock or directory, JSONL output): full, read-only, failing, no access. Exit 1. */
  | 'LOCAL_IO'
  | 'INTERNAL';

export interface CdcErrorOptions {
  /**
   * The call site's judgement that this occurrence is transient (the same operation may succeed
   * later without the user changing anything). Used only for the codes the error policy marks
   * `transient-if`, and only when the cause carries no SQLSTATE or network error of its own.
   */
  retryable?: boolean;
  /** One sentence on what the user should do. */
  hint?: string;
  cause?: unknown;
}

export class CdcError extends Error {
  readonly code: ErrorCode;
  /** Retried inside the process by the supervisor (lifecycle/supervisor.ts): from the error policy. */
  readonly retryable: boolean;
  readonly hint: string | undefined;

  constructor(code: ErrorCode, message: string, options: CdcErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CdcError';
    this.code = code;
    this.retryable = isRetryable(code, options.retryable, options.cause);
    this.hint = options.hint;
  }

  /** One line for a terminal: the message and, when there is one, what to do about it. */
  oneLine(): string {
    return this.hint === undefined ? this.message : `${this.message}. ${this.hint}`;
  }
}

/** Codes that mean the user's input was wrong (exit code 2) rather than a runtime failure (exit 1). */
export const USAGE_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'CONFIG_INVALID',
  'USAGE',
  'CONNECT_FAILED',
  'AUTH_FAILED',
  'TABLE_MISSING',
  'PUBLICATION_MISSING',
]);

export function isCdcError(value: unknown): value is CdcError {
  return value instanceof CdcError;
}

/**
 * Wraps anything thrown into a CdcError, keeping typed errors as they are. Whatever `code` says, a
 * connection that went away (a reset, EOF, a terminated backend) becomes CONNECTION_LOST, and a
 * PostgreSQL error is SOURCE_QUERY_FAILED rather than INTERNAL: neither is a bug in pgcdc.
 */
export function toCdcError(value: unknown, code: ErrorCode = 'INTERNAL'): CdcError {
  if (value instanceof CdcError) return value;
  const message = value instanceof Error ? value.message : String(value);
  // node-postgres words some losses for its own API ("... is not queryable"): the line says what happened.
  if (isConnectionLoss(value))
    return new CdcError('CONNECTION_LOST', `the connection to PostgreSQL was lost (${message})`, { cause: value });
  if (code === 'INTERNAL' && sqlStateOf(value) !== undefined)
    return new CdcError('SOURCE_QUERY_FAILED', message, { cause: value });
  return new CdcError(code, message, { cause: value });
}

/**
 * A failed source operation (`code`, usually SOURCE_QUERY_FAILED): CONNECTION_LOST instead when the
 * cause says the connection went away, so logs and the policy name what really happened.
 */
export function sourceError(code: ErrorCode, message: string, options: CdcErrorOptions = {}): CdcError {
  return new CdcError(isConnectionLoss(options.cause) ? 'CONNECTION_LOST' : code, message, options);
}
