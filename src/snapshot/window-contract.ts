/**
 * The interfaces around the window tracker (window-tracker.ts): what the ChangeAssembler reports to
 * the snapshot side, where closed windows write, and how the reading side registers a window.
 */
import type { Lsn, TupleData } from '../protocol/messages.ts';
import type { TableSchema } from '../source/relations.ts';
import type { TableSerializer } from '../envelope/json.ts';
import type { CopyRow } from './copy-text.ts';
import type { ChunkCursor } from '../offsets/store.ts';
import type { TableName } from './initial-reader.ts';
import type { Logger } from '../core/log.ts';
import type { ResumeState } from '../offsets/store.ts';
import type { ChangeSink } from '../envelope/change-sink.ts';
import type { RecoveryDeletes } from './recovery-deletes.ts';

/** What the ChangeAssembler reports to the snapshot side. */
export interface ChangeObserver {
  /** False when nothing is watched: the assembler then skips the per-change calls entirely. */
  readonly active: boolean;
  /** A Begin (every transaction, also those skipped after a restart). */
  begin(xid: number, finalLsn: Lsn): void;
  /**
   * An insert, update or delete of a transaction that is delivered. `old` is the old key or row
   * when pgoutput sent one. True: the change is a signal and must not be delivered as an event.
   */
  change(table: TableSchema, old: TupleData | null, row: TupleData | null): boolean;
  truncate(table: TableSchema): void;
  /** A logical message with pgcdc's reserved prefix. */
  message(prefix: string, content: Buffer): void;
  /**
   * The transaction ended. `delivered`: its events are about to be committed to the delivery
   * (called right before `commit`); false for a transaction skipped after a restart.
   */
  committed(endLsn: Lsn, delivered: boolean): void;
  /** The relation's schema changed. */
  relationChanged(relationId: number): void;
}

/** The delivery as the windows use it. */
export interface WindowOutput extends ChangeSink {
  readonly currentResumeState: ResumeState;
  readonly committedLsn: Lsn;
  setResumeState(progress: ResumeState): void;
}

export type WindowOutcome =
  | { readonly kind: 'emitted'; readonly emitted: number; readonly dropped: number }
  | { readonly kind: 'retry'; readonly reason: string; readonly schemaChanged: boolean }
  | { readonly kind: 'cancelled' };

/** One chunk's window, as the reading side registers it. */
export interface WindowSpec {
  readonly id: string;
  readonly tableIndex: number;
  readonly table: TableName;
  /** The backfill's schema of the table: keys of chunk rows, and the shape of the read events. */
  readonly schema: TableSchema;
  readonly serializer: TableSerializer;
  /** read-only: the window opens now; otherwise at its low watermark in the stream. */
  readonly opensAt: 'now' | 'low-watermark';
  /** The read leaves out rows inserted since an older snapshot (visibility.ts): inserts cannot touch the chunk. */
  readonly insertsStreamed?: boolean;
}

export interface ChunkRead {
  readonly rows: CopyRow[];
  readonly next: ChunkCursor;
  /** In-progress xids of the read's snapshot. */
  readonly xip: readonly number[];
  /** read-only: every transaction the read saw committed before this LSN. */
  readonly highLsn?: Lsn;
}

export interface WindowHandle {
  readonly closed: Promise<WindowOutcome>;
  chunkRead(read: ChunkRead): void;
}

export interface WindowTrackerOptions {
  /** `schema.table` of the signal table, when one is configured. */
  readonly signalTable: TableName | undefined;
  /** Names the tables of a request outside the capture's selection (undefined: all captured). */
  readonly uncaptured?: (tables: readonly TableName[]) => { names: string; captured: string } | undefined;
  readonly log: Logger;
  /** Asks the server for a keepalive (a read-only window waits for the stream to pass an LSN). */
  readonly requestKeepalive: () => void;
  /** Incremental snapshots were requested or stopped: there may be new tables to read. */
  readonly onSnapshotsChanged: () => void;
  /** onLostDeletes emit: the recovery's delete candidates (recovery-deletes.ts). */
  readonly recoveryDeletes?: RecoveryDeletes;
}
