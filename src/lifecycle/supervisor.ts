/**
 * Keeps a capture running: a fault the error policy retries (core/error-policy.ts) tears the capture
 * down and starts it again in the same process, after an exponential backoff with jitter
 * (backoff.ts). Every attempt is a full start-up (Capture.start): the offsets are read again, the
 * restart rule and the slot checks run again, the sink is opened again at the stored position, so
 * a restart never skips a check a fresh process would make. Nothing is acknowledged by the
 * supervisor itself: acknowledgements stay with the stream loop, after the sink is durable.
 *
 * An outage ends when a capture has streamed for `resetAfterMs` without a fault: the backoff and
 * the give-up clock start again from zero. Faults for `giveUpAfterMs` without such a stretch, or one
 * fault that is not retried, end the supervisor with that cause (pgcdc exits 1, or 2 for bad input).
 *
 * A stop (SIGINT/SIGTERM) is bounded by `stopTimeoutMs` in every state: in a backoff it ends at
 * once; during a start-up it waits for the attempt to settle, then stops the capture it made; while
 * streaming it is the capture's clean stop. When the bound passes (a stalled sink, a start-up stuck
 * on the network), `stop()` resolves false and the caller exits without confirming anything more.
 */
import type { Config } from '../config.ts';
import { type CdcError, type ErrorCode, toCdcError } from '../core/errors.ts';
import { noEngineEvents, type EngineEvents } from '../core/engine-events.ts';
import type { Logger } from '../core/log.ts';
import type { Sink } from '../sinks/contract.ts';
import { EngineEventBus } from '../observability/event-bus.ts';
import { StatusTracker, type EngineStatus } from '../observability/status-tracker.ts';
import { Backoff, type BackoffSettings } from './backoff.ts';
import { Capture } from './engine.ts';
import { SlotOwnership } from './slot-ownership.ts';

/** What the supervisor needs of a capture (Capture implements it). */
export interface SupervisedCapture {
  /** Settles when the capture ends: resolved on a clean stop or completion, rejected (CdcError) on a fault. */
  readonly stopped: Promise<void>;
  /** A clean stop: deliver what committed, store and confirm the checkpoint. */
  stop(): Promise<void>;
}

export interface RetrySettings extends BackoffSettings {
  /** Faults for this long (ms) without a healthy stretch: give up. 0: never retry. */
  readonly giveUpAfterMs: number;
  /** Streaming this long (ms) without a fault ends the outage. */
  readonly resetAfterMs: number;
}

/**
 * - starting: the first start-up is running.
 * - running: a capture is up (streaming, or taking its initial snapshot).
 * - retrying: a fault was retried: waiting out the backoff, or running the next start-up.
 * - stopping: a stop was asked for. stopped: it finished (or the capture completed). failed: gave up.
 */
export type SupervisorState = 'starting' | 'running' | 'retrying' | 'stopping' | 'stopped' | 'failed';

/**
 * The supervisor's own state (the engine's, over every attempt, is `EngineStatus`: see
 * `superviseCapture`).
 */
export interface SupervisorStatus {
  readonly state: SupervisorState;
  /** Retries since the process started (not reset by a healthy stretch). */
  readonly retries: number;
  /** The last fault retried or given up on. Its message never holds a password or connection string. */
  readonly lastCause: { readonly code: ErrorCode; readonly message: string } | undefined;
  /** The delay before the next attempt while in a backoff, in ms. */
  readonly nextDelayMs: number | undefined;
  /** The running capture has streamed `resetAfterMs` without a fault: the outage, if any, is over. */
  readonly healthy: boolean;
}

export interface SupervisorOptions {
  /** One full start-up; resolves once the capture is up (after its initial snapshot, if any). */
  readonly start: () => Promise<SupervisedCapture>;
  readonly retry: RetrySettings;
  /** The bound of a stop, in ms, whatever the state. */
  readonly stopTimeoutMs: number;
  readonly log: Logger;
  /**
   * Hears `fault` (a start-up that failed; a running capture reports its own), `retry-scheduled`
   * and the `retrying` state (core/engine-events.ts). The captures that `start` makes should emit
   * to the same place, so one listener sees every attempt.
   */
  readonly events?: EngineEvents | undefined;
  /** For tests: the random source of the jitter and the clock. */
  readonly random?: () => number;
  readonly now?: () => number;
}

