/**
 * The sink contract. A sink receives serialized change events and makes them durable.
 *
 * Delivery is at-least-once; events carry a stable `id` (EventBatch.id) so a consumer can
 * deduplicate, and per-topic order is the order of `write` calls and of events within a batch.
 * A sink that can do better says so on its class (the JSONL sink is exactly-once: it truncates to
 * the checkpointed position on open).
 *
 * Every kind must pass the conformance suite (test/harness/sink-conformance.ts), which checks each
 * rule below; a kind joins the registry (sinks/registry.ts) with a folder of its own.
 */

import type { EventBatch } from './batch.ts';

export type { EventBatch };

/**
 * Sink-specific resume state, stored inside the checkpoint. Plain JSON (it is written to the
 * offsets file as is): `{ files: { [topic]: bytes } }` for JSONL, `{}` for stdout.
 */
export type SinkPosition = { readonly [key: string]: unknown };

/**
 * Checkpoints a sink stores itself, next to its events (Kafka: a compacted topic). With a sink that
 * has them, every checkpoint goes through `store`; pgcdc's offsets file, when one is kept, follows.
 *
 * - Atomic with the events: a sink whose writes are transactional (Kafka exactly-once) commits the
 *   events written since the previous `store` together with the checkpoint, in one step: both or
 *   neither are visible. Its `write` resolves once the events are durable but still uncommitted;
 *   they become visible to readers (read_committed) when the next `store` resolves. A crash before
 *   that discards them, and the capture writes them again from the stored checkpoint.
 * - At-least-once sinks store the checkpoint after the events it covers are durable.
 * - `store` resolves when the checkpoint is durable and readable by `load` from another process.
 *   A failure rejects with a CdcError and nothing of the open transaction becomes visible.
 */
export interface SinkCheckpoints {
  /** Where they are kept, for messages: `Kafka topic shop.pgcdc-offsets`. */
  readonly where: string;
  /** The text of the last checkpoint stored for this capture (its slot), or undefined for none. */
  load(): Promise<string | undefined>;
  /** Stores `text` (a serialized checkpoint, see offsets/file.ts) as the latest. */
  store(text: string): Promise<void>;
}

/**
 * One sink instance serves one capture run: `open` once, any number of `write`s, `close`. A
 * restart (a new process, or an in-process retry) makes a new instance and opens it with the
 * position stored in the checkpoint.
 */
export interface Sink {
  /** Short name for logs and metrics (`jsonl`, `stdout`, ...). */
  readonly kind: string;

  /**
   * Present when the sink stores checkpoints itself (see SinkCheckpoints); the engine then stores
   * every checkpoint through it. Usable before `open` for `load` only.
   */
  readonly checkpoints?: SinkCheckpoints;

  /**
   * Optional: called before the capture uses its slot (before `open`), with the topics the selected
   * tables write to. A sink whose destinations must exist checks them here (and creates them when
   * configured to), so a missing one stops pgcdc before anything is consumed. Topics not named here
   * (tables added later, other event streams) are checked on their first write.
   */
  prepareTopics?(topics: readonly string[]): Promise<void>;

  /**
   * True when the sink keeps no reference to a batch's bytes once its `write` resolved, so the
   * caller may reuse them for a later batch (the initial snapshot does: EventBatchBuilder.recycle).
   * Absent: the sink (or a handler it calls) may hold on to them.
   */
  readonly releasesBatches?: boolean;

  /**
   * Optional: the local file a topic's events are appended to, one event line each, for a sink
   * whose output pgcdc can read back (JSONL). A lost-slot recovery with `onLostDeletes: emit` reads
   * the keys it holds from it, up to the durable length a stored position names.
   */
  eventFile?(topic: string): string;

  /**
   * Prepares the sink. `resume` is the position stored with the last checkpoint, or undefined when
   * pgcdc has never committed a checkpoint. Must be called once, first.
   *
   * - Exactly-once kinds restore exactly the state that `resume` describes: whatever was written
   *   after it (a later batch, a torn partial event left by a crash) is removed, so the events the
   *   capture sends again from the checkpoint appear once. Without `resume` they refuse a
   *   destination that already holds events (CONFIG_INVALID): they cannot tell what was delivered.
   *   A destination that holds less than `resume` says is refused (SINK_FAILED): data was lost
   *   behind pgcdc's back.
   * - At-least-once kinds accept any `resume`; events after it are delivered again.
   */
  open(resume: SinkPosition | undefined): Promise<void>;

  /**
   * Appends a batch.
   *
   * - Order: writes may be issued before earlier ones resolved; they take effect in call order,
   *   and events of a batch in batch order. Promises resolve in call order.
   * - Durable before resolve: it resolves only when every event of this batch, and of every
   *   earlier batch, is durable: readable by an independent reader (another process opening the
   *   file, the program reading the pipe) and kept if the pgcdc process is killed right after.
   * - Position: the resolved position is what the checkpoint must store so that `open` can restore
   *   exactly this state. An empty batch resolves the current position.
   * - A failure is never acknowledged: it rejects with a CdcError (SINK_FAILED, or LOCAL_IO for a
   *   local disk; `retryable` says whether the same write may succeed later) if anything may not
   *   be durable, and the caller must then not store a checkpoint for this batch. No later
   *   position covers the failed batch: writes issued before the rejection (queued behind it)
   *   reject too, since they were issued expecting it to land. A write issued after the rejection
   *   either continues from the last resolved position (the failed batch left nothing a later
   *   position covers) or is refused because the sink cannot promise durability any more (the
   *   caller restarts from the checkpoint).
   */
  write(batch: EventBatch): Promise<SinkPosition>;

  /**
   * Releases resources. Idempotent. Waits until every write issued before it has settled (each
   * resolves, durable, or rejects); writes issued after it reject (INTERNAL). Does not make
   * anything durable that `write` did not acknowledge, and does not end a stream it does not own
   * (process.stdout).
   */
  close(): Promise<void>;
}
