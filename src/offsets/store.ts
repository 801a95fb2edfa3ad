/**
 * The offset store contract: where pgcdc remembers how far the sink is durable.
 */
import type { SinkPosition } from '../sinks/sink.ts';

export interface Checkpoint {
  readonly version: 1;
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
  /** The sink's own resume state at exactly that point. */
  readonly sink: SinkPosition;
  /** ISO time of the commit, for humans. */
  readonly updatedAt: string;
  /**
   * The initial snapshot: `running` from the slot's creation until every table was read (a crash
   * in between makes the next start take the snapshot again), then `done`. Absent when none was taken.
   */
  readonly snapshot?: { readonly state: 'running' | 'done' };
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

  /** Releases the single-writer lock. */
  close(): Promise<void>;
}
