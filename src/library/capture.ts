/**
 * `capture(options)`: pgcdc's engine inside the caller's process, with the caller's async handler
 * as the sink (docs/library.md). The run is built as `pgcdc run` builds it (run.ts: the same
 * configuration, the supervisor, the offsets file); only the sink differs (handler-sink.ts).
 */
import type { ConfigInput } from '../config.ts';
import { CdcError } from '../core/errors.ts';
import type { EngineEvent } from '../core/engine-events.ts';
import { createLogger, type Logger } from '../core/log.ts';
import type { EventBatch } from '../sinks/batch.ts';
import type { AnyRow, CdcEvent } from './events.ts';
import { HandlerSink, parseBatch, type HandlerErrorAction } from './handler-sink.ts';
import { runConfig, startRun, type RunStatus } from './run.ts';

/**
 * A batch as the engine serialized it, for `raw: true` handlers: every event's JSON line (the
 * same bytes `--sink stdout` prints), nothing parsed. `data` stays valid after the handler returns.
 */
export interface RawBatch {
  readonly count: number;
  /** Every event's line followed by `\n`, in order: NDJSON, ready to write or send as is. */
  readonly data: Buffer;
  /** Event i's line is `data.subarray(start(i), end(i) - 1)` (end(i) is past its newline). */
  start(i: number): number;
  end(i: number): number;
  /** Event i's line as a string, without the newline. */
  line(i: number): string;
  /** Event i's id, read from the line's start (no parsing). */
  id(i: number): string;
  /** Event i's topic (`<prefix>.<schema>.<table>`, ...). */
  topic(i: number): string;
}

/** The options every capture takes: pgcdc's configuration (docs/config.md) without `sink`, and the library's own. */
export type CaptureSettings = Omit<ConfigInput, 'sink'> & {
  /** A YAML configuration file (as `pgcdc run --config`); the options above override it. */
  readonly configFile?: string;
  /**
   * A pino logger for the engine's log lines. Default: one on stderr at `log.level` (default
   * `warn` for the library, `info` for the CLI), in `log.format`.
   */
  readonly logger?: Logger;
  /** Hears the engine's events (state changes, faults, retries, checkpoints, snapshot progress). */
  readonly onEngineEvent?: (event: EngineEvent) => void;
  /**
   * After the handler rejected: `retry` (default) starts the capture again from the last
   * checkpoint after a backoff (`retry.*`, giving up after `retry.giveUpAfterMs`), so the batch
   * is handed over again; `stop` ends the capture (`done` rejects). A function decides per error.
   */
  readonly onHandlerError?: HandlerErrorAction | ((error: unknown) => HandlerErrorAction);
};

/** A capture whose handler receives parsed events (the default). */
export type ParsedCaptureOptions<Row = AnyRow> = CaptureSettings & {
  readonly raw?: false;
  /**
   * Receives the events of one batch, in commit order, whole transactions (one too big to buffer,
   * over twice `batch.maxEvents` events or 16 MiB, arrives in consecutive batches). Resolve once
   * they are durable where you keep them: only then is the checkpoint stored and the position
   * acknowledged to PostgreSQL. Called once at a time, never concurrently.
   */
  readonly handler: (events: readonly CdcEvent<Row>[]) => Promise<void>;
};

/** A capture whose handler receives the JSON lines, unparsed. */
export type RawCaptureOptions = CaptureSettings & {
  readonly raw: true;
  /** As the parsed handler, with the batch's bytes instead of parsed events. */
  readonly handler: (batch: RawBatch) => Promise<void>;
};

export type CaptureOptions<Row = AnyRow> = ParsedCaptureOptions<Row> | RawCaptureOptions;

/** A running capture. */
export interface CaptureHandle {
  /**
   * Settles when the capture ends: resolved after `stop()` (or when `snapshot.mode: initial_only`
   * completed), rejected with a `CdcError` when it failed: bad configuration, a refusal to resume,
   * a fault the error policy does not retry, the handler's rejection with `onHandlerError: 'stop'`,
   * or retries that gave up.
   */
  readonly done: Promise<void>;
  /**
   * A clean stop: the batch in the handler settles, the checkpoint of what the handler accepted is
   * stored (the offsets file) and confirmed to PostgreSQL. Resolves true once stopped within
   * `shutdown.timeoutMs` (default 30 s), false when that bound passed first (a handler that does
   * not settle): nothing more was confirmed, and the next capture resumes from the checkpoint.
   */
  stop(): Promise<boolean>;
  /** The engine's status over every in-process restart (state, LSNs, events delivered, retries, last fault). */
  status(): RunStatus;
}

