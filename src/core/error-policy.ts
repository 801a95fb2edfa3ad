/**
 * The error policy: for every error code, whether pgcdc retries it inside the process (the
 * supervisor tears the capture down and starts it again, lifecycle/supervisor.ts), whether it needs
 * the user (a setting, a permission, a refusal to resume over a gap), or whether it is a bug.
 * `CdcError.retryable` is computed from this table, so a call site cannot make a user's mistake or a
 * bug loop forever; it can only say, for the codes marked `transient-if`, that this occurrence is
 * transient. ARCHITECTURE.md (the error policy) and docs/recovery.md describe it for users.
 */
import type { ErrorCode } from './errors.ts';

/**
 * - `retry`: always retried (the connection went away, the source stopped answering).
 * - `transient-if`: retried when the failure says it is transient: its cause carries a transient
 *   SQLSTATE or a network error (decisive either way when present), else the call site's
 *   `retryable` flag.
 * - `user`: never retried; the user must change something (exit 1, or 2 for bad input).
 * - `bug`: never retried; pgcdc or the server broke a rule (report it).
 */
export type ErrorClass = 'retry' | 'transient-if' | 'user' | 'bug';

export interface ErrorPolicy {
  readonly class: ErrorClass;
  /** Why, in a few words (docs/recovery.md shows the same table). */
  readonly why: string;
}

/** Every code, classified: a missing or unknown key is a compile error. */
export const ERROR_POLICY: { readonly [code in ErrorCode]: ErrorPolicy } = {
  CONFIG_INVALID: { class: 'user', why: 'a setting is wrong' },
  USAGE: { class: 'user', why: 'the command line is wrong' },
  CONNECT_FAILED: {
    class: 'user',
    why: 'the host name does not resolve, the database does not exist, or TLS is refused or unverifiable',
  },
  AUTH_FAILED: { class: 'user', why: 'the password, pg_hba.conf or the role refuse the login' },
  SOURCE_QUERY_FAILED: {
    class: 'transient-if',
    why: 'a connection loss, a query timeout or a transient SQLSTATE is retried; a permission or syntax error is not',
  },
  SOURCE_NOT_READY: {
    class: 'transient-if',
    why: 'the slot still held by a consumer that is going away is retried; wal_level or grants are not',
  },
  PUBLICATION_MISSING: { class: 'user', why: 'the publication must be created' },
  TABLE_MISSING: { class: 'user', why: 'a selected table does not exist' },
  REPLICATION_STREAM_FAILED: {
    class: 'transient-if',
    why: 'the server ending the stream is retried; an error with a permanent SQLSTATE is not',
  },
  CONNECTION_LOST: { class: 'retry', why: 'refused, reset or closed: a restart, a terminated walsender, a cut' },
  SOURCE_TIMEOUT: { class: 'retry', why: 'the source stopped answering (a stall, a half-open connection)' },
  SNAPSHOT_CONFLICT: { class: 'transient-if', why: 'DDL raced the snapshot start: a fresh start takes it again' },
  PREFLIGHT_FAILED: { class: 'user', why: 'a start-up check failed (pgcdc check names the fix)' },
  SETUP_FAILED: { class: 'user', why: 'pgcdc setup could not apply a step' },
  TUNNEL_FAILED: { class: 'transient-if', why: 'an unreachable SSH server is retried; a refused key is not' },
  SLOT_MISSING: { class: 'user', why: 'the restart rule refuses to resume over a gap' },
  SLOT_LOST: { class: 'user', why: 'the restart rule refuses to resume over a gap' },
  SLOT_AHEAD_OF_OFFSET: { class: 'user', why: 'the restart rule refuses to resume over a gap' },
  SYSTEM_CHANGED: { class: 'user', why: 'the restart rule refuses to resume on another server' },
  OFFSET_AHEAD_OF_SERVER: { class: 'user', why: 'the restart rule refuses to resume on a rewound server' },
  OFFSETS_LOCKED: { class: 'transient-if', why: 'a contended lock is retried; one held by a live process is not' },
  OFFSETS_CORRUPT: { class: 'user', why: 'the offsets file must be repaired or restored' },
  OFFSETS_DIVERGED: { class: 'user', why: 'the two stored checkpoints disagree: resuming could skip or repeat' },
  PROTOCOL_TRUNCATED: { class: 'bug', why: 'the replication protocol was violated' },
  PROTOCOL_UNKNOWN_MESSAGE: { class: 'bug', why: 'the replication protocol was violated' },
  PROTOCOL_INVALID: { class: 'bug', why: 'the replication protocol was violated' },
  DECODE_UNKNOWN_RELATION: { class: 'bug', why: 'a change arrived for a relation never described' },
  VALUE_INVALID: { class: 'bug', why: 'a value could not be decoded' },
  SINK_FAILED: { class: 'transient-if', why: 'the sink says whether its failure is transient' },
  SINK_FENCED: { class: 'user', why: 'a newer pgcdc owns the sink now: retrying would fence it in turn' },
  SLOT_TAKEN_OVER: { class: 'user', why: 'another pgcdc streams the slot now: retrying would take it back' },
  LOCAL_IO: { class: 'user', why: 'the local disk is full, read-only or failing: free space or fix it' },
  INTERNAL: { class: 'bug', why: 'a bug in pgcdc' },
};

