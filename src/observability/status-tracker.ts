/**
 * The engine's status as one snapshot, folded from its events (core/engine-events.ts): what
 * `Capture.status()` returns and what the CLI's status line, and later a metrics server, read.
 *
 * Counts survive in-process restarts: each capture attempt counts its delivered events from 0,
 * so the tracker adds what earlier attempts delivered when a new attempt starts.
 */
import type { EngineEvent, EngineEvents, EngineState } from '../core/engine-events.ts';

/** How far a snapshot read one table. */
export interface TableSnapshotStatus {
  /** schema.table */
  readonly table: string;
  readonly rows: number;
  /** The planner's estimate; undefined when unknown. */
  readonly total: number | undefined;
  readonly done: boolean;
}

/** A fault, with when it was seen (ISO time). */
export interface FaultStatus {
  readonly code: string;
  readonly message: string;
  readonly at: string;
}

export interface EngineStatus {
  readonly state: EngineState;
  /** When the tracker was created (the engine's start), ISO time. */
  readonly startedAt: string;
  /** When the last event arrived, ISO time; undefined before the first. */
  readonly lastEventAt: string | undefined;
  /** The flush LSN last confirmed to PostgreSQL ("X/Y"); undefined before the first status update. */
  readonly ackedLsn: string | undefined;
  /** The WAL position received so far ("X/Y"); undefined before the first status update. */
  readonly receivedLsn: string | undefined;
  /** The last stored checkpoint's LSN; undefined before the first. */
  readonly checkpointLsn: string | undefined;
  /** Events made durable since the engine started, over every in-process restart. */
  readonly eventsDelivered: number;
  /** In-process restarts scheduled so far. */
  readonly retries: number;
  /** The delay before the pending restart (state `retrying`), else undefined. */
  readonly nextRetryDelayMs: number | undefined;
  readonly lastFault: FaultStatus | undefined;
  /** Per table, in the order the snapshots first reported them. */
  readonly snapshot: readonly TableSnapshotStatus[];
}

export class StatusTracker implements EngineEvents {
  private readonly now: () => number;
  private readonly startedAt: number;
  private state: EngineState = 'starting';
  private lastEventAt: number | undefined;
  private ackedLsn: string | undefined;
  private receivedLsn: string | undefined;
  private checkpointLsn: string | undefined;
  /** Delivered by earlier attempts, and by the current one as last reported. */
  private deliveredBefore = 0;
  private deliveredNow = 0;
  private retries = 0;
  private nextRetryDelayMs: number | undefined;
  private lastFault: FaultStatus | undefined;
  private readonly tables = new Map<string, TableSnapshotStatus>();

  /** `now` is injectable for tests. */
  constructor(now: () => number = Date.now) {
    this.now = now;
    this.startedAt = now();
  }

  emit(event: EngineEvent): void {
    const at = this.now();
    this.lastEventAt = at;
    switch (event.type) {
      case 'state':
        // A new attempt counts from 0 again: keep what the previous one delivered.
        if (event.state === 'starting' && this.state !== 'starting') {
          this.deliveredBefore += this.deliveredNow;
          this.deliveredNow = 0;
        }
        if (event.state !== 'retrying') this.nextRetryDelayMs = undefined;
        this.state = event.state;
        break;
      case 'fault':
        this.lastFault = { code: event.code, message: event.message, at: new Date(at).toISOString() };
        break;
      case 'retry-scheduled':
        this.retries++;
        this.nextRetryDelayMs = event.delayMs;
        this.state = 'retrying';
        break;
      case 'checkpoint-stored':
        this.checkpointLsn = event.lsn;
        this.deliveredNow = Math.max(this.deliveredNow, event.events);
        break;
      case 'snapshot-progress':
        this.tables.set(event.table, {
          table: event.table,
          rows: event.rows,
          total: event.total,
          done: event.done,
        });
        break;
      case 'status-sent':
        this.ackedLsn = event.acked;
        this.receivedLsn = event.received;
        this.deliveredNow = Math.max(this.deliveredNow, event.delivered);
        break;
    }
  }

  status(): EngineStatus {
    return {
      state: this.state,
      startedAt: new Date(this.startedAt).toISOString(),
      lastEventAt: this.lastEventAt === undefined ? undefined : new Date(this.lastEventAt).toISOString(),
      ackedLsn: this.ackedLsn,
      receivedLsn: this.receivedLsn,
      checkpointLsn: this.checkpointLsn,
      eventsDelivered: this.deliveredBefore + this.deliveredNow,
      retries: this.retries,
      nextRetryDelayMs: this.nextRetryDelayMs,
      lastFault: this.lastFault,
      snapshot: [...this.tables.values()],
    };
  }
}
