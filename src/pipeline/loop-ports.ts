/**
 * What the stream loop (stream-loop.ts) is given: its dependencies, and the two ports through which it talks to
 * PostgreSQL while streaming. `FrameSource` is where frames come from and status updates go to (the replication
 * session, postgres/slot.ts, implements it); `StreamCatalog` answers the catalog questions a Relation message and
 * the start check raise (`postgresCatalog` asks the server). Tests implement both to feed recorded frames.
 */
import type { RecoveryDeletes } from '../snapshot/recovery-deletes.ts';
import type pg from 'pg';
import type { Config } from '../config.ts';
import type { CdcError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { Lsn } from '../protocol/messages.ts';
import type { SourceEndpoint } from '../postgres/connect.ts';
import { tablesByOid, type GeneratedColumns, type ServerFacts, type TableRef } from '../postgres/catalog.ts';
import { loadPgTypes } from '../postgres/pg-types.ts';
import { partitionRoot, type PartitionRoot } from '../postgres/partitions.ts';
import type { StartOptions } from '../postgres/slot.ts';
import type { Checkpoint, ResumeState, CommitIdentity, OffsetStore } from '../offsets/store.ts';
import type { Sink } from '../sinks/contract.ts';
import type { PgType } from '../source/values.ts';
import type { ToastStore } from '../source/toast-store.ts';
import type { TopicNaming } from '../envelope/topics.ts';
import type { ResolvedMethod } from '../snapshot/watermarks.ts';
import type { TableName } from '../snapshot/initial-reader.ts';
import type { EngineEvents, StreamPositions } from '../core/engine-events.ts';
import type { TableSelection } from '../selection/table-selection.ts';
import type { Heartbeat } from './heartbeat.ts';
import { checkStreamStart } from './start-check.ts';
import type { HistoryCheck } from './history-check.ts';

/**
 * One running replication stream. Emits 'frame' (one CopyData payload), 'error' and 'end'. While paused it
 * emits no frames, but `sendStatus` still reaches the server.
 */
export interface FrameStream {
  on(event: 'frame', listener: (frame: Buffer) => void): unknown;
  on(event: 'error', listener: (error: CdcError) => void): unknown;
  on(event: 'end', listener: () => void): unknown;
  /** Nothing arrived for a while: send a status update asking for a reply (the receive timeout's probe). */
  on(event: 'keepalive-wanted', listener: () => void): unknown;
  pause(): void;
  resume(): void;
  /** Sends a standby status update (write = `received`, flush = apply = `flush`). */
  sendStatus(received: Lsn, flush: Lsn, replyRequested?: boolean): void;
  /** Ends the stream (CopyDone) and waits, bounded, for the server to finish. */
  stop(): Promise<void>;
}

/** Starts replication streams: the replication session (postgres/slot.ts ReplicationSession). */
export interface FrameSource {
  /** The walsender's backend pid (the start check finds the slot active for it). */
  readonly backendPid: number;
  start(options: StartOptions): FrameStream;
  close(): Promise<void>;
}

/** The catalog questions the stream asks while it runs. */
export interface StreamCatalog {
  /**
   * Reads the slot again once the stream runs (start-check.ts): resolves with the history check to run over the
   * replay, or undefined when the loop stopped first; rejects when the stream starts past the stored offset.
   */
  checkStart(stopped: () => boolean): Promise<{ readonly history: HistoryCheck | undefined } | undefined>;
  /** Every type of pg_type (a Relation names a type not loaded yet). */
  types(): Promise<ReadonlyMap<number, PgType>>;
  /** The table's current facts (its key), or undefined when it is gone. */
  table(relationId: number): Promise<TableRef | undefined>;
  /** The partitioned table a partition's changes are reported under, if it is a partition. */
  partitionRoot(relationId: number): Promise<PartitionRoot | undefined>;
}

export interface LoopDeps {
  config: Config;
  endpoint: SourceEndpoint;
  facts: ServerFacts;
  query: pg.Client;
  session: FrameSource;
  /** Catalog lookups; by default `postgresCatalog` over `query`. */
  catalog?: StreamCatalog | undefined;
  sink: Sink;
  offsets: OffsetStore;
  tables: readonly TableRef[];
  /** The table selection computed at start: changes of other tables are dropped. */
  selection: TableSelection;
  /** The generated columns the publication publishes: incremental snapshots read the same ones. */
  generatedColumns: GeneratedColumns;
  log: Logger;
  identity: { systemId: string; timeline: number; database: string; slot: string; publication: string };
  naming: TopicNaming;
  /** pg_type as loaded at start; reloaded when a Relation names a type it lacks. */
  types: ReadonlyMap<number, PgType>;
  /** Moves the checkpoint over idle WAL every interval (and writes the heartbeat, if configured). */
  heartbeat: Heartbeat;
  /** The TOAST fill store (toast.mode fill), already at the state of the resume point. */
  toastStore: ToastStore | undefined;
  /** Where delivery starts: the stored offset, or the new slot's consistent point. */
  startLsn: Lsn;
  /**
   * The position START_REPLICATION asks for (lifecycle/restart-rule.ts: the slot's own, to replay up to
   * `startLsn`).
   */
  replayFrom: Lsn;
  /** The checkpoint's last delivered commit, checked against the replay (history-check.ts). */
  lastCommit: CommitIdentity | undefined;
  skipBefore: Lsn;
  startPosition: Record<string, unknown>;
  /** Snapshot progress stored with the checkpoint (incremental snapshot requests and cursors). */
  progress: ResumeState;
  /** The incremental snapshot method, or why there is none on this server/config. */
  method: ResolvedMethod | { readonly unavailable: string };
  signalTable: TableName | undefined;
  /** The xid horizon for a checkpoint at an LSN (lifecycle/xid-horizon.ts); none stored when absent. */
  xidHorizon?: ((lsn: Lsn) => string | undefined) | undefined;
  /** onLostDeletes emit: the recovery's delete candidates, loaded from the sink (snapshot/recovery-deletes.ts). */
  recoveryDeletes?: RecoveryDeletes | undefined;
  /** A checkpoint was stored. */
  onStored?: ((checkpoint: Checkpoint, delivered: number) => void) | undefined;
  onFailure: (error: CdcError) => void;
  /** A standby status update went to PostgreSQL with these positions. */
  onStatusSent: ((positions: StreamPositions) => void) | undefined;
  /** Hears each batch written, checkpoint stored and incremental snapshot chunk (Delivery reports them). */
  events?: EngineEvents | undefined;
}

/** The catalog over the query connection: the lookups as the server answers them now. */
export function postgresCatalog(deps: LoopDeps): StreamCatalog {
  const query = deps.query;
  return {
    checkStart: (stopped) => checkStreamStart({ ...deps, session: deps.session }, stopped),
    types: () => loadPgTypes(query),
    table: async (relationId) => (await tablesByOid(query, [relationId])).get(relationId),
    partitionRoot: (relationId) => partitionRoot(query, relationId),
  };
}
