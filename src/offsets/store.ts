/**
 * The offset store contract: where pgcdc remembers how far the sink is durable.
 */
import type { SinkPosition } from '../sinks/contract.ts';

/**
 * Where a table's backfill stands, as plain JSON for the checkpoint. `after` is the key (server
 * text per key column) of the last row delivered; `nextPage` the first heap page not yet read.
 * `done` once the table has been read to its end.
 */
export type ChunkCursor =
  | { readonly kind: 'key'; readonly after: readonly string[] | null; readonly done: boolean }
  | { readonly kind: 'ctid'; readonly nextPage: number; readonly done: boolean };

/** One table of a snapshot and where its read stands. Plain JSON. */
export interface SnapshotTableState {
  readonly schema: string;
  readonly table: string;
  /** After the last chunk whose events are durable (with this checkpoint); `done` once read to the end. */
  readonly cursor: ChunkCursor;
  /** Rows read so far, counted before a window drops any: the ordinal of the next row's event id. */
  readonly read: number;
  /** Rows delivered as read events. */
  readonly emitted: number;
  /** Removed by a stop-snapshot signal before it was done. */
  readonly stopped?: boolean;
  /**
   * A keyless table continuing an interrupted initial snapshot online: the exported snapshot
   * (txid_current_snapshot text). Only row versions it sees are read; later rows come from the
   * stream (snapshot/visibility.ts).
   */
  readonly asOf?: string;
  /**
   * Read by a lost-slot recovery (lifecycle/lost-slot.ts): its events carry `source.snapshot`
   * "recovery". With `horizon` (a 64-bit xid, decimal), only rows whose xmin is at or after it are
   * read: every older row version was written by a transaction delivered before the gap.
   */
  readonly recovery?: { readonly horizon?: string };
}

/**
 * An online (incremental, watermarked) snapshot in progress or finished. Stored with every
 * checkpoint so that a restart continues after the last durable chunk.
 */
export interface IncrementalSnapshotState {
  /** Names this snapshot and starts its events' ids: `<lsn>:i<seq>`. */
  readonly id: string;
  /** Incremented per snapshot started; part of the next id. */
  readonly seq: number;
  /** In reading order; a table's index here is part of its events' ids, so entries are never removed. */
  readonly tables: readonly SnapshotTableState[];
  /** Ids of `pgcdc snapshot` requests already taken (the most recent ones), so none is taken twice. */
  readonly requests: readonly string[];
}

/**
 * The last transaction delivered before a checkpoint: which commit the stream must show again at
 * the same place when it replays up to the checkpoint (pipeline/history-check.ts). A restored or
 * rewound server that wrote a different history past that point is caught this way.
 */
export interface CommitIdentity {
  /** The commit record's LSN (pgoutput's commit_lsn, a Begin's final_lsn). */
  readonly commitLsn: string;
  /** The commit's end LSN. */
  readonly endLsn: string;
  readonly xid: number;
}

/** The checkpoint format written today (offsets/file.ts reads version 1 once, see there). */
export const CHECKPOINT_VERSION = 2;

export interface Checkpoint {
  readonly version: typeof CHECKPOINT_VERSION;
  /** IDENTIFY_SYSTEM's system identifier (a decimal string: it does not fit a double). */
  readonly systemId: string;
  readonly timeline: number;
  readonly database: string;
  readonly slot: string;
  readonly publication: string;
  /**
   * Commit end LSN ("X/Y") of the last transaction whose events are all durable in the sink.
   * Streaming resumes after it; it is the highest LSN ever confirmed to PostgreSQL.
   */
  readonly lsn: string;
  /**
   * The last transaction delivered at or before `lsn` (when `lsn` was moved over idle WAL, the one
   * before it). Absent when none was delivered since this format was introduced.
   */
  readonly lastCommit?: CommitIdentity;
  /** The sink's own resume state at exactly that point. */
  readonly sink: SinkPosition;
  /** ISO time of the commit, for humans. */
  readonly updatedAt: string;
  /**
   * The initial snapshot: `running` from the slot's creation until every table was read, then
   * `done`. `tables` holds each table's progress after its last durable chunk: a crash in between
   * continues from there (online, with watermarks) instead of starting over. `only`: taken by
   * snapshot mode initial_only (no slot, no stream). Absent when none was taken. `asOf`: the
   * exported snapshot (txid_current_snapshot text), `start`: the sink's position before the
   * snapshot's first event (a snapshot taken again starts the output from there).
   */
  readonly snapshot?: {
    readonly state: 'running' | 'done';
    readonly tables?: readonly SnapshotTableState[];
    readonly only?: boolean;
    readonly asOf?: string;
    readonly start?: SinkPosition;
  };
  /** The incremental snapshot, when one was ever requested. */
  readonly incremental?: IncrementalSnapshotState;
  /** Shapes of the captured tables by relation id, for schema-change events (pipeline/schema-changes.ts). */
  readonly schemas?: Readonly<Record<string, string>>;
  /**
   * The xid horizon (lifecycle/xid-horizon.ts): a 64-bit xid, decimal, such that every transaction
   * with a lower xid ended before `lsn`, so its changes are delivered. A lost-slot recovery on the
   * same cluster re-reads only rows written at or after it. Absent until a sample is covered.
   */
  readonly xidHorizon?: string;
}

export interface OffsetStore {
  /** The stored checkpoint, or undefined when none was ever committed. Throws OFFSETS_CORRUPT on garbage. */
  load(): Promise<Checkpoint | undefined>;

  /**
   * Stores `checkpoint` atomically (a crash leaves the old or the new one, never a mix) and
   * durably (fsynced) before resolving. Monotonic: a checkpoint whose lsn is lower than the stored
   * one is rejected with a CdcError('INTERNAL'), so stored progress never moves back.
   */
  commit(checkpoint: Checkpoint): Promise<void>;

  /**
   * Stores `checkpoint` even if its lsn is lower than the stored one: for a start over that the
   * user asked for (snapshot mode when_needed after the slot was lost), never in normal operation.
   */
  replace(checkpoint: Checkpoint): Promise<void>;

  /** Releases the single-writer lock. */
  close(): Promise<void>;
}

/**
 * What a restart resumes from besides the LSN and the sink position: the initial and incremental
 * snapshots' state and the captured tables' last shapes, stored with the checkpoint. It is stored
 * with the events written before it changed: set it (`setResumeState`) only at a transaction
 * boundary, right before `commit`.
 */
export type ResumeState = Pick<Checkpoint, 'snapshot' | 'incremental' | 'schemas'>;
