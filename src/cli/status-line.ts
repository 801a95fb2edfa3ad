/**
 * `pgcdc run`'s progress line: every `log.progressIntervalMs` (default a minute), at info level,
 * what the capture delivered since it started streaming and since the last line, the rate, the
 * acknowledged LSN, and how far behind it is.
 *
 * It reads the capture's own status (Capture's onProgress, refreshed at every standby status
 * update), so the stream loop carries no work for it. The server's current WAL position is not
 * known there without a query, so the distance given is received minus acknowledged (WAL received
 * whose changes are not yet durable and confirmed), and the line says so (`lagBasis`).
 */
import type { CaptureStatus } from '../lifecycle/engine.ts';
import type { Logger } from '../core/log.ts';
import { parseLsn } from '../protocol/lsn.ts';

export class ProgressLog {
  private readonly log: Logger;
  private readonly intervalMs: number;
  private latest: CaptureStatus | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** `delivered` and the time at the last line (or when the first status arrived). */
  private lastDelivered = 0;
  private lastAt = 0;

  /** `intervalMs` 0 turns the line off. */
  constructor(log: Logger, intervalMs: number) {
    this.log = log;
    this.intervalMs = intervalMs;
  }

  /** The capture's latest status (its onProgress callback). */
  readonly update = (status: CaptureStatus): void => {
    if (this.latest === undefined) this.lastAt = Date.now();
    this.latest = status;
  };

  start(): void {
    if (this.intervalMs <= 0 || this.timer !== undefined) return;
    this.timer = setInterval(() => this.line(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  private line(): void {
    const status = this.latest;
    // Nothing before streaming starts: the initial snapshot has its own progress display.
    if (status === undefined) return;
    const now = Date.now();
    const seconds = Math.max(0.001, (now - this.lastAt) / 1000);
    const sinceLast = status.delivered - this.lastDelivered;
    const perSecond = Math.round((sinceLast / seconds) * 10) / 10;
    const unackedBytes = Math.max(0, parseLsn(status.received) - parseLsn(status.acked));
    this.lastDelivered = status.delivered;
    this.lastAt = now;
    this.log.info(
      {
        delivered: status.delivered,
        deliveredSinceLast: sinceLast,
        seconds: Math.round(seconds),
        perSecond,
        acked: status.acked,
        received: status.received,
        unackedBytes,
        lagBasis: 'received-minus-acked',
      },
      `progress: ${status.delivered} events delivered since streaming started, ` +
        `${sinceLast} in the last ${Math.round(seconds)} s (${perSecond}/s); ` +
        (`acknowledged up to ` +
          (`${status.acked}; ` +
            (`${unackedBytes} bytes received and not yet acknowledged (received minus acknowledged, not the lag ` +
              `behind the server's current WAL, which is not read)`))),
    );
  }
}
