/**
 * `/readyz`: whether the capture is streaming and not stalled. Stalled means either no standby
 * status update for a while (the stream loop itself is stuck), or the acknowledged position has not
 * moved for a while although received WAL waits behind it (a sink or checkpoint store that no longer
 * completes). A capture that has acknowledged all it received is ready however long it has been idle.
 */
import { tryParseLsn } from '../protocol/lsn.ts';
import type { RunStatus } from '../library/run.ts';

export type Readiness = { readonly ready: true } | { readonly ready: false; readonly reason: string };

const seconds = (ms: number): string => `${Math.round(ms / 1000)} s`;

export class ReadinessWatch {
  private lastAcked: string | undefined;
  /** When the acknowledged position last moved or caught up with what was received. */
  private progressAt: number;

  /**
   * `stallAfterMs`: how long without progress counts as stalled; `statusIntervalMs`: the standby
   * status update interval (status updates are expected at least every three of them).
   */
  constructor(
    private readonly stallAfterMs: number,
    private readonly statusIntervalMs: number,
    private readonly now: () => number = Date.now,
  ) {
    this.progressAt = now();
  }

  /** Follows the acknowledged position; called at every history step and every `/readyz`. */
  observe(status: RunStatus | undefined): void {
    if (status === undefined) return;
    const now = this.now();
    const acked = status.ackedLsn === undefined ? undefined : tryParseLsn(status.ackedLsn);
    const received = status.receivedLsn === undefined ? undefined : tryParseLsn(status.receivedLsn);
    if (status.state !== 'streaming' || status.ackedLsn !== this.lastAcked) this.progressAt = now;
    else if (acked !== undefined && received !== undefined && acked >= received) this.progressAt = now;
    this.lastAcked = status.ackedLsn;
  }

  judge(status: RunStatus | undefined): Readiness {
    this.observe(status);
    if (status === undefined) return { ready: false, reason: 'the capture has not started yet' };
    if (status.state !== 'streaming') {
      const fault = status.state === 'retrying' && status.lastFault ? ` after ${status.lastFault.code}` : '';
      return { ready: false, reason: `the capture is ${status.state}${fault}, not streaming` };
    }
    const now = this.now();
    const silentFor = status.lastEventAt === undefined ? 0 : now - Date.parse(status.lastEventAt);
    const silentLimit = Math.max(this.stallAfterMs, 3 * this.statusIntervalMs);
    if (silentFor > silentLimit)
      return {
        ready: false,
        reason: `stalled: no standby status update for ${seconds(silentFor)} (the stream loop does not advance)`,
      };
    const stuckFor = now - this.progressAt;
    if (stuckFor > this.stallAfterMs)
      return {
        ready: false,
        reason:
          `stalled: the acknowledged position ${status.ackedLsn ?? '(none)'} has not moved for ` +
          `${seconds(stuckFor)} while WAL up to ${status.receivedLsn ?? '(unknown)'} was received (is the sink ` +
          `writing?)`,
      };
    return { ready: true };
  }
}
