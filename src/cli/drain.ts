/**
 * The pure parts of `pgcdc drain` (drain-command.ts runs it): the `--timeout` duration, the rule
 * that says when the capture has drained up to its target, and the lines it prints.
 *
 * The rule (`DrainWatch`), over the engine's own events (core/engine-events.ts): the capture is
 * streaming (its initial snapshot is over), the last stored checkpoint has no incremental snapshot
 * left to read, and a standby status update confirmed a flush LSN at or past the target. By the
 * acknowledgement rule (ARCHITECTURE.md) that update is sent only after the sink made every change
 * up to it durable and the checkpoint naming it was stored, so nothing up to the target is left.
 */
import type { Config } from '../config.ts';
import { CdcError } from '../core/errors.ts';
import type { EngineEvent, EngineEvents } from '../core/engine-events.ts';
import { formatLsn, parseLsn } from '../protocol/lsn.ts';
import type { Lsn } from '../protocol/messages.ts';

/** The exit code of a drain that did not reach its target within `--timeout`. */
export const DRAIN_TIMEOUT_EXIT = 3;

const UNITS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** `--timeout`: `90s`, `10m`, `1h`, `500ms`, or a number of seconds; at least 1 ms, at most 7 days. */
export function parseDuration(text: string, flag = '--timeout'): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(text);
  const ms = match === null ? NaN : Number(match[1]) * (UNITS[match[2] ?? 's'] ?? NaN);
  if (!Number.isFinite(ms) || ms < 1 || ms > 7 * 86_400_000) {
    throw new CdcError('CONFIG_INVALID', `${flag} must be a duration like 90s, 10m or 1h, not ${JSON.stringify(text)}`);
  }
  return Math.round(ms);
}

/** What a drain saw so far. */
export interface DrainState {
  readonly target: string;
  readonly streaming: boolean;
  /** The flush LSN last confirmed to PostgreSQL by this drain's capture. */
  readonly acked: string | undefined;
  readonly received: string | undefined;
  /** The last stored checkpoint's LSN. */
  readonly checkpoint: string | undefined;
  readonly snapshotPending: boolean;
  readonly delivered: number;
  /** The last fault the capture reported (`CODE: message`), when it is not streaming since. */
  readonly fault: string | undefined;
}

/**
 * Listens to a capture's events and calls `onReached` once the drain rule holds (see the file's
 * comment). `snapshotPendingAtStart` is what the stored checkpoint said before the start (an
 * incremental snapshot still to read), used until the capture stores a checkpoint of its own.
 */
export class DrainWatch implements EngineEvents {
  private readonly targetLsn: Lsn;
  private streaming = false;
  private acked: Lsn | undefined;
  private received: Lsn | undefined;
  private checkpoint: Lsn | undefined;
  private snapshotPending: boolean;
  private delivered = 0;
  private fault: string | undefined;
  private fired = false;

  constructor(
    readonly target: string,
    snapshotPendingAtStart: boolean,
    private readonly onReached: () => void,
  ) {
    this.targetLsn = parseLsn(target);
    this.snapshotPending = snapshotPendingAtStart;
  }

  emit(event: EngineEvent): void {
    switch (event.type) {
      case 'state':
        // A retried fault starts the capture again: streaming is reported anew by that attempt.
        this.streaming = event.state === 'streaming';
        if (this.streaming) this.fault = undefined;
        break;
      case 'fault':
        this.fault = `${event.code}: ${event.message}`;
        return;
      case 'checkpoint-stored':
        this.checkpoint = max(this.checkpoint, parseLsn(event.lsn));
        if (event.snapshotPending !== undefined) this.snapshotPending = event.snapshotPending;
        break;
      case 'status-sent':
        this.acked = max(this.acked, parseLsn(event.acked));
        this.received = max(this.received, parseLsn(event.received));
        this.delivered = Math.max(this.delivered, event.delivered);
        break;
      default:
        return;
    }
    if (!this.fired && this.reached) {
      this.fired = true;
      this.onReached();
    }
  }

  /** The drain rule holds now. */
  get reached(): boolean {
    return this.streaming && !this.snapshotPending && this.acked !== undefined && this.acked >= this.targetLsn;
  }

