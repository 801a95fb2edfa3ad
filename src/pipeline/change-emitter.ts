/**
 * Writes the events of one open transaction into the ChangeSink: each event's ordinal and per-table count,
 * its tally (the batch summaries' table and op, see OP_TALLY in envelope/change-sink.ts), the BEGIN and END
 * events around it, and the pair an update that changed its key becomes.
 *
 * Separate from the assembler (assembler.ts), which decides what a pgoutput message means (resume filter,
 * snapshot windows, TOAST policy, logical messages); this file only knows how an event is numbered and
 * written. On the hot path: one monomorphic call per event, no object or closure per event.
 */
import type { Lsn, TupleData } from '../protocol/messages.ts';
import { EventFlag } from '../sinks/batch.ts';
import { OP_TALLY, type ChangeSink, type TalliedOp } from '../envelope/change-sink.ts';
import type { TableInTransaction, TableSerializer, TransactionContext } from '../envelope/json.ts';
import { topicName, type TopicNaming } from '../envelope/topics.ts';
import { beginLine, endLine, type DataCollectionCount } from '../envelope/transaction-events.ts';
import { oldKeyIn } from './key-change.ts';

/** The transaction between a Begin and its Commit, as the assembler and the emitter share it. */
export interface OpenTransaction {
  readonly context: TransactionContext;
  readonly commitLsn: Lsn;
  ordinal: number;
  /** Per-table state: event counts (data_collection_order) and encoded source heads. */
  readonly perTable: Map<number, TableInTransaction>;
  /** True while skipping a transaction already delivered before a restart. */
  readonly skip: boolean;
}

/** The create half of a key change, as the TOAST policy chose it (toast.ts). */
export interface KeyChangeCreate {
  readonly serializer: TableSerializer;
  readonly after: TupleData;
  readonly unavailable: Buffer | null;
}

export class ChangeEmitter {
  private readonly out: ChangeSink;
  private readonly naming: TopicNaming;
  /** The assembler's serializers by relation id, read for the END event's per-table counts. */
  private readonly serializers: ReadonlyMap<number, TableSerializer>;
  /** Per relation id, its table's first tally (ChangeSink.tallyBase), -1 when nothing counts. */
  private readonly tallyBases = new Map<number, number>();
  /** The topic of BEGIN and END events; -1 when they are off. */
  private readonly transactionTopicNumber: number;

  constructor(
    out: ChangeSink,
    naming: TopicNaming,
    serializers: ReadonlyMap<number, TableSerializer>,
    transactionEvents: boolean,
  ) {
    this.out = out;
    this.naming = naming;
    this.serializers = serializers;
    this.transactionTopicNumber = transactionEvents ? out.topics.number(topicName(naming, 'transaction')) : -1;
  }

  /** Call when `relationId`'s table changed: its tally base is asked again. */
  forget(relationId: number): void {
    this.tallyBases.delete(relationId);
  }

  /** Before a transaction's first event: its BEGIN event, when those are on. */
  begin(tx: OpenTransaction): void {
    if (this.transactionTopicNumber >= 0)
      this.out.event(this.transactionTopicNumber, beginLine(this.naming, tx.context));
  }

  /** At the commit of a transaction with events: its END event, when those are on. */
  end(tx: OpenTransaction): void {
    if (this.transactionTopicNumber >= 0 && tx.ordinal > 0)
      this.out.event(this.transactionTopicNumber, endLine(this.naming, tx.context, tx.ordinal, this.collections(tx)));
  }

  /** Events per table of `tx` (partitions reported under their root add up). */
  private collections(tx: OpenTransaction): DataCollectionCount[] {
    const counts = new Map<string, number>();
    for (const [relationId, inTx] of tx.perTable) {
      const table = this.serializers.get(relationId)?.table;
      const name = table ? `${table.schema}.${table.table}` : String(relationId);
      counts.set(name, (counts.get(name) ?? 0) + inTx.count);
    }
    return [...counts].map(([name, count]) => ({ name, count }));
  }

  emit(
    tx: OpenTransaction,
    s: TableSerializer,
    lsn: Lsn,
    op: 'c' | 'u' | 'd' | 't',
    key: TupleData | null,
    before: TupleData | null,
    after: TupleData | null,
    unavailable: Buffer | null,
  ): void {
    // A shaping rule's `drop`: the event does not exist (no ordinal, like truncate.skip).
    if (s.drops !== null && s.drops[op]) return;
    const relationId = s.table.relationId;
    if (tx.ordinal === 0) this.begin(tx);
    let inTx = tx.perTable.get(relationId);
    if (inTx === undefined) tx.perTable.set(relationId, (inTx = s.inTransaction(tx.context)));
    inTx.count++;
    const totalOrder = ++tx.ordinal;
    const w = this.out.writer;
    w.startEvent();
    try {
      s.write(w, op, key, before, after, tx.context, inTx, lsn, totalOrder, Date.now(), unavailable);
    } catch (error) {
      w.abortEvent();
      throw error;
    }
    this.out.eventEnd(s.topicNumber, op === 'd' ? EventFlag.DELETE : 0, this.tally(s, op));
  }

  /**
   * An update that changed the key: the delete of `old`'s key (its before is `old`, its header the
   * new key from `after`), then the create of the new key through the TOAST policy's choice
   * (`created`: a variant serializer for toast.mode omit, with `created.row` in its columns). Two
   * events with their own ordinals.
   */
  emitKeyChange(
    tx: OpenTransaction,
    s: TableSerializer,
    lsn: Lsn,
    old: TupleData,
    after: TupleData,
    created: KeyChangeCreate,
  ): void {
    if (s.drops !== null && s.drops.d && s.drops.c) return;
    if (tx.ordinal === 0) this.begin(tx);
    const relationId = s.table.relationId;
    let inTx = tx.perTable.get(relationId);
    if (inTx === undefined) tx.perTable.set(relationId, (inTx = s.inTransaction(tx.context)));
    const variant = created.serializer;
    const oldInVariant = variant === s ? old : oldKeyIn(s, variant, old);
    const w = this.out.writer;
    for (const op of ['d', 'c'] as const) {
      // A shaping rule's `drop`: the event does not exist (no ordinal, like truncate.skip).
      if (s.drops !== null && s.drops[op]) continue;
      inTx.count++;
      const totalOrder = ++tx.ordinal;
      w.startEvent();
      try {
        if (op === 'd') s.writeKeyChange(w, op, old, after, tx.context, inTx, lsn, totalOrder, Date.now());
        else {
          const now = Date.now();
          variant.writeKeyChange(
            w,
            op,
            oldInVariant,
            created.after,
            tx.context,
            inTx,
            lsn,
            totalOrder,
            now,
            created.unavailable,
          );
        }
      } catch (error) {
        w.abortEvent();
        throw error;
      }
      // The delete is flagged like any delete: the Kafka sink follows it with the old key's tombstone.
      this.out.eventEnd(s.topicNumber, op === 'd' ? EventFlag.DELETE : 0, this.tally(s, op));
    }
  }

  /** The tally of `op` on `s`'s table (one map lookup; the base is asked of the ChangeSink once per table). */
  private tally(s: TableSerializer, op: TalliedOp): number {
    const relationId = s.table.relationId;
    let base = this.tallyBases.get(relationId);
    if (base === undefined) {
      base = this.out.tallyBase?.(`${s.table.schema}.${s.table.table}`) ?? -1;
      this.tallyBases.set(relationId, base);
    }
    return base < 0 ? -1 : base + OP_TALLY[op];
  }
}
