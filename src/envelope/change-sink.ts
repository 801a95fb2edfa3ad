/**
 * The port events are written to: the assembler (pipeline/assembler.ts) and the incremental
 * snapshot windows (snapshot/window-tracker.ts) write through it; pipeline/delivery.ts implements it.
 * It lives here, below both, so neither imports the other.
 */
import type { Lsn } from '../protocol/messages.ts';
import type { TopicRegistry } from '../sinks/batch.ts';
import type { EventBatchBuilder } from '../sinks/batch-builder.ts';

/**
 * An event's tally: the counter it is counted under in the batch summaries (metrics). A table's ops are
 * `tallyBase(table) + OP_TALLY[op]`; an event ended without a tally is counted as `other`.
 */
export const OP_TALLY = { c: 0, u: 1, d: 2, r: 3, t: 4 } as const;
export type TalliedOp = keyof typeof OP_TALLY;
/** Tallies per table (room for every OP_TALLY). */
export const TALLIES_PER_TABLE = 8;

/** Where assembled events go. Calls are synchronous; durability is the implementer's business. */
export interface ChangeSink {
  /** Numbers topics. */
  readonly topics: TopicRegistry;
  /** Appends a whole event line (for rare events built as strings, such as messages). */
  event(topic: number, line: string): void;
  /** Where an event is written: `writer.startEvent()`, the serializer's writes, then `eventEnd`. */
  readonly writer: EventBatchBuilder;
  /**
   * Ends the event being written (of the open transaction) under `topic`, with its EventFlag bits and its
   * tally (see OP_TALLY; a number kept per event in a typed array, so counting costs no allocation).
   */
  eventEnd(topic: number, flags?: number, tally?: number): void;
  /**
   * The first tally of `table` ("schema.table"); asked once per table serializer or snapshot chunk,
   * never per event. Absent where nothing is counted (tests).
   */
  tallyBase?(table: string): number;
  /**
   * The open transaction committed; every event of it has been passed to `event`. `commitLsn` and
   * `xid` identify a decoded transaction (Checkpoint.lastCommit), `commitAt` its commit time (Unix ms);
   * absent for other boundaries.
   */
  commit(endLsn: Lsn, commitLsn?: Lsn, xid?: number, commitAt?: number): void;
}
