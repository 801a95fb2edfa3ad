/**
 * The one way a capture that keeps running is built, shared by `pgcdc run` (cli/run-command.ts)
 * and the library's `capture()` (capture.ts): a validated configuration, a fresh sink for every
 * attempt, the supervisor that restarts the capture after a retried fault (lifecycle/supervisor.ts),
 * and one status over every attempt. What differs stays with the caller: the CLI adds signals, the
 * status line and the exit code; the library makes the sink from the user's handler.
 */
import { mergeLayers, parseConfig, readConfigFile, type Config, type ConfigInput, type FlagNamer } from '../config.ts';
import type { EngineEvents } from '../core/engine-events.ts';
import type { Logger } from '../core/log.ts';
import type { Sink } from '../sinks/contract.ts';
import type { EngineStatus } from '../observability/status-tracker.ts';
import { superviseCapture, type SupervisorStatus } from '../lifecycle/supervisor.ts';

/** The engine's status over every in-process restart, and the supervisor's own. */
export interface RunStatus extends EngineStatus {
  readonly supervisor: SupervisorStatus;
}

/** A running capture. */
export interface RunHandle {
  /**
   * Settles when the run ends: resolved after a clean stop (or when `snapshot.mode: initial_only`
   * completed), rejected with a CdcError when a fault was not retried or retries gave up
   * (`retry.giveUpAfterMs`).
   */
  readonly done: Promise<void>;
  /**
   * A clean stop: what the sink is writing settles, the checkpoint of what it made durable is
   * stored and confirmed to PostgreSQL. Resolves true when the run ended within
   * `shutdown.timeoutMs`, false when that bound passed first (then nothing more was confirmed).
   */
  stop(): Promise<boolean>;
  status(): RunStatus;
}

/**
 * Starts a run. `makeSink` is called once per attempt (a sink is opened once); `events` hears every
 * engine event of every attempt and of the supervisor.
 */
export function startRun(config: Config, makeSink: () => Sink, log: Logger, events?: EngineEvents): RunHandle {
  const run = superviseCapture(config, makeSink, log, events);
  const supervisor = run.supervisor;
  return {
    done: supervisor.done,
    stop: () => supervisor.stop(),
    status: () => ({ ...run.status(), supervisor: supervisor.status }),
  };
}

/** Where a run's configuration comes from (see runConfig). */
export interface RunConfigLayers {
  /** Defaults of the caller's own, under everything else (the library's quieter log level). */
  readonly defaults?: ConfigInput;
  /** The YAML file (`--config`). */
  readonly file?: string | undefined;
  /** What overrides the file: the CLI's flags, the library's options. */
  readonly layer: ConfigInput;
  /** Names the source of a bad value in errors when no file holds it: `flags`, `capture options`. */
  readonly origin: string;
  /** Names the flag behind a bad value (CLI); without it errors name the key path. */
  readonly flagFor?: FlagNamer;
}

/**
 * The configuration of a run from its layers, lowest precedence first: the schema's defaults,
 * `defaults`, the YAML file, then `layer`.
 */
export async function runConfig(layers: RunConfigLayers): Promise<Config> {
  const fromFile = layers.file === undefined ? {} : await readConfigFile(layers.file);
  return parseConfig(
    mergeLayers(layers.defaults ?? {}, fromFile, layers.layer),
    layers.file ?? layers.origin,
    layers.flagFor,
  );
}
