/**
 * The port events are written to: the assembler (pipeline/assembler.ts) and the incremental
 * snapshot windows (snapshot/window-tracker.ts) write through it; pipeline/delivery.ts implements it.
 * It lives here, below both, so neither imports the other.
 */
import type { Lsn } from '../protocol/messages.ts';
import type { EventBatchBuilder, TopicRegistry } from '../sinks/batch.ts';

/** Where assembled events go. Calls are synchronous; durability is the implementer's business. */
export interface ChangeSink {
  /** Numbers topics. */
  readonly topics: TopicRegistry;
  /** Appends a whole event line (for rare events built as strings, such as messages). */
  event(topic: number, line: string): void;
  /** Where an event is written: `writer.startEvent()`, the serializer's writes, then `eventEnd`. */
  readonly writer: EventBatchBuilder;
  /** Ends the event being written (of the open transaction) under `topic`, with its EventFlag bits. */
  eventEnd(topic: number, flags?: number): void;
  /**
   * The open transaction committed; every event of it has been passed to `event`. `commitLsn` and
   * `xid` identify a decoded transaction (Checkpoint.lastCommit); absent for other boundaries.
   */
  commit(endLsn: Lsn, commitLsn?: Lsn, xid?: number): void;
}
