/**
 * The sink contract. A sink receives serialized change events and makes them durable.
 *
 * Delivery is at-least-once; events carry a stable `id` (EventBatch.id) so a consumer can
 * deduplicate, and per-topic order is the order of `write` calls and of events within a batch.
 * A sink that can do better says so on its class (the JSONL sink is exactly-once: it truncates to
 * the checkpointed position on open).
 */

import type { EventBatch } from './batch.ts';

export type { EventBatch };

/** Sink-specific resume state, stored inside the checkpoint. Plain JSON. */
export type SinkPosition = { readonly [key: string]: unknown };

export interface Sink {
  /** Short name for logs and metrics (`jsonl`, `stdout`, ...). */
  readonly kind: string;

  /**
   * Prepares the sink. `resume` is the position stored with the last checkpoint, or undefined when
   * pgcdc has never committed a checkpoint. A sink that can restore exactly-once state does it
   * here (JSONL: truncate every file to its checkpointed length). Must be called once, first.
   */
  open(resume: SinkPosition | undefined): Promise<void>;

  /**
   * Appends a batch. Resolves only when every event of this batch, and of every earlier batch, is
   * durable in the sink; the resolved position is what the checkpoint must store so that `open`
   * can restore exactly this state. Rejects with a CdcError('SINK_FAILED') if anything may not be
   * durable; the caller must then not store a checkpoint for this batch.
   */
  write(batch: EventBatch): Promise<SinkPosition>;

  /** Releases resources; does not imply durability of anything not already acknowledged by write. */
  close(): Promise<void>;
}
