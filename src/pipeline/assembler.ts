/**
 * Turns decoded pgoutput messages into serialized change events, transaction by transaction.
 * Pure and synchronous: no I/O, so the hot path is one function call per message.
 *
 * Events are stamped with (commit_lsn, ordinal): Begin carries the commit LSN, so every event's id
 * is known when it is built and is the same when the transaction is delivered again. How an event is
 * numbered and written (ordinals, tallies, BEGIN and END, a key change's pair) is change-emitter.ts.
 */
import { CdcError } from '../core/errors.ts';
import { formatLsn } from '../protocol/lsn.ts';
import {
  PG_EPOCH_OFFSET_MICROS,
  pgTimeToUnixMs,
  UNCHANGED_TOAST,
  type Lsn,
  type PgoutputMessage,
  type TupleData,
} from '../protocol/messages.ts';
import type { ChangeSink } from '../envelope/change-sink.ts';
import type { RelationCache } from '../source/relations.ts';
import { messageLine, RESERVED_MESSAGE_PREFIX } from '../envelope/message.ts';
import type { ChangeObserver } from '../snapshot/window-tracker.ts';
import { TableSerializer, transactionContext } from '../envelope/json.ts';
import { topicName, type TopicNaming } from '../envelope/topics.ts';
import type { ToastPolicy } from './toast.ts';
import { keyChanged } from './key-change.ts';
import { ChangeEmitter, type OpenTransaction } from './change-emitter.ts';
import type { HistoryCheck } from './history-check.ts';

export interface AssemblerOptions {
  readonly naming: TopicNaming;
  /** Transactions whose commit LSN is below this were delivered before the restart. */
  readonly skipBefore: Lsn;
  /** Sees signals, watermarks and the changes of tables with an open snapshot window. */
  readonly observer?: ChangeObserver | undefined;
  /**
   * Relations whose changes never become events: the heartbeat table (heartbeat.ts) and tables
   * outside the selection. Asked once per Relation message, never per change.
   */
  readonly ignores?: ((relationId: number) => boolean) | undefined;
  /** Drop truncates (`truncate.skip`). */
  readonly skipTruncate?: boolean;
  /** Which message prefixes become events (message-filter.ts); pgcdc's own prefix never does. */
  readonly messageFilter?: (prefix: string) => boolean;
  /** `toast.mode` omit or fill (toast.ts); undefined for the placeholder, which costs nothing. */
  readonly toast?: ToastPolicy | undefined;
  /** BEGIN and END events around each transaction with events (transaction-events.ts). */
  readonly transactionEvents?: boolean;
}

export class ChangeAssembler {
  private readonly relations: RelationCache;
  private readonly out: ChangeSink;
  private readonly naming: TopicNaming;
  private readonly serializers = new Map<number, TableSerializer>();
  /** Numbers and writes the open transaction's events (change-emitter.ts). */
  private readonly emitter: ChangeEmitter;
  private readonly messageTopicNumber: number;
  private readonly observer: ChangeObserver | undefined;
  private readonly options: AssemblerOptions;
  /** Relation ids whose changes are dropped (`ignores`). */
  private readonly ignored = new Set<number>();
  private tx: OpenTransaction | undefined;
  /** The resume filter; switched off for good at the first newer commit. */
  private skipBefore: Lsn;
  /** Count of transactions skipped by the resume filter (for logs and tests). */
  skippedTransactions = 0;
  /**
   * The end LSN of the last commit seen (skipped ones included), for `source.sequence`; at start the
   * stored position, the last commit delivered before (null on a fresh start), as Debezium restores it.
   */
  private lastCommitEnd: Lsn | null;
  /** Watches the replay before the stored offset (history-check.ts); dropped once the stream passed it. */
  private history: HistoryCheck | undefined;

  constructor(relations: RelationCache, out: ChangeSink, options: AssemblerOptions) {
    this.relations = relations;
    this.out = out;
    this.naming = options.naming;
    this.skipBefore = options.skipBefore;
    this.lastCommitEnd = options.skipBefore > 0 ? options.skipBefore : null;
    this.observer = options.observer;
    this.messageTopicNumber = out.topics.number(topicName(options.naming, 'message'));
    this.options = options;
    this.emitter = new ChangeEmitter(out, options.naming, this.serializers, options.transactionEvents === true);
  }

  get inTransaction(): boolean {
    return this.tx !== undefined;
  }

