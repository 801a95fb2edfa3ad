/**
 * Everything that watches one `pgcdc run` from outside the capture, started together and stopped
 * together: the HTTP server (`http`), the slot's health monitor with its alerts and run-state file
 * (health/capture-health.ts), and, when the server runs, the Prometheus metrics and the recent-events
 * sample it serves. The run hears one fan-out of engine events (`events`); none of these can hold
 * back delivery (EngineEvents contract), and none of their failures stops the capture.
 */
import type { Config } from '../config.ts';
import type { EngineEvents } from '../core/engine-events.ts';
import type { Logger } from '../core/log.ts';
import type { RunStatus } from '../library/run.ts';
import { EngineEventBus } from '../observability/event-bus.ts';
import { startCaptureHealth, type CaptureHealth } from '../health/capture-health.ts';
import { Metrics } from '../metrics/registry.ts';
import { RecentEvents } from '../metrics/recent-events.ts';
import { startRunServer } from './run-server.ts';
import type { HttpStatusServer } from './http-server.ts';
import type { TableName } from '../selection/patterns.ts';

export interface RunObservers {
  /** Give these to the run (startRun's `events`). */
  readonly events: EngineEvents;
  /** Call once the run exists: the run-state file and the server read its status from then on. */
  watch(status: () => RunStatus): void;
  /** Stops the server, the monitor and the run-state file. Never throws. */
  stop(): Promise<void>;
}

/**
 * Starts the observers of a run configured by `config`, before the run itself: the server listens
 * first, so a port in use or a missing token stops pgcdc (CONFIG_INVALID, exit 2) before the
 * capture uses its slot.
 */
/**
 * Tables a snapshot reads or read without a known total (incremental snapshots report none): the
 * health monitor reads their planner estimates once. Names are "schema.table"; one with a dot in its
 * schema gets no estimate (split at the first dot), which only leaves its ETA unknown.
 */
function unestimatedTables(status: RunStatus | undefined): TableName[] {
  return (status?.snapshot ?? [])
    .filter((t) => t.total === undefined)
    .map((t) => {
      const dot = t.table.indexOf('.');
      return { schema: t.table.slice(0, dot), table: t.table.slice(dot + 1) };
    });
}

export async function startRunObservers(config: Config, log: Logger): Promise<RunObservers> {
  const bus = new EngineEventBus((error) =>
    log.warn({ reason: error instanceof Error ? error.message : String(error) }, 'an engine event listener failed'),
  );
  let status: (() => RunStatus) | undefined;
  // Declared before the server starts: its routes read the monitor once it exists.
  let health: CaptureHealth | undefined;
  let http: HttpStatusServer | undefined;
  let metrics: Metrics | undefined;
  if (config.http !== undefined) {
    metrics = new Metrics();
    const recent = new RecentEvents({ values: config.http.showValues });
    const registry = metrics;
    bus.subscribe((event) => registry.emit(event));
    bus.subscribe((event) => recent.emit(event));
    http = await startRunServer(config, log, () => status?.(), {
      metrics: async () => ({ contentType: registry.contentType, body: await registry.text() }),
      recentEvents: () => recent.list(),
      rowEstimates: () => health?.monitor.latest()?.rowEstimates,
    });
  }
  try {
    // initial_only ends after its snapshot and keeps no slot to watch.
    health =
      config.snapshot.mode === 'initial_only'
        ? undefined
        : await startCaptureHealth(config, log, () => unestimatedTables(status?.()));
  } catch (error) {
    await http?.close();
    throw error;
  }
  if (health !== undefined) {
    const healthEvents = health.events;
    bus.subscribe((event) => healthEvents.emit(event));
    if (metrics !== undefined) health.monitor.subscribe(metrics);
    if (http !== undefined) {
      health.monitor.subscribe(http);
      // `pgcdc status` shows where to look while the capture runs.
      const { host, port } = http.address;
      health.runFile.setHttpAddress(host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`);
    }
  }
  return {
    events: bus,
    watch(read) {
      status = read;
      health?.watch(read);
    },
    async stop() {
      await http?.close().catch(() => undefined);
      await health?.stop();
    },
  };
}
