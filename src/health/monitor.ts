/**
 * The alert monitor of a running capture: every `alerts.intervalMs` it samples the slot
 * (slot-probe.ts) on a regular connection of its own, evaluates the alerts (evaluate.ts), and on
 * each alert's state change logs ONE line (warn for warning, error for critical, info when back to
 * ok) and posts the change to the webhook. Every sample goes to the subscribed HealthListeners
 * (metrics, the dashboard).
 *
 * It is an `EngineEvents` listener: `checkpoint-stored` gives the last durable commit's time
 * (lagSeconds), and sampling begins once the engine reports `snapshotting` or `streaming` (before
 * that the slot may not be created yet). Nothing here can stop the capture: a failing probe closes
 * its connection, logs one warning (and one info line when it works again) and tries again at the
 * next tick; listeners and the webhook cannot throw into it.
 */
import { hostname } from 'node:os';
import type pg from 'pg';
import type { EngineEvent, EngineEvents } from '../core/engine-events.ts';
import type { Logger } from '../core/log.ts';
import type { AlertsConfig } from './alerts-config.ts';
import { changedAlerts, evaluateAlerts } from './evaluate.ts';
import { sampleSlot, WalHistory } from './slot-probe.ts';
import { estimateRows } from '../observability/snapshot-bars.ts';
import type { TableName } from '../selection/patterns.ts';
import type { AlertState, HealthListener, SlotSample } from './types.ts';
import type { AlertWebhook } from './webhook.ts';

export interface HealthMonitorOptions {
  readonly slot: string;
  readonly alerts: AlertsConfig;
  /** Opens a regular (non-replication) connection to the source. */
  readonly connect: () => Promise<pg.Client>;
  readonly log: Logger;
  /** Told of every state change, when configured. */
  readonly webhook?: AlertWebhook | undefined;
  /**
   * Tables snapshotted without a known total: samples also read their planner estimates
   * (pg_class.reltuples, once per table), for a progress ETA. Optional; an empty list reads nothing.
   */
  readonly estimateTables?: (() => readonly TableName[]) | undefined;
}

/** The latest sample and the alerts evaluated on it. */
export interface HealthReading {
  readonly sample: SlotSample;
  readonly alerts: readonly AlertState[];
  /** Estimated rows per "schema.table" of `estimateTables` (planner statistics; absent: unknown). */
  readonly rowEstimates: ReadonlyMap<string, number>;
}

/** The JSON body POSTed to the webhook for one alert's state change (docs/operations.md, "Monitoring"). */
export interface AlertWebhookPayload {
  readonly type: 'pgcdc.alert';
  readonly alert: AlertState['name'];
  readonly level: AlertState['level'];
  readonly previousLevel: AlertState['level'];
  readonly value: number | null;
  readonly threshold: number | null;
  readonly message: string;
  readonly since: string;
  readonly slot: string;
  readonly host: string;
  readonly pid: number;
  readonly sample: SlotSample;
}

export class HealthMonitor implements EngineEvents {
  private readonly options: HealthMonitorOptions;
  private readonly history = new WalHistory();
  private listeners: readonly HealthListener[] = [];
  private changeListeners: readonly (() => void)[] = [];
  private client: pg.Client | undefined;
  private reading: HealthReading | undefined;
  private lastCommitAt: number | undefined;
  private armed = false;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private probeFailing = false;
  private readonly rowEstimates = new Map<string, number>();
  /** Samples taken so far (the run file shows it: a reader sees the monitor is alive). */
  samples = 0;

  constructor(options: HealthMonitorOptions) {
    this.options = options;
  }

  /** Starts the sampling timer (the first sample waits for the engine's `snapshotting` or `streaming`). */
  start(): void {
    this.schedule(0);
  }

  /** EngineEvents: never throws. */
  emit(event: EngineEvent): void {
    if (event.type === 'checkpoint-stored' && event.lastCommitAt !== undefined)
      this.lastCommitAt = Math.max(this.lastCommitAt ?? 0, event.lastCommitAt);
    if (event.type === 'state' && (event.state === 'snapshotting' || event.state === 'streaming') && !this.armed) {
      this.armed = true;
      this.schedule(0);
    }
  }

  /** The last durable commit's time (Unix ms) heard from the engine. */
  lastCommitTime(): number | undefined {
    return this.lastCommitAt;
  }

