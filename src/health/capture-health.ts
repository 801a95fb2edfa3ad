/**
 * The health side of `pgcdc run`: the alert monitor (monitor.ts) on a connection of its own, the
 * optional webhook, and the run-state file (run-file.ts), started together and stopped together.
 * The CLI passes `events` to the run (it hears the engine's events) and `watch`es the run's status.
 */
import type { Config } from '../config.ts';
import type { EngineEvent, EngineEvents } from '../core/engine-events.ts';
import type { Logger } from '../core/log.ts';
import { openConnection, resolveEndpoint } from '../postgres/connect.ts';
import { sideFilesBase } from '../offsets/open.ts';
import { HealthMonitor } from './monitor.ts';
import type { TableName } from '../selection/patterns.ts';
import { RunFileWriter, runFilePath, type RunStatusView } from './run-file.ts';
import { AlertWebhook, webhookToken } from './webhook.ts';

export interface CaptureHealth {
  /** Give these to the run: the monitor and the run file hear the engine's events. */
  readonly events: EngineEvents;
  readonly monitor: HealthMonitor;
  readonly runFile: RunFileWriter;
  /** Starts the run file (in the background), reading the run's status from `status`. */
  watch(status: () => RunStatusView): void;
  /** Stops sampling, writes the run file's last state. Never throws. */
  stop(): Promise<void>;
}

/**
 * Builds the monitor and run file of a capture configured by `config`. Throws CONFIG_INVALID when
 * the webhook's token cannot be read (before anything starts).
 */
export async function startCaptureHealth(
  config: Config,
  log: Logger,
  estimateTables?: () => readonly TableName[],
): Promise<CaptureHealth> {
  const webhookConfig = config.alerts.webhook;
  const webhook =
    webhookConfig === undefined
      ? undefined
      : new AlertWebhook(webhookConfig, await webhookToken(webhookConfig), log.child({ component: 'health' }));
  const endpoint = resolveEndpoint(config.source);
  const monitor = new HealthMonitor({
    slot: config.slot,
    alerts: config.alerts,
    connect: () => openConnection(endpoint, 'query', 'pgcdc health'),
    log: log.child({ component: 'health' }),
    webhook,
    estimateTables,
  });
  let status: (() => RunStatusView) | undefined;
  const path = runFilePath(sideFilesBase(config.offsets, config.slot, config.sink.kind));
  let runFileFailed = false;
  const runFile = new RunFileWriter(
    path,
    config.slot,
    () =>
      status?.() ?? {
        state: 'starting',
        startedAt: new Date().toISOString(),
        eventsDelivered: 0,
        checkpointLsn: undefined,
        snapshot: [],
      },
    () => ({ lastCommitAt: monitor.lastCommitTime(), samples: monitor.samples, reading: monitor.latest() }),
    (error) => {
      if (runFileFailed) return;
      runFileFailed = true;
      log.warn(
        { file: path, reason: error instanceof Error ? error.message : String(error) },
        'cannot write the run-state file: pgcdc status will not see this run (the capture goes on)',
      );
    },
  );
  monitor.onChange(() => runFile.changed());
  monitor.start();
  const events: EngineEvents = {
    emit(event: EngineEvent): void {
      monitor.emit(event);
      if (event.type === 'state') runFile.changed();
    },
  };
  return {
    events,
    monitor,
    runFile,
    watch(read) {
      status = read;
      void runFile.start();
    },
    async stop() {
      await monitor.stop().catch(() => undefined);
      await runFile.stop().catch(() => undefined);
    },
  };
}