/** The library's defaults where the CLI's would not suit a program embedding pgcdc. */
const LIBRARY_DEFAULTS: ConfigInput = {
  log: { level: 'warn' },
  // No progress bars on the embedding program's terminal unless asked for.
  snapshot: { progress: 'off' },
};

/**
 * Starts capturing with `options.handler` as the sink. Returns at once; a start-up that fails
 * (bad options, an unreachable server, a refusal to resume) rejects `done`.
 */
export function capture<Row = AnyRow>(options: ParsedCaptureOptions<Row>): CaptureHandle;
export function capture(options: RawCaptureOptions): CaptureHandle;
export function capture<Row = AnyRow>(options: CaptureOptions<Row>): CaptureHandle {
  let run: ReturnType<typeof startRun> | undefined;
  let stopRequested = false;
  const started = begin(options).then((handle) => {
    run = handle;
    if (stopRequested) void handle.stop();
    return handle;
  });
  const done = started.then((handle) => handle.done);
  // Observed by whoever awaits it; this keeps an unobserved failure from being an unhandled rejection.
  done.catch(() => undefined);
  return {
    done,
    stop: async () => {
      stopRequested = true;
      const handle = await started.catch(() => undefined);
      return handle === undefined ? true : handle.stop();
    },
    status: () => run?.status() ?? STARTING,
  };
}

const STARTING: RunStatus = {
  state: 'starting',
  startedAt: new Date(0).toISOString(),
  lastEventAt: undefined,
  ackedLsn: undefined,
  receivedLsn: undefined,
  checkpointLsn: undefined,
  eventsDelivered: 0,
  retries: 0,
  nextRetryDelayMs: undefined,
  lastFault: undefined,
  snapshot: [],
  supervisor: { state: 'starting', retries: 0, lastCause: undefined, nextDelayMs: undefined, healthy: false },
};

async function begin<Row>(options: CaptureOptions<Row>): Promise<ReturnType<typeof startRun>> {
  const { configFile, logger, onEngineEvent, onHandlerError, raw, handler, ...settings } = options;
  if (typeof handler !== 'function')
    throw new CdcError('CONFIG_INVALID', 'capture: handler must be an async function', {
      hint: 'pass capture({ ..., handler: async (events) => { ... } })',
    });
  const layer: ConfigInput = { ...settings };
  if ('sink' in layer)
    throw new CdcError('CONFIG_INVALID', 'capture: sink is not an option of the library (the handler is the sink)', {
      hint: 'remove sink; to write to a pgcdc sink kind, run the CLI',
    });
  const config = await runConfig({ defaults: LIBRARY_DEFAULTS, file: configFile, layer, origin: 'capture options' });
  if (raw !== true && config.envelope.format !== 'json') {
    throw new CdcError(
      'CONFIG_INVALID',
      `capture: envelope.format ${config.envelope.format} has no typed events (they describe the json envelope)`,
      { hint: 'pass raw: true to receive the lines as they are, or leave envelope.format at json' },
    );
  }
  const log = logger ?? createLogger(config.log);
  const decide =
    typeof onHandlerError === 'function' ? onHandlerError : (): HandlerErrorAction => onHandlerError ?? 'retry';
  const deliver = deliveryOf(options);
  const events = onEngineEvent === undefined ? undefined : { emit: safely(onEngineEvent) };
  return startRun(config, () => new HandlerSink(deliver, decide), log, events);
}

/** What the sink calls per batch: the raw handler with the batch, or the parsed one with its events. */
function deliveryOf<Row>(options: CaptureOptions<Row>): (batch: EventBatch) => Promise<void> {
  if (options.raw === true) {
    const handler = options.handler;
    return (batch) => handler(batch);
  }
  const handler = options.handler;
  // parseBatch yields the lines as written; CdcEvent<Row> is the caller's promise about them (events.ts).
  return (batch) => handler(parseBatch(batch) as CdcEvent<Row>[]);
}

/** An engine-event listener that throws must not reach the engine (EngineEvents.emit never throws). */
function safely(listener: (event: EngineEvent) => void): (event: EngineEvent) => void {
  return (event) => {
    try {
      listener(event);
    } catch {
      // The listener's failure is the listener's business (core/engine-events.ts).
    }
  };
}
