/**
 * `pgcdc run`'s periodic status line: every `log.statusLineIntervalMs` (default a minute), at info
 * level, what the capture delivered since it started streaming and since the last line, the rate,
 * the acknowledged LSN, and how far behind it is.
 *
 * It reads the capture's `status()` (observability/status-tracker.ts, refreshed at every standby
 * status update), so the stream loop carries no work for it. The server's current WAL position is
 * not known there without a query, so the distance given is received minus acknowledged (WAL
 * received whose changes are not yet durable and confirmed), and the line says so (`lagBasis`).
 */
import type { Config } from '../config.ts';
import type { Logger } from '../core/log.ts';
import type { EngineStatus } from '../observability/status-tracker.ts';
import { parseLsn } from '../protocol/lsn.ts';

const DEFAULT_INTERVAL_MS = 60_000;

/** The status line's interval: `log.statusLineIntervalMs`, else its deprecated name `log.progressIntervalMs`. */
export function statusLineIntervalMs(config: Config['log']): number {
  return config.statusLineIntervalMs ?? config.progressIntervalMs ?? DEFAULT_INTERVAL_MS;
}

/** The one warning line for the deprecated key, or undefined when it is not used. */
export function deprecatedIntervalKey(config: Config['log']): string | undefined {
  if (config.progressIntervalMs === undefined) return undefined;
  return config.statusLineIntervalMs === undefined
    ? 'log.progressIntervalMs is deprecated: rename it to log.statusLineIntervalMs (same meaning)'
    : 'log.progressIntervalMs is deprecated and ignored: log.statusLineIntervalMs is set too; remove the old key';
}

export class StatusLine {
  private readonly log: Logger;
  private readonly intervalMs: number;
  private status: (() => EngineStatus) | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** `eventsDelivered` and the time at the last line (or when the first line was due with positions). */
  private lastDelivered = 0;
  private lastAt: number | undefined;

  /** `intervalMs` 0 turns the line off. */
  constructor(log: Logger, intervalMs: number) {
    this.log = log;
    this.intervalMs = intervalMs;
  }

  /** Starts printing what `status` returns. */
  start(status: () => EngineStatus): void {
    if (this.intervalMs <= 0 || this.timer !== undefined) return;
    this.status = status;
    this.lastAt = Date.now();
    this.timer = setInterval(() => this.line(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  private line(): void {
    const status = this.status?.();
    const acked = status?.ackedLsn;
    const received = status?.receivedLsn;
    // Nothing before streaming starts: the initial snapshot has its own progress display.
    if (status === undefined || acked === undefined || received === undefined) return;
    const now = Date.now();
    const seconds = Math.max(0.001, (now - (this.lastAt ?? now)) / 1000);
    const delivered = status.eventsDelivered;
    const sinceLast = delivered - this.lastDelivered;
    const perSecond = Math.round((sinceLast / seconds) * 10) / 10;
    const unackedBytes = Math.max(0, parseLsn(received) - parseLsn(acked));
    this.lastDelivered = delivered;
    this.lastAt = now;
    this.log.info(
      {
        delivered,
        deliveredSinceLast: sinceLast,
        seconds: Math.round(seconds),
        perSecond,
        acked,
        received,
        unackedBytes,
        lagBasis: 'received-minus-acked',
      },
      `progress: ${delivered} events delivered since streaming started, ` +
        `${sinceLast} in the last ${Math.round(seconds)} s (${perSecond}/s); ` +
        (`acknowledged up to ` +
          (`${acked}; ` +
            (`${unackedBytes} bytes received and not yet acknowledged (received minus acknowledged, not the lag ` +
              `behind the server's current WAL, which is not read)`))),
    );
  }
}
