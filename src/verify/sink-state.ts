/**
 * What a sink holds for one table after its events were replayed (sink-reader.ts): the row hash
 * (hash.ts) of every key, or for a keyless table the multiset of row hashes. Only hashes are kept,
 * never values: about 70 bytes a row (a 10M-row table: ~700 MB of heap), in 16 maps so that no map
 * reaches V8's limit of 2^24 entries.
 *
 * Keys are the key object's bytes as latin1 text (`{"id":42}`), the same bytes on both sides; `shown`
 * turns one back into its UTF-8 text for the report.
 */
import { hashBytes } from './hash.ts';

const SHARDS = 16;

/** A key's shard: the low bits of a cheap hash of its text (computed on the source side the same way). */
function shardOf(key: string): number {
  let h = 0;
  for (let i = key.length - 1, n = 0; i >= 0 && n < 8; i--, n++) h = (h * 31 + key.charCodeAt(i)) | 0;
  return h & (SHARDS - 1);
}

/** The key as the user reads it (UTF-8), from its latin1 map text. */
export function shownKey(key: string): string {
  return Buffer.from(key, 'latin1').toString('utf8');
}

/** Replayed state of a table with a key (primary key or replica identity index). */
export class KeyedState {
  readonly keyed = true;
  private readonly shards: Map<string, number>[] = Array.from({ length: SHARDS }, () => new Map<string, number>());
  /**
   * Keys whose last event carried the TOAST placeholder for some columns (an update that left a
   * large value unchanged and did not send it): those columns, by name. The source side writes
   * them as the placeholder too, so they are not compared for these keys (their value is not in
   * the event; an earlier event had it). Rare.
   */
  readonly partial = new Map<string, readonly string[]>();

  get size(): number {
    let n = 0;
    for (const shard of this.shards) n += shard.size;
    return n;
  }

  set(key: string, rowHash: number): void {
    (this.shards[shardOf(key)] as Map<string, number>).set(key, rowHash);
    if (this.partial.size > 0) this.partial.delete(key);
  }

  /** The key's row hash, and removes it (each source row takes its key once: what is left is extra). */
  take(key: string): number | undefined {
    const shard = this.shards[shardOf(key)] as Map<string, number>;
    const hash = shard.get(key);
    if (hash !== undefined) shard.delete(key);
    return hash;
  }

  delete(key: string): void {
    (this.shards[shardOf(key)] as Map<string, number>).delete(key);
    if (this.partial.size > 0) this.partial.delete(key);
  }

  clear(): void {
    for (const shard of this.shards) shard.clear();
    this.partial.clear();
  }

  /** The keys not taken, in no particular order. */
  *remaining(): IterableIterator<string> {
    for (const shard of this.shards) yield* shard.keys();
  }
}

/**
 * Replayed state of a keyless table: how many rows of each hash. Deletes and updates need the old
 * row to know which row went (REPLICA IDENTITY FULL sends it; without it PostgreSQL refuses them
 * on a published keyless table). An event without it makes the table unverifiable (`unreplayable`).
 */
export class KeylessState {
  readonly keyed = false;
  private readonly counts = new Map<number, number>();
  private rows = 0;
  /** Why the table cannot be replayed (the first such event), if it cannot. */
  unreplayable: string | undefined;
  /** Deletes of rows the state did not hold (a sink that lost an insert, or replay from a cut). */
  unmatchedDeletes = 0;

  get size(): number {
    return this.rows;
  }

  add(rowHash: number): void {
    this.counts.set(rowHash, (this.counts.get(rowHash) ?? 0) + 1);
    this.rows++;
  }

  /** Removes one row of this hash; false when there is none. */
  take(rowHash: number): boolean {
    const count = this.counts.get(rowHash);
    if (count === undefined) return false;
    if (count === 1) this.counts.delete(rowHash);
    else this.counts.set(rowHash, count - 1);
    this.rows--;
    return true;
  }

  remove(rowHash: number): void {
    if (!this.take(rowHash)) this.unmatchedDeletes++;
  }

  clear(): void {
    this.counts.clear();
    this.rows = 0;
  }
}

export type TableState = KeyedState | KeylessState;

/** Hash of a row range (see event-scan.ts for what the range holds). */
export function rowHash(data: Buffer, start: number, end: number): number {
  return hashBytes(data, start, end);
}
