/**
 * The delays between the supervisor's attempts (lifecycle/supervisor.ts): exponential, capped, with
 * jitter so that many pgcdc processes that lost the same server do not all come back at once.
 * Pure: the random source is injected, and nothing here sleeps.
 */

export type Jitter = 'full' | 'decorrelated';

export interface BackoffSettings {
  /** The first delay's base (full jitter) or floor (decorrelated jitter), in ms. */
  readonly initialDelayMs: number;
  /** No delay is longer than this, in ms. */
  readonly maxDelayMs: number;
  readonly jitter: Jitter;
}

/**
 * - full: attempt n (from 0) waits a uniform delay in [0, min(max, initial x 2^n)].
 * - decorrelated: each delay is uniform in [initial, min(max, 3 x the previous delay)], the first
 *   previous delay being `initial`.
 */
export class Backoff {
  private readonly settings: BackoffSettings;
  private readonly random: () => number;
  private attempt = 0;
  private previous: number;

  /** `random` returns a number in [0, 1), as Math.random does. */
  constructor(settings: BackoffSettings, random: () => number = Math.random) {
    this.settings = settings;
    this.random = random;
    this.previous = settings.initialDelayMs;
  }

  /** Delays handed out since the last reset. */
  get attempts(): number {
    return this.attempt;
  }

  /** The delay before the next attempt, in whole milliseconds. */
  next(): number {
    const { initialDelayMs: initial, maxDelayMs: max } = this.settings;
    const r = this.random();
    let delay: number;
    if (this.settings.jitter === 'full') {
      // 2^n stops growing once it passes the cap: no Infinity after a long outage.
      const ceiling = Math.min(max, initial * 2 ** Math.min(this.attempt, 52));
      delay = r * ceiling;
    } else {
      const ceiling = Math.min(max, this.previous * 3);
      delay = Math.min(max, initial + r * Math.max(0, ceiling - initial));
      this.previous = delay;
    }
    this.attempt++;
    return Math.round(delay);
  }

  /** A healthy stretch ended the outage: the next delay is the first one again. */
  reset(): void {
    this.attempt = 0;
    this.previous = this.settings.initialDelayMs;
  }
}