export class Supervisor {
  /**
   * Settles when supervision ends: resolved after a stop or a completed capture, rejected with the
   * cause that ended it.
   */
  readonly done: Promise<void>;
  private readonly options: SupervisorOptions;
  private readonly backoff: Backoff;
  private readonly now: () => number;
  private readonly events: EngineEvents;
  private state: SupervisorState = 'starting';
  private retries = 0;
  private lastCause: CdcError | undefined;
  private nextDelayMs: number | undefined;
  private healthy = false;
  private current: SupervisedCapture | undefined;
  private stopRequested = false;
  private wakeFromBackoff: (() => void) | undefined;

  constructor(options: SupervisorOptions) {
    this.options = options;
    this.backoff = new Backoff(options.retry, options.random);
    this.now = options.now ?? Date.now;
    this.events = options.events ?? noEngineEvents;
    this.done = this.supervise();
    // Observed by whoever awaits it; avoid an unhandled rejection before anyone does.
    this.done.catch(() => undefined);
  }

  get status(): SupervisorStatus {
    return {
      state: this.state,
      retries: this.retries,
      lastCause: this.lastCause && { code: this.lastCause.code, message: this.lastCause.message },
      nextDelayMs: this.nextDelayMs,
      healthy: this.healthy,
    };
  }

