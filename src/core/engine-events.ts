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
    }
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
 * delivery or acknowledgement. Events are emitted at state changes, checkpoints and status updates,
 * never per change event, so the hot path builds no event object.
 */
export interface EngineEvents {
  emit(event: EngineEvent): void;
}

/** Emits nowhere: the default when nobody listens. */
export const noEngineEvents: EngineEvents = { emit: () => undefined };