  /** Adds a listener of every sample; the function returned removes it. */
  subscribe(listener: HealthListener): () => void {
    this.listeners = [...this.listeners, listener];
    return () => (this.listeners = this.listeners.filter((l) => l !== listener));
  }

  /** Called after any alert changed level (the run file writes itself then). */
  onChange(listener: () => void): void {
    this.changeListeners = [...this.changeListeners, listener];
  }

  latest(): HealthReading | undefined {
    return this.reading;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    await this.ticking;
    await this.closeClient();
    await this.options.webhook?.close();
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.ticking !== undefined) return;
      this.ticking = this.tick().finally(() => {
        this.ticking = undefined;
        this.schedule(this.options.alerts.intervalMs);
      });
    }, ms);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    if (!this.armed || this.stopped) return;
    let sample: SlotSample;
    try {
      this.client ??= await this.open();
      sample = await sampleSlot(this.client, this.options.slot, {
        lastCommitAt: this.lastCommitAt,
        history: this.history,
      });
    } catch (error) {
      await this.closeClient();
      if (!this.probeFailing && !this.stopped)
        this.options.log.warn(
          { slot: this.options.slot, reason: error instanceof Error ? error.message : String(error) },
          'health probe failed: the slot cannot be sampled and alerts are not evaluated until it works again ' +
            '(the capture goes on; the probe retries every alerts.intervalMs)',
        );
      this.probeFailing = true;
      return;
    }
    if (this.probeFailing) this.options.log.info({ slot: this.options.slot }, 'health probe works again');
    this.probeFailing = false;
    this.samples++;
    const previous = this.reading?.alerts ?? [];
    const alerts = evaluateAlerts(sample, this.options.alerts, previous);
    this.reading = { sample, alerts, rowEstimates: await this.estimates(this.client) };
    const changed = changedAlerts(previous, alerts);
    for (const alert of changed) this.report(alert, previous.find((p) => p.name === alert.name)?.level ?? 'ok', sample);
    for (const listener of this.listeners) {
      try {
        listener.health(sample, alerts);
      } catch {
        // The HealthListener contract: a listener's failure is its own, never the monitor's.
      }
    }
    if (changed.length > 0)
      for (const listener of this.changeListeners) {
        try {
          listener();
        } catch {
          // as above
        }
      }
  }

  /**
   * The planner's row estimates of the tables being snapshotted. Each table's is read once it is
   * known (> 0: analyzed) and kept for the run: a later sample need not catch the read in progress,
   * and statistics do not move fast enough to matter for an ETA. A failed read is retried next time.
   */
  private async estimates(client: pg.Client | undefined): Promise<ReadonlyMap<string, number>> {
    const tables = (this.options.estimateTables?.() ?? []).filter(
      (t) => !this.rowEstimates.has(`${t.schema}.${t.table}`),
    );
    if (client !== undefined && tables.length > 0) {
      const rows = await estimateRows(client, tables).catch(() => new Map<string, number>());
      for (const [name, n] of rows) if (n > 0) this.rowEstimates.set(name, n);
    }
    return new Map(this.rowEstimates);
  }

  private report(alert: AlertState, previousLevel: AlertState['level'], sample: SlotSample): void {
    // Not `level`: that is the log record's own field.
    const fields = {
      alert: alert.name,
      alertLevel: alert.level,
      previousLevel,
      value: alert.value,
      threshold: alert.threshold,
      slot: sample.slot,
    };
    const line = `alert ${alert.name} ${alert.level}: ${alert.message}`;
    if (alert.level === 'critical') this.options.log.error(fields, line);
    else if (alert.level === 'warning') this.options.log.warn(fields, line);
    else this.options.log.info(fields, line);
    const payload: AlertWebhookPayload = {
      type: 'pgcdc.alert',
      alert: alert.name,
      level: alert.level,
      previousLevel,
      value: alert.value ?? null,
      threshold: alert.threshold ?? null,
      message: alert.message,
      since: alert.since,
      slot: sample.slot,
      host: hostname(),
      pid: process.pid,
      sample,
    };
    this.options.webhook?.notify(payload);
  }

  private async open(): Promise<pg.Client> {
    const client = await this.options.connect();
    // A lost connection emits 'error': without a listener it would end the process.
    client.on('error', () => {
      if (this.client === client) this.client = undefined;
    });
    return client;
  }

  private async closeClient(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }
}