  /**
   * Stops within `stopTimeoutMs`: true when supervision ended cleanly in time (a capture that was
   * up stopped and confirmed what it delivered), false when the bound passed first.
   */
  async stop(): Promise<boolean> {
    if (!this.stopRequested) {
      this.stopRequested = true;
      if (this.state !== 'stopped' && this.state !== 'failed') this.setState('stopping');
      this.wakeFromBackoff?.();
      if (this.current) void this.current.stop().catch(() => undefined);
    }
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<false>((resolve) => {
      // Not unref'd: a stalled sink may hold no handle, and the bound must still fire.
      timer = setTimeout(() => resolve(false), this.options.stopTimeoutMs);
    });
    const ended = this.done.then(
      () => true,
      () => true,
    );
    try {
      return await Promise.race([ended, timedOut]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async supervise(): Promise<void> {
    let outageStart: number | undefined;
    try {
      for (;;) {
        const ended = await this.attempt(() => (outageStart = undefined));
        if (ended === undefined) break;
        const { fault, whileUp } = ended;
        if (!whileUp) this.events.emit({ type: 'fault', code: fault.code, message: fault.message });
        // Stopping: a start-up that failed had nothing up to stop; a capture that was up and failed
        // its stop did not confirm everything, which the exit code says.
        if (this.stopRequested && !whileUp && fault.retryable) break;
        if (this.stopRequested || !fault.retryable) {
          this.lastCause = fault;
          throw fault;
        }
        outageStart ??= this.now();
        const elapsed = this.now() - outageStart;
        const { giveUpAfterMs } = this.options.retry;
        if (elapsed >= giveUpAfterMs) {
          this.lastCause = fault;
          if (giveUpAfterMs > 0) {
            this.options.log.error(
              { code: fault.code, cause: fault.message, outageRetries: this.backoff.attempts, outageMs: elapsed },
              `giving up: faults for ${Math.round(elapsed / 1000)} s without recovering (retry.giveUpAfterMs)`,
            );
          }
          throw fault;
        }
        // The last attempt comes at the give-up time, not after it.
        const delay = Math.min(this.backoff.next(), giveUpAfterMs - elapsed);
        this.retries++;
        this.lastCause = fault;
        this.nextDelayMs = delay;
        this.options.log.warn(
          { code: fault.code, retry: this.retries, delayMs: delay },
          `${fault.code}: ${fault.message}; starting the capture again in ${formatDelay(delay)}`,
        );
        this.setState('retrying');
        this.events.emit({ type: 'state', state: 'retrying' });
        this.events.emit({ type: 'retry-scheduled', attempt: this.retries, delayMs: delay, cause: fault.code });
        await this.sleep(delay);
        this.nextDelayMs = undefined;
        if (this.stopRequested) break;
      }
      this.setState('stopped');
    } catch (error) {
      this.setState('failed');
      throw toCdcError(error);
    }
  }

  /**
   * One start-up and the run of the capture it made. Undefined when it ended cleanly (stopped, or
   * completed by itself), else the fault and whether a capture was up. `onHealthy` runs once the
   * capture streamed `resetAfterMs`.
   */
  private async attempt(onHealthy: () => void): Promise<{ fault: CdcError; whileUp: boolean } | undefined> {
    if (this.stopRequested) return undefined;
    let capture: SupervisedCapture;
    try {
      capture = await this.options.start();
    } catch (error) {
      return { fault: toCdcError(error), whileUp: false };
    }
    this.current = capture;
    // A stop asked for during the start-up: stop the capture it made.
    if (this.stopRequested) void capture.stop().catch(() => undefined);
    else this.setState('running');
    const healthy = setTimeout(() => {
      this.backoff.reset();
      onHealthy();
      this.healthy = true;
    }, this.options.retry.resetAfterMs);
    healthy.unref();
    try {
      await capture.stopped;
      return undefined;
    } catch (error) {
      return { fault: toCdcError(error), whileUp: true };
    } finally {
      clearTimeout(healthy);
      this.healthy = false;
      this.current = undefined;
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wakeFromBackoff = done;
    }).finally(() => (this.wakeFromBackoff = undefined));
  }

  private setState(state: SupervisorState): void {
    this.state = state;
  }
}

function formatDelay(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

/** A supervised capture: the supervisor, and the engine's status over every attempt. */
export interface SupervisedCaptureRun {
  readonly supervisor: Supervisor;
  /** Folded from the events of every attempt (delivered counts add up across restarts). */
  status(): EngineStatus;
}

/**
 * The library entry point of a capture that keeps running: Capture.start under a Supervisor, with
 * a fresh sink from `makeSink` for every attempt (a sink is opened once). `events` (optional) hears
 * every engine event of every attempt and of the supervisor.
 */
export function superviseCapture(
  config: Config,
  makeSink: () => Sink,
  log: Logger,
  events?: EngineEvents,
): SupervisedCaptureRun {
  const bus = new EngineEventBus();
  const tracker = new StatusTracker();
  bus.subscribe((event) => tracker.emit(event));
  if (events) bus.subscribe((event) => events.emit(event));
  const warnings = new StartupWarnings();
  const ownership = new SlotOwnership();
  const supervisor = new Supervisor({
    start: async () => {
      const attempt = warnings.logger(log);
      try {
        return await Capture.start(config, makeSink(), attempt.log, bus, ownership);
      } finally {
        attempt.started();
      }
    },
    retry: config.retry,
    stopTimeoutMs: config.shutdown.timeoutMs,
    log,
    events: bus,
  });
  return { supervisor, status: () => tracker.status() };
}

/**
 * A restart runs the same start-up checks again, and their warnings (an unencrypted connection, a
 * replica identity) would repeat at every retry of a long outage. While a start-up runs, a warning
 * an earlier start-up already gave goes to debug level instead; once the capture is up, its
 * warnings are logged as they come.
 */
export class StartupWarnings {
  private readonly given = new Set<string>();

  /** The logger for one attempt; call `started` once its start-up ended (up or failed). */
  logger(log: Logger): { log: Logger; started: () => void } {
    let startingUp = true;
    const child = log.child({});
    const warn: (...args: unknown[]) => void = child.warn.bind(child);
    const debug: (...args: unknown[]) => void = child.debug.bind(child);
    const given = this.given;
    child.warn = (...args: unknown[]): void => {
      const message = typeof args[0] === 'string' ? args[0] : args[1];
      if (startingUp && typeof message === 'string') {
        if (given.has(message)) return debug(...args);
        given.add(message);
      }
      warn(...args);
    };
    return { log: child, started: () => (startingUp = false) };
  }
}
