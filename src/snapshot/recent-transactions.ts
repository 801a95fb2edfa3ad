/**
 * The transactions the stream began most recently, by xid, each with its sequence number in the
 * stream. An incremental snapshot window uses it for one rare race: a transaction whose commit is
 * already in the WAL (and so may already have been streamed) can still be running in the eyes of a
 * snapshot taken a moment later (its commit record is written before it leaves the proc array,
 * and with synchronous replication it waits in between). If such a transaction was streamed before
 * the window opened, the chunk read misses its change although the stream delivered it earlier:
 * the chunk would then overwrite a newer value. The window compares the read's in-progress xids
 * (pg_current_snapshot's xip) with this record and reads the chunk again when one of them began
 * before the window opened.
 *
 * Bounded: a ring of the last CAPACITY xids (one Map entry each), touched once per transaction.
 */
const CAPACITY = 1 << 16;

export class RecentTransactions {
  private readonly ring = new Uint32Array(CAPACITY);
  private readonly seqOf = new Map<number, number>();
  /** Transactions begun so far; the next one gets this number. */
  private next = 0;

  /** Records the Begin of `xid` (32-bit, as pgoutput sends it). */
  begin(xid: number): void {
    const slot = this.next % CAPACITY;
    if (this.next >= CAPACITY) {
      const evicted = this.ring[slot] as number;
      if (this.seqOf.get(evicted) === this.next - CAPACITY) this.seqOf.delete(evicted);
    }
    this.ring[slot] = xid;
    this.seqOf.set(xid, this.next);
    this.next++;
  }

  /** The sequence number the next Begin will get: a window opened now records it. */
  get position(): number {
    return this.next;
  }

  /**
   * Whether any of `xids` (full 64-bit xids as numbers; compared modulo 2^32) began in the stream
   * before `position`. The record reaches back CAPACITY transactions: a transaction streamed that
   * long before and still running in a new snapshot would need a commit stuck for 65,536 others.
   */
  anyBegunBefore(xids: readonly number[], position: number): boolean {
    for (const full of xids) {
      const seq = this.seqOf.get(full % 0x1_0000_0000);
      if (seq !== undefined && seq < position) return true;
    }
    return false;
  }
}