  state(): DrainState {
    const text = (lsn: Lsn | undefined): string | undefined => (lsn === undefined ? undefined : formatLsn(lsn));
    return {
      target: this.target,
      streaming: this.streaming,
      acked: text(this.acked),
      received: text(this.received),
      checkpoint: text(this.checkpoint),
      snapshotPending: this.snapshotPending,
      delivered: this.delivered,
      fault: this.fault,
    };
  }
}

function max(a: Lsn | undefined, b: Lsn): Lsn {
  return a === undefined || b > a ? b : a;
}

/** Whether LSN text `a` is at or past `b`. */
export function lsnAtLeast(a: string | undefined, b: string): boolean {
  return a !== undefined && parseLsn(a) >= parseLsn(b);
}

/** The bytes from `from` to `to` (0 when `to` is not past `from`, or `from` unknown: the whole of `to`). */
export function bytesBetween(from: string | undefined, to: string): number {
  return Math.max(0, parseLsn(to) - (from === undefined ? 0 : parseLsn(from)));
}

/** What `drain` reports when it ends (its `--json` object). */
export interface DrainResult {
  readonly drained: boolean;
  readonly slot: string;
  /** The server's WAL position read at the start (a standby's replay position). */
  readonly target: string;
  readonly standby: boolean;
  /** The slot's confirmed_flush_lsn as pg_replication_slots showed it at the end; null when unknown. */
  readonly confirmed: string | null;
  /** The stored checkpoint's LSN at the end; null when unknown. */
  readonly checkpoint: string | null;
  /** Events made durable by this drain. */
  readonly eventsDelivered: number;
  /** Nothing had to be captured: the stored checkpoint and the slot were at the target already. */
  readonly alreadyDrained: boolean;
  readonly elapsedMs: number;
  /** Why the drain did not finish (drained false), one line. */
  readonly error?: string;
}

/** The one line a finished drain prints (without `--json`). */
export function drainedLine(result: DrainResult): string {
  return (
    `drained: slot ${result.slot} confirmed ${result.confirmed ?? '?'} >= target ${result.target}` +
    `${result.standby ? " (the standby's replay position)" : ''}; nothing is left to capture up to the target ` +
    `(read at the start: what was written since is left for the next run)`
  );
}

/** The error line of a drain that timed out (without the `pgcdc: error: ` prefix). */
export function timeoutMessage(
  timeoutMs: number,
  state: DrainState,
  confirmed: string | undefined,
  stoppedCleanly = true,
): string {
  const why = !state.streaming
    ? state.fault !== undefined
      ? `the capture was starting again after a fault (${state.fault})`
      : 'the capture was not streaming yet (still starting or taking its initial snapshot)'
    : state.snapshotPending
      ? 'an incremental snapshot was still being read'
      : `the confirmed position is ${state.acked ?? confirmed ?? 'unknown'} ` +
        `(${bytesBetween(state.acked ?? confirmed, state.target)} bytes short; is the sink slow or stalled?)`;
  return (
    `drain did not reach its target ${state.target} within ${formatDuration(timeoutMs)}: ${why}. ` +
    (stoppedCleanly
      ? 'What was delivered is confirmed'
      : 'The capture did not stop cleanly either (nothing unconfirmed is lost: it is delivered again)') +
    '; run drain again, or with a longer --timeout'
  );
}

export function formatDuration(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

/** At most this long between idle confirmations while draining (see drainCaptureConfig). */
const DRAIN_HEARTBEAT_MS = 1000;

/**
 * The capture's config for a drain: idle confirmations (heartbeats) at least every second, even when
 * turned off. A target past the last captured commit (WAL of other tables, other databases, the
 * server's own records) is reached only by confirming idle WAL, and a drain should not wait the
 * default 10 s for it, let alone forever.
 */
export function drainCaptureConfig(config: Config): Config {
  const interval = config.heartbeat.interval;
  if (interval > 0 && interval <= DRAIN_HEARTBEAT_MS) return config;
  return { ...config, heartbeat: { ...config.heartbeat, interval: DRAIN_HEARTBEAT_MS } };
}
