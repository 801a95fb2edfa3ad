/**
 * Deletes a lost-slot recovery emits (`onLostDeletes: emit`, docs/recovery.md#lost-slots): the keys
 * the sink holds for a recovered keyed table that the source no longer has (rows deleted in the gap).
 *
 * Per table, the candidates start as every key the sink held at this run's start (its checkpoint),
 * loaded once from the output. A candidate leaves the set when
 * - the stream delivers a change naming it (insert, update, delete, either key of a key change): the
 *   output then holds the key's newer state, so it needs no delete from us; a truncate empties the set;
 * - a source read finds it: the recovery's reader reads, for every chunk, every key of the chunk's key
 *   range without the recovery's xid-horizon filter (the first range of a run starts at the lowest key,
 *   so a run resumed after a crash covers the ranges read before it too).
 * When the window of a table's last chunk closes, the keys left are emitted as deletes at its high
 * watermark. Why that is right: such a key K was absent from the snapshot S its range was read in
 * (taken after the stream's start, before the high watermark H), and no change of K was streamed from
 * the run's start up to H. A transaction making K exist again between S and H would commit after the
 * stream's start and before H, so it would have been streamed. So K is absent at H, where the delete
 * stands; changes after H follow it in the output.
 *
 * Keys are the event key's JSON text as keyText (keys.ts) builds it. Memory: a Set of every key the
 * sink holds, per recovered table, for the whole recovery (about 100 bytes a key).
 */

export class RecoveryDeletes {
  /** `schema.table` -> candidate keys. */
  private readonly tables: Map<string, Set<string>>;

  constructor(tables: ReadonlyMap<string, Iterable<string>>) {
    this.tables = new Map([...tables].map(([name, keys]) => [name, new Set(keys)]));
  }

  /** True while some table still has candidates (the stream side must report changes). */
  get active(): boolean {
    return this.tables.size > 0;
  }

  /** The table's candidates are tracked. */
  tracks(table: string): boolean {
    return this.tables.has(table);
  }

  /** Candidates left for `table`. */
  count(table: string): number {
    return this.tables.get(table)?.size ?? 0;
  }

  /** A streamed change (or a source read) names these keys: they need no delete. */
  drop(table: string, keys: Iterable<string>): void {
    const set = this.tables.get(table);
    if (set === undefined) return;
    for (const key of keys) set.delete(key);
  }

  /** A streamed truncate: the output holds nothing of the table any more. */
  truncated(table: string): void {
    this.tables.get(table)?.clear();
  }

  /** The table was read to its end: the keys left, in no particular order; the table is forgotten. */
  take(table: string): string[] {
    const set = this.tables.get(table);
    if (set === undefined) return [];
    this.tables.delete(table);
    return [...set];
  }

  /** Stops tracking `table` (its recovery was stopped or is not a recovery). */
  forget(table: string): void {
    this.tables.delete(table);
  }
}
