/**
 * The parts of the data path the stream loop drives, wired together once at its start: the relation cache and
 * the selection's view of relations, Delivery (events -> sink -> checkpoint), the snapshot window tracker and
 * the incremental snapshotter, the assembler (pgoutput messages -> events), Relation message handling, and the
 * streamed-transaction spill. The loop passes in what the parts call back (`LoopCallbacks`); nothing here decides
 * when anything runs (scheduler.ts does).
 */
import { sideFilesBase } from '../offsets/open.ts';
import type { CdcError } from '../core/errors.ts';
import type { Checkpoint } from '../offsets/store.ts';
import type { PgoutputDecoder } from '../protocol/pgoutput.ts';
import { openConnection } from '../postgres/connect.ts';
import { RelationCache } from '../source/relations.ts';
import type { PgType } from '../source/values.ts';
import { WindowTracker } from '../snapshot/window-tracker.ts';
import { IncrementalSnapshotter } from '../snapshot/incremental.ts';
import { watermarkWriter } from '../snapshot/watermarks.ts';
import { uncapturedNames } from '../selection/table-selection.ts';
import { CapturedRelations } from '../selection/captured-relations.ts';
import { ChangeAssembler } from './assembler.ts';
import { Delivery } from './delivery.ts';
import { spillDirectory, StreamedTransactions } from './large-transactions.ts';
import { SchemaChanges } from './schema-changes.ts';
import { heartbeatTable } from '../selection/heartbeat-table.ts';
import { topicName } from '../envelope/topics.ts';
import { ToastPolicy } from './toast.ts';
import { messageFilter } from './message-filter.ts';
import type { LoopDeps, StreamCatalog } from './loop-ports.ts';
import { RelationUpdates } from './relation-updates.ts';

/** What the parts call back into the stream loop. */
export interface LoopCallbacks {
  /** Delivery's buffer passed its high-water mark (true) or fell back below it. */
  pressure(high: boolean): void;
  /** The sink or the offset store failed: nothing more may be acknowledged. */
  failed(error: CdcError): void;
  /** A checkpoint was stored; `delivered` counts the events durable with it since start. */
  stored(checkpoint: Checkpoint, delivered: number): void;
  /** Delivery finished a write or store, or needs a batch cut: the scheduler should look again. */
  ready(): void;
  /** A snapshot window waits for the stream to pass a position: ask the server for a keepalive. */
  requestKeepalive(): void;
  /** The incremental snapshot progress changed (a request or signal was taken). */
  snapshotsChanged(): void;
  /** The incremental snapshotter failed. */
  fail(error: CdcError): void;
  /** The loop is stopping or failed: a streamed transaction's replay ends early. */
  stopped(): boolean;
}

export interface StreamParts {
  readonly relations: RelationCache;
  readonly delivery: Delivery;
  readonly windows: WindowTracker;
  readonly snapshotter: IncrementalSnapshotter | undefined;
  readonly assembler: ChangeAssembler;
  readonly relationUpdates: RelationUpdates;
  readonly streamed: StreamedTransactions | undefined;
}

/** Builds the parts; `types` is the loop's (mutable) type map, which Relation messages may extend. */
export function buildStreamParts(
  deps: LoopDeps,
  catalog: StreamCatalog,
  types: Map<number, PgType>,
  decoder: PgoutputDecoder,
  loop: LoopCallbacks,
): StreamParts {
  const config = deps.config;
  const captured = new CapturedRelations(
    deps.selection,
    { signal: deps.signalTable, heartbeat: heartbeatTable(config.heartbeat) },
    deps.log,
  );
  const values = config.values;
  const relations = new RelationCache((oid) => types.get(oid), values);
  const toastStore = deps.toastStore;
  const delivery = new Delivery(
    deps.sink,
    deps.offsets,
    deps.identity,
    { lsn: deps.startLsn, position: deps.startPosition, progress: deps.progress, lastCommit: deps.lastCommit },
    config.batch,
    {
      pressure: (high) => loop.pressure(high),
      failed: (error) => loop.failed(error),
      stored: (checkpoint, delivered) => loop.stored(checkpoint, delivered),
      ready: () => loop.ready(),
      beforeStore: toastStore ? (lsn) => toastStore.persist(lsn) : undefined,
      xidHorizon: deps.xidHorizon,
      events: deps.events,
    },
  );
  const schemaChanges = config.schemaChanges.events
    ? {
        tracker: new SchemaChanges(deps.naming, deps.progress.schemas),
        topic: delivery.topics.number(topicName(deps.naming, 'schema_changes')),
      }
    : undefined;
  const windows = new WindowTracker(delivery, {
    signalTable: deps.signalTable,
    uncaptured: (tables) => uncapturedNames(deps.selection, tables),
    log: deps.log,
    requestKeepalive: () => loop.requestKeepalive(),
    onSnapshotsChanged: () => loop.snapshotsChanged(),
    ...(deps.recoveryDeletes !== undefined ? { recoveryDeletes: deps.recoveryDeletes } : {}),
  });
  const method = deps.method;
  const snapshotter =
    typeof method === 'string'
      ? new IncrementalSnapshotter({
          tracker: windows,
          ...(deps.recoveryDeletes !== undefined ? { recoveryDeletes: deps.recoveryDeletes } : {}),
          connect: () =>
            openConnection(deps.endpoint, 'query', 'pgcdc-snapshot', {
              statementTimeoutMs: deps.config.snapshot.queryTimeoutMs,
            }),
          watermarks: watermarkWriter(
            method,
            () => openConnection(deps.endpoint, 'query', 'pgcdc-watermark'),
            deps.signalTable,
          ),
          major: deps.facts.major,
          generatedColumns: deps.generatedColumns,
          chunkRows: config.snapshot.chunkSize,
          parallelism: config.snapshot.parallelism,
          types: (oid) => types.get(oid),
          values,
          naming: deps.naming,
          topics: delivery.topics,
          log: deps.log,
          onError: (error) => loop.fail(error),
        })
      : undefined;
  const assembler = new ChangeAssembler(relations, delivery, {
    naming: deps.naming,
    skipBefore: deps.skipBefore,
    observer: windows,
    ignores: (relationId) => captured.drops(relationId),
    skipTruncate: config.truncate.skip,
    messageFilter: messageFilter(config.messages.include, config.messages.exclude),
    toast:
      config.toast.mode === 'placeholder'
        ? undefined
        : new ToastPolicy(config.toast.mode, toastStore, deps.naming, delivery.topics, deps.log),
    transactionEvents: config.transactions.events,
  });
  const relationUpdates = new RelationUpdates({
    catalog,
    types,
    tables: deps.tables,
    relations,
    captured,
    assembler,
    delivery,
    schemaChanges,
    log: deps.log,
  });
  const streamed = config.streaming
    ? new StreamedTransactions({
        dir: spillDirectory(sideFilesBase(config.offsets, config.slot, config.sink.kind)),
        decoder,
        log: deps.log,
        target: {
          handle: (message, lsn) => assembler.handle(message, lsn),
          applyRelation: (message) => relationUpdates.apply(message),
          stopped: () => loop.stopped(),
        },
      })
    : undefined;
  return { relations, delivery, windows, snapshotter, assembler, relationUpdates, streamed };
}