/**
 * Network errors that mean "the connection is gone, or not there yet": the server restarting, a
 * terminated backend, a cut link. EAI_AGAIN is a temporary DNS failure (ENOTFOUND is not).
 */
const NETWORK_ERRNOS: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'ENETRESET',
  'EAI_AGAIN',
]);

/** pg's messages for a socket that closed under it (these carry no code). */
const CLOSED_CONNECTION = /connection terminated|is not queryable/i;

/** SQLSTATEs of a connection that ended or could not be made yet. */
const CONNECTION_SQLSTATES: ReadonlySet<string> = new Set([
  '57P01', // admin_shutdown: the server shuts down, or pg_terminate_backend
  '57P02', // crash_shutdown: another backend crashed
  '57P03', // cannot_connect_now: starting up, shutting down, in recovery
  '57P05', // idle_session_timeout
]);

/**
 * Transient SQLSTATEs: the same statement may succeed later without anyone changing anything.
 * 08: connection exceptions; 53: insufficient resources (too many connections, out of memory,
 * disk full); 57014: a statement timeout or cancel; 40001/40P01: serialization failure and
 * deadlock; 55006: object in use (a replication slot whose previous walsender is still exiting);
 * 55P03: lock not available.
 */
export function isTransientSqlState(state: string): boolean {
  return (
    CONNECTION_SQLSTATES.has(state) ||
    state.startsWith('08') ||
    state.startsWith('53') ||
    state === '57014' ||
    state === '40001' ||
    state === '40P01' ||
    state === '55006' ||
    state === '55P03'
  );
}

/** SQLSTATE classes never start with E, which tells them from errno codes (EPIPE). */
const SQLSTATE = /^[0-9A-DF-Z][0-9A-Z]{4}$/;

function codeOf(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : '';
}

/** `error` and its causes (bounded: a cycle of causes must not hang). */
function* causeChain(error: unknown): Generator<unknown> {
  let current = error;
  for (let depth = 0; depth < 8 && current !== undefined && current !== null; depth++) {
    yield current;
    current = typeof current === 'object' ? (current as { cause?: unknown }).cause : undefined;
  }
}

/** The first PostgreSQL SQLSTATE in the cause chain, if any. */
export function sqlStateOf(error: unknown): string | undefined {
  for (const link of causeChain(error)) {
    const code = codeOf(link);
    if (code !== undefined && SQLSTATE.test(code)) return code;
  }
  return undefined;
}

/**
 * Whether `error` (or a cause) says the connection to the source went away or cannot be made yet:
 * a network errno, pg's closed-connection messages, a connection SQLSTATE (57P01...), or a
 * CONNECTION_LOST CdcError wrapped by another.
 */
export function isConnectionLoss(error: unknown): boolean {
  for (const link of causeChain(error)) {
    const code = codeOf(link);
    if (code === undefined) {
      if (CLOSED_CONNECTION.test(messageOf(link))) return true;
    } else if (
      NETWORK_ERRNOS.has(code) ||
      (SQLSTATE.test(code) && (CONNECTION_SQLSTATES.has(code) || code.startsWith('08'))) ||
      code === 'CONNECTION_LOST'
    )
      return true;
  }
  return false;
}

/**
 * What the cause says, when it says anything: true for a connection loss or a transient SQLSTATE,
 * false for any other SQLSTATE (permission denied, syntax, undefined object...), undefined when it
 * carries neither (a file system error, a message without a code).
 */
export function causeSaysTransient(cause: unknown): boolean | undefined {
  if (cause === undefined) return undefined;
  if (isConnectionLoss(cause)) return true;
  const state = sqlStateOf(cause);
  return state === undefined ? undefined : isTransientSqlState(state);
}

/** Whether an error with this code, call-site flag and cause is retried in the process. */
export function isRetryable(code: ErrorCode, flagged: boolean | undefined, cause: unknown): boolean {
  switch (ERROR_POLICY[code].class) {
    case 'retry':
      return true;
    case 'transient-if':
      return causeSaysTransient(cause) ?? flagged ?? false;
    case 'user':
    case 'bug':
      return false;
  }
}
