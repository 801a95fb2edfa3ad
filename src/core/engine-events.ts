/**
 * What the engine tells the outside while it runs: typed events, emitted through `EngineEvents`.
 *
 * Defined here, in core, so that every layer that has something to report (the stream loop, the
 * start-up, the supervisor that retries) may emit without importing the code that listens: the
 * listeners (a fan-out bus, the status tracker behind `status()`, later metrics) live in
 * observability/, which the engine's lower folders never import (ARCHITECTURE.md, "Folder rules").
 */

/** The engine's life cycle, as a status reader sees it. */
export type EngineState = 'starting' | 'snapshotting' | 'streaming' | 'retrying' | 'stopping' | 'stopped';

/**
 * The stream's positions as sent in a standby status update: `acked` is the flush LSN confirmed to
 * PostgreSQL (every change up to it is durable in the sink and in the checkpoint), `received` the
 * WAL position read so far, `delivered` the events made durable since this capture started streaming.
 */
export interface StreamPositions {
  readonly acked: string;
  readonly received: string;
  readonly delivered: number;
}

/**
 * Events of one batch by table and op. `table` is "schema.table"; `op` is the event's op (c, u, d, r, t),
 * or `other` for events that are no table's change (logical messages, transaction BEGIN/END, schema
 * changes), whose `table` is "".
 */
export interface EventCount {
  readonly table: string;
  readonly op: string;
  readonly count: number;
}

/**
 * One of the few events of a batch kept as a sample (the dashboard's recent events): never a value.
 * `key` is the event's key as JSON text (null when it has none); `lsn` the LSN its id starts with (a
 * change's commit LSN, a snapshot read's snapshot point; undefined if the id has none); `commitAt` the
 * commit time (Unix ms) of the batch's last transaction, undefined for a snapshot batch. `line()` reads
 * the event's whole line, for a listener told to show values; callable only while the event is being
 * delivered (listeners are called synchronously).
 */
export interface SampledEvent {
  readonly table: string;
  readonly op: string;
  readonly id: string;
  readonly lsn: string | undefined;
  readonly commitAt: number | undefined;
  readonly key: string;
  line(): string;
}

/**
 * A batch the sink made durable. `writeMs` is the sink write's latency; `durableAt` when it resolved
 * (Unix ms); `firstCommitAt`/`lastCommitAt` the commit times (Unix ms) of the batch's first and last
 * transaction (undefined for snapshot reads and batches without transactions); `counts` its events by
 * table and op (they add up to `events`); `sample` its last few events (at most SAMPLE_SIZE).
 */
export interface BatchWritten {
  readonly type: 'batch-written';
  readonly events: number;
  readonly bytes: number;
  readonly writeMs: number;
  readonly durableAt: number;
  readonly firstCommitAt: number | undefined;
  readonly lastCommitAt: number | undefined;
  readonly counts: readonly EventCount[];
  readonly sample: readonly SampledEvent[];
}

/** Events of a batch kept in `BatchWritten.sample`, at most. */
export const SAMPLE_SIZE = 5;

/** One thing that happened in the engine. `type` tells which. */
export type EngineEvent =
  /** The engine entered `state`. */
  | { readonly type: 'state'; readonly state: EngineState }
  /** A fault was detected (an error code of core/errors.ts and its one-line message). */
  | { readonly type: 'fault'; readonly code: string; readonly message: string }
  /** The capture restarts in-process after `delayMs`; `attempt` counts from 1; `cause` is the fault's code. */
  | { readonly type: 'retry-scheduled'; readonly attempt: number; readonly delayMs: number; readonly cause: string }
  /**
   * A checkpoint was stored at `lsn`; `events` were delivered since this capture started streaming;
   * `lastCommitAt` is the commit time (Unix ms) of the last transaction it covers, when known.
   */
  | {
      readonly type: 'checkpoint-stored';
      readonly lsn: string;
      readonly events: number;
      readonly lastCommitAt?: number | undefined;
      /** How long storing it took (the offset store's commit), in ms; undefined when not measured. */
      readonly durationMs?: number | undefined;
      /**
       * The stored checkpoint still has an incremental snapshot to read (`pgcdc drain` waits for it);
       * undefined when not known (the initial snapshot's checkpoints, which precede streaming).
       */
      readonly snapshotPending?: boolean | undefined;
    }
  /** The sink made a batch durable (one event per batch, never per change event): see BatchWritten. */
  | BatchWritten
  /**
   * A snapshot read `rows` rows of `table` (schema.table) so far; `total` is the planner's estimate
   * (undefined when unknown); `done` once the table was read to its end.
   */
  | {
      readonly type: 'snapshot-progress';
      readonly table: string;
      readonly rows: number;
      readonly total: number | undefined;
      readonly done: boolean;
    }
  /** A standby status update went to PostgreSQL with these positions. */
  | ({ readonly type: 'status-sent' } & StreamPositions);

/**
 * Where the engine emits its events.
 *
 * Contract: `emit` returns at once and never throws (a listener's failure is the listener's
 * business, never the capture's); it is never awaited, so nothing a listener does can hold back
 * delivery or acknowledgement. Events are emitted at state changes, batches, checkpoints and status
 * updates, never per change event, so the hot path builds no event object.
 */
export interface EngineEvents {
  emit(event: EngineEvent): void;
}

/** Emits nowhere: the default when nobody listens. */
export const noEngineEvents: EngineEvents = { emit: () => undefined };