  /** The open transaction's commit LSN, xid and whether it is skipped (for schema-change events). */
  get openTransaction(): { readonly commitLsn: string; readonly xid: number; readonly skip: boolean } | undefined {
    const tx = this.tx;
    return tx === undefined ? undefined : { commitLsn: tx.context.commitLsn, xid: tx.context.xid, skip: tx.skip };
  }

  /** Checks the replayed history against the checkpoint from the next message on. */
  checkHistory(check: HistoryCheck): void {
    this.history = check;
  }

  /** Call after the relation cache learnt a new schema for `relationId`. */
  relationChanged(relationId: number): void {
    const table = this.relations.get(relationId);
    this.serializers.set(relationId, new TableSerializer(table, this.naming, this.out.topics));
    this.emitter.forget(relationId);
    if (this.options.ignores?.(relationId) === true) this.ignored.add(relationId);
    else this.ignored.delete(relationId);
    this.observer?.relationChanged(relationId);
  }

  /** A transaction being skipped, or a change of an ignored table. */
  private drops(tx: OpenTransaction, relationId: number): boolean {
    return tx.skip || (this.ignored.size !== 0 && this.ignored.has(relationId));
  }

  /** Handles one message; `lsn` is the XLogData start of the frame that carried it. */
  handle(message: PgoutputMessage, lsn: Lsn): void {
    switch (message.tag) {
      case 'begin': {
        if (this.history !== undefined) {
          this.history.begin(message.finalLsn, message.xid);
          if (this.history.finished) this.history = undefined;
        }
        this.observer?.begin(message.xid, message.finalLsn);
        const skip = message.finalLsn < this.skipBefore;
        if (skip) this.skippedTransactions++;
        else this.skipBefore = 0;
        this.tx = {
          context: transactionContext(
            message.xid,
            formatLsn(message.finalLsn),
            pgTimeToUnixMs(message.commitTime),
            message.commitTime + PG_EPOCH_OFFSET_MICROS,
            this.lastCommitEnd,
          ),
          commitLsn: message.finalLsn,
          ordinal: 0,
          perTable: new Map(),
          skip,
        };
        return;
      }
      case 'commit': {
        const tx = this.requireTx(message.tag);
        this.tx = undefined;
        this.lastCommitEnd = message.endLsn;
        this.history?.commit(message.endLsn);
        if (tx.skip) {
          this.observer?.committed(message.endLsn, false);
          return;
        }
        this.emitter.end(tx);
        this.options.toast?.committed(message.endLsn);
        // Snapshot rows whose window closes here go after the transaction, in the same commit.
        this.observer?.committed(message.endLsn, true);
        this.out.commit(message.endLsn, tx.commitLsn, tx.context.xid, tx.context.commitTimeMs);
        return;
      }
      case 'insert': {
        const tx = this.requireTx(message.tag);
        if (this.drops(tx, message.relationId)) return;
        const s = this.serializer(message.relationId);
        if (this.observer?.active === true && this.observer.change(s.table, null, message.newTuple)) return;
        this.options.toast?.inserted(s, message.newTuple);
        this.emitter.emit(tx, s, lsn, 'c', message.newTuple, null, message.newTuple, null);
        return;
      }
      case 'update': {
        const tx = this.requireTx(message.tag);
        if (this.drops(tx, message.relationId)) return;
        const old = message.oldTuple ?? message.keyTuple ?? null;
        const after = message.oldTuple ? fillUnchangedToast(message.newTuple, message.oldTuple) : message.newTuple;
        const s = this.serializer(message.relationId);
        if (this.observer?.active === true && this.observer.change(s.table, old, after)) return;
        const toast = this.options.toast;
        const r = toast === undefined ? undefined : toast.updated(s, old, after, old);
        if (old !== null && keyChanged(s.table.keyIndexes, old, after)) {
          // As Debezium: a delete of the old key, then a create of the new one (docs/events.md).
          this.emitter.emitKeyChange(tx, s, lsn, old, after, r ?? { serializer: s, after, unavailable: null });
          return;
        }
        if (r === undefined) this.emitter.emit(tx, s, lsn, 'u', after, old, after, null);
        else this.emitter.emit(tx, r.serializer, lsn, 'u', r.after, r.before, r.after, r.unavailable);
        return;
      }
      case 'delete': {
        const tx = this.requireTx(message.tag);
        if (this.drops(tx, message.relationId)) return;
        const old = message.oldTuple ?? message.keyTuple;
        if (!old) return; // REPLICA IDENTITY NOTHING: PostgreSQL refuses such deletes on published tables.
        const s = this.serializer(message.relationId);
        if (this.observer?.active === true && this.observer.change(s.table, old, null)) return;
        this.options.toast?.deleted(s, old);
        this.emitter.emit(tx, s, lsn, 'd', old, old, null, null);
        return;
      }
      case 'truncate': {
        const tx = this.requireTx(message.tag);
        for (const relationId of message.relationIds) {
          if (this.drops(tx, relationId)) continue;
          const s = this.serializer(relationId);
          this.observer?.truncate(s.table);
          this.options.toast?.truncated(s);
          if (this.options.skipTruncate !== true) this.emitter.emit(tx, s, lsn, 't', null, null, null, null);
        }
        return;
      }
      case 'message': {
        if (this.tx === undefined && this.history !== undefined) {
          this.history.message(message.lsn);
          if (this.history.finished) this.history = undefined;
        }
        if (message.prefix.startsWith(RESERVED_MESSAGE_PREFIX)) {
          // Not from a replayed (skipped) transaction, nor a replayed message between transactions.
          if (this.tx?.skip !== true && (this.tx !== undefined || message.lsn >= this.skipBefore))
            this.observer?.message(message.prefix, message.content);
          return;
        }
        if (this.options.messageFilter && !this.options.messageFilter(message.prefix)) return;
        const event = { prefix: message.prefix, content: message.content, lsn: message.lsn };
        const tx = this.tx;
        if (tx && message.transactional) {
          if (tx.skip) return;
          if (tx.ordinal === 0) this.emitter.begin(tx);
          const totalOrder = ++tx.ordinal;
          this.out.event(
            this.messageTopicNumber,
            messageLine(this.naming, event, { context: tx.context, totalOrder }, formatLsn(message.lsn), Date.now()),
          );
          return;
        }
        // Non-transactional: it stands alone between transactions. Its LSN is the end of its WAL
        // record, so acknowledging exactly that makes a restart skip it (PostgreSQL skips records
        // that start before the confirmed position). Not one byte more: the transaction that emitted
        // it may commit right at that LSN, and is sent after it.
        if (message.lsn <= this.skipBefore) return;
        this.out.event(
          this.messageTopicNumber,
          messageLine(this.naming, event, undefined, formatLsn(message.lsn), Date.now(), this.lastCommitEnd),
        );
        // Debezium counts a non-transactional message as a commit of its own (source.sequence).
        this.lastCommitEnd = message.lsn;
        this.out.commit(message.lsn);
        return;
      }
      case 'relation':
      case 'type':
      case 'origin':
        // Relation and Type are applied by the capture loop (they may need catalog lookups) before reaching here.
        return;
      case 'streamStart':
      case 'streamStop':
      case 'streamCommit':
      case 'streamAbort':
      case 'beginPrepare':
      case 'prepare':
      case 'commitPrepared':
      case 'rollbackPrepared':
      case 'streamPrepare':
        throw new CdcError(
          'PROTOCOL_INVALID',
          `unexpected ${message.tag} message: pgcdc requested protocol version 1 without streaming or two-phase`,
        );
      default: {
        const unreachable: never = message;
        throw new CdcError('PROTOCOL_UNKNOWN_MESSAGE', `unhandled message ${String(unreachable)}`);
      }
    }
  }

  private requireTx(tag: string): OpenTransaction {
    if (!this.tx) throw new CdcError('PROTOCOL_INVALID', `${tag} message outside a transaction`);
    return this.tx;
  }

  private serializer(relationId: number): TableSerializer {
    const found = this.serializers.get(relationId);
    if (found) return found;
    const created = new TableSerializer(this.relations.get(relationId), this.naming, this.out.topics);
    this.serializers.set(relationId, created);
    return created;
  }
}

/**
 * Under REPLICA IDENTITY FULL PostgreSQL still marks unchanged TOASTed columns of the new row as
 * unchanged, but sends the whole old row: the unchanged value is exactly the old one.
 */
function fillUnchangedToast(newTuple: TupleData, oldTuple: TupleData): TupleData {
  if (!newTuple.includes(UNCHANGED_TOAST)) return newTuple;
  return newTuple.map((value, i) =>
    value === UNCHANGED_TOAST && oldTuple[i] !== UNCHANGED_TOAST ? (oldTuple[i] ?? null) : value,
  );
}
