/**
 * The streaming part of a capture, from START_REPLICATION to CopyDone: CopyData frames ->
 * pgoutput messages -> events -> Delivery, with standby status updates on a timer.
 *
 * Flow control: reading pauses while the sink is behind (Delivery's high-water mark) or while a
 * Relation message waits for a catalog lookup. Status updates go out whatever the state of
 * reading, so the walsender never hits wal_sender_timeout.
 */
import type pg from 'pg';
import type { Config } from '../config.ts';
import { CdcError, toCdcError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { formatLsn } from '../protocol/lsn.ts';
import type { Lsn } from '../protocol/messages.ts';
import { PgoutputDecoder } from '../protocol/pgoutput.ts';
import { parseReplicationFrame } from '../protocol/replication.ts';
import { describeEndpoint, type SourceEndpoint } from '../postgres/connect.ts';
import { tablesByOid, type GeneratedColumns, type ServerFacts, type TableRef } from '../postgres/catalog.ts';
import { loadPgTypes } from '../postgres/pg-types.ts';
import { partitionRoot } from '../postgres/partitions.ts';
import type { ReplicationSession, ReplicationStream } from '../postgres/slot.ts';
import type { FileOffsetStore } from '../offsets/file.ts';
import type { Checkpoint, CommitIdentity } from '../offsets/store.ts';
import type { Sink } from '../sinks/contract.ts';
import { RelationCache, type RelationMessage } from '../source/relations.ts';
import type { PgType } from '../source/values.ts';
import { topicName, type TopicNaming } from '../envelope/topics.ts';
import { ChangeAssembler } from './assembler.ts';
import { Delivery } from './delivery.ts';
import type { CheckpointProgress } from '../offsets/store.ts';
import { spillDirectory, StreamedTransactions } from './large-transactions.ts';
import { WindowTracker } from '../snapshot/window-tracker.ts';
import { SchemaChanges } from './schema-changes.ts';
import { IncrementalSnapshotter } from '../snapshot/incremental.ts';
import { openConnection } from '../postgres/connect.ts';
import { watermarkWriter, type ResolvedMethod } from '../snapshot/watermarks.ts';
import { pendingTables } from '../snapshot/resume-state.ts';
import type { TableName } from '../snapshot/initial-reader.ts';
import type { StreamPositions } from '../core/engine-events.ts';
import type { Heartbeat } from './heartbeat.ts';
import { heartbeatTable } from '../selection/heartbeat-table.ts';
import { ToastPolicy } from './toast.ts';
import type { ToastStore } from '../source/toast-store.ts';
import { messageFilter } from './message-filter.ts';
import type { HistoryCheck } from './history-check.ts';
import { checkStreamStart } from './start-check.ts';
import { uncapturedNames, type TableSelection } from '../selection/table-selection.ts';
import { CapturedRelations } from '../selection/captured-relations.ts';

export interface LoopDeps {
  config: Config;
  endpoint: SourceEndpoint;
  facts: ServerFacts;
  query: pg.Client;
  session: ReplicationSession;
  sink: Sink;
  offsets: FileOffsetStore;
  tables: readonly TableRef[];
  /** The table selection computed at start: changes of other tables are dropped. */
  selection: TableSelection;
  /** The generated columns the publication publishes: incremental snapshots read the same ones. */
  generatedColumns: GeneratedColumns;
  log: Logger;
  identity: { systemId: string; timeline: number; database: string; slot: string; publication: string };
  naming: TopicNaming;
  /** pg_type as loaded at start; reloaded when a Relation names a type it lacks. */
  types: ReadonlyMap<number, PgType>;
  /** Moves the checkpoint over idle WAL every interval (and writes the heartbeat, if configured). */
  heartbeat: Heartbeat;
  /** The TOAST fill store (toast.mode fill), already at the state of the resume point. */
  toastStore: ToastStore | undefined;
  /** Where delivery starts: the stored offset, or the new slot's consistent point. */
  startLsn: Lsn;
  /**
   * The position START_REPLICATION asks for (lifecycle/restart-rule.ts: the slot's own, to replay up to `startLsn`). */
  replayFrom: Lsn;
  /** The checkpoint's last delivered commit, checked against the replay (history-check.ts). */
  lastCommit: CommitIdentity | undefined;
  skipBefore: Lsn;
  startPosition: Record<string, unknown>;
  /** Snapshot progress stored with the checkpoint (incremental snapshot requests and cursors). */
  progress: CheckpointProgress;
  /** The incremental snapshot method, or why there is none on this server/config. */
  method: ResolvedMethod | { readonly unavailable: string };
  signalTable: TableName | undefined;
  /** A checkpoint was stored. */
  onStored?: ((checkpoint: Checkpoint, delivered: number) => void) | undefined;
  onFailure: (error: CdcError) => void;
  onProgress: ((positions: StreamPositions) => void) | undefined;
}

/** The streaming part of a capture, from START_REPLICATION to CopyDone. */
export class StreamLoop {
  private readonly deps: LoopDeps;
  private readonly decoder: PgoutputDecoder;
  private readonly types = new Map<number, PgType>();
  private readonly tableFacts = new Map<number, TableRef>();
  private readonly rootsLogged = new Set<number>();
  /** Which relations' changes become events (the selection, the heartbeat and signal tables). */
  private readonly captured: CapturedRelations;
  private readonly relations: RelationCache;
  private readonly assembler: ChangeAssembler;
  private readonly delivery: Delivery;
  private readonly windows: WindowTracker;
  private readonly snapshotter: IncrementalSnapshotter | undefined;
  /** Schema-change events (`schemaChanges.events`), with the topic they go to. */
  private readonly schemaChanges: { readonly tracker: SchemaChanges; readonly topic: number } | undefined;
  /** Protocol v2 streaming of large in-progress transactions; undefined unless `streaming` is on. */
  private readonly streamed: StreamedTransactions | undefined;
  private stream: ReplicationStream | undefined;
  private statusTimer: NodeJS.Timeout | undefined;
  /** Frames that arrived while a Relation lookup was pending. */
  private backlog: Buffer[] = [];
  private blocked = false;
  private pressure = false;
  private stopping = false;
  private received: Lsn;
  private lastWalEnd: Lsn = 0;
  /** The slot was read again once streaming and starts where expected (start-check.ts). */
  private startVerified = false;
  /** Watches the replay up to the stored offset; undefined when there is none. */
  private history: HistoryCheck | undefined;

  constructor(deps: LoopDeps) {
    this.deps = deps;
    this.received = deps.startLsn;
    this.decoder = new PgoutputDecoder({ protoVersion: deps.config.streaming ? 2 : 1 });
    for (const [oid, type] of deps.types) this.types.set(oid, type);
    for (const table of deps.tables) this.tableFacts.set(table.oid, table);
    this.captured = new CapturedRelations(
      deps.selection,
      { signal: deps.signalTable, heartbeat: heartbeatTable(deps.config.heartbeat) },
      deps.log,
    );
    const values = deps.config.values;
    this.relations = new RelationCache((oid) => this.types.get(oid), values);
    this.delivery = new Delivery(
      deps.sink,
      deps.offsets,
      deps.identity,
      { lsn: deps.startLsn, position: deps.startPosition, progress: deps.progress, lastCommit: deps.lastCommit },
      deps.config.batch,
      {
        pressure: (high) => {
          this.pressure = high;
          this.updateFlow();
          this.streamed?.pressure(high);
        },
        failed: (error) => deps.onFailure(error),
        stored: (checkpoint, delivered) => deps.onStored?.(checkpoint, delivered),
        beforeStore: deps.toastStore ? (lsn) => (deps.toastStore as ToastStore).persist(lsn) : undefined,
      },
    );
    this.schemaChanges = deps.config.schemaChanges.events
      ? {
          tracker: new SchemaChanges(deps.naming, deps.progress.schemas),
          topic: this.delivery.topics.number(topicName(deps.naming, 'schema_changes')),
        }
      : undefined;
    this.windows = new WindowTracker(this.delivery, {
      signalTable: deps.signalTable,
      uncaptured: (tables) => uncapturedNames(deps.selection, tables),
      log: deps.log,
      requestKeepalive: () => this.stream?.sendStatus(this.received, this.flushLsn, true),
      onProgress: () => this.wakeSnapshotter(),
    });
    const method = deps.method;
    this.snapshotter =
      typeof method === 'string'
        ? new IncrementalSnapshotter({
            tracker: this.windows,
            connect: () => openConnection(deps.endpoint, 'query', 'pgcdc-snapshot'),
            watermarks: watermarkWriter(
              method,
              () => openConnection(deps.endpoint, 'query', 'pgcdc-watermark'),
              deps.signalTable,
            ),
            major: deps.facts.major,
            generatedColumns: deps.generatedColumns,
            chunkRows: deps.config.snapshot.chunkSize,
            parallelism: deps.config.snapshot.parallelism,
            types: (oid) => this.types.get(oid),
            values,
            naming: deps.naming,
            topics: this.delivery.topics,
            log: deps.log,
            onError: (error) => this.fail(error),
          })
        : undefined;
    this.assembler = new ChangeAssembler(this.relations, this.delivery, {
      naming: deps.naming,
      skipBefore: deps.skipBefore,
      observer: this.windows,
      ignores: (relationId) => this.captured.drops(relationId),
      skipTruncate: deps.config.truncate.skip,
      messageFilter: messageFilter(deps.config.messages.include, deps.config.messages.exclude),
      toast:
        deps.config.toast.mode === 'placeholder'
          ? undefined
          : new ToastPolicy(deps.config.toast.mode, deps.toastStore, deps.naming, this.delivery.topics, deps.log),
      transactionEvents: deps.config.transactions.events,
    });
    this.streamed = deps.config.streaming
      ? new StreamedTransactions({
          dir: spillDirectory(deps.config.offsets),
          decoder: this.decoder,
          log: deps.log,
          target: {
            handle: (message, lsn) => this.assembler.handle(message, lsn),
            applyRelation: (message) => this.applyRelation(message),
            stopped: () => this.stopping,
          },
        })
      : undefined;
  }

  start(): void {
    const stream = this.deps.session.start({
      slot: this.deps.config.slot,
      startLsn: this.deps.replayFrom,
      publication: this.deps.config.publication,
      protoVersion: this.decoder.protoVersion,
      messages: this.deps.facts.major >= 14,
      streaming: this.streamed !== undefined,
      origin: this.deps.config.origin,
    });
    this.stream = stream;
    stream.on('frame', (frame) => this.onFrame(frame));
    stream.on('error', (error) => this.fail(error));
    stream.on('end', () =>
      this.fail(
        new CdcError('REPLICATION_STREAM_FAILED', 'the server ended the replication stream', { retryable: true }),
      ),
    );
    // No frame is processed before the slot is read again (start-check.ts).
    this.hold(this.verifyStart());
    // Status updates well inside wal_sender_timeout (a third of it, as the walsender itself assumes).
    const timeout = this.deps.facts.walSenderTimeoutMs;
    const interval =
      timeout > 0
        ? Math.min(this.deps.config.statusIntervalMs, Math.max(100, Math.floor(timeout / 3)))
        : this.deps.config.statusIntervalMs;
    this.statusTimer = setInterval(() => this.tick(), interval);
    this.deps.heartbeat.start(
      () => (this.stopping ? Promise.resolve() : this.confirmIdle()),
      (error) => this.fail(error),
    );
    this.deps.log.info(
      {
        source: describeEndpoint(this.deps.endpoint),
        slot: this.deps.config.slot,
        publication: this.deps.config.publication,
        from: formatLsn(this.deps.startLsn),
      },
      'streaming',
    );
    this.wakeSnapshotter();
  }

  private async verifyStart(): Promise<void> {
    const checked = await checkStreamStart(this.deps, () => this.stopping);
    if (checked === undefined) return;
    if (checked.history) this.assembler.checkHistory((this.history = checked.history));
    this.startVerified = true;
  }

  /**
   * The flush LSN sent to PostgreSQL: `acked`, but nothing past where the stream asked to start
   * until the start (start-check.ts) and the replayed history (history-check.ts) are verified, so
   * a refused start leaves the slot where it was.
   */
  private get flushLsn(): Lsn {
    return this.verified ? this.delivery.acked : Math.min(this.delivery.acked, this.deps.replayFrom);
  }

  private get verified(): boolean {
    return this.startVerified && (this.history === undefined || this.history.verified);
  }

  /** The incremental snapshot progress (cursors, counts) as it will be stored next. */
  get snapshotProgress(): CheckpointProgress {
    return this.delivery.currentProgress;
  }

  /** A `pgcdc snapshot` request (taken at the next transaction boundary, stored with the checkpoint). */
  requestSnapshot(id: string, tables: readonly TableName[]): void {
    this.windows.request(id, tables);
  }

  private wakeSnapshotter(): void {
    if (this.snapshotter) {
      this.snapshotter.wake();
      return;
    }
    const method = this.deps.method;
    if (typeof method !== 'string' && pendingTables(this.delivery.currentProgress.incremental).length > 0) {
      this.deps.log.warn({ reason: method.unavailable }, 'an incremental snapshot was requested but cannot run here');
    }
  }

  /** Clean stop: stop reading, deliver committed transactions, confirm, CopyDone. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.statusTimer) clearInterval(this.statusTimer);
    await this.snapshotter?.stop();
    await this.deps.heartbeat.close();
    await this.delivery.drain();
    await this.confirmIdle();
    // After confirmIdle: an open streamed transaction must keep the confirmed LSN before it.
    this.streamed?.close();
    this.delivery.dispose();
    this.stream?.sendStatus(this.received, this.flushLsn);
    await this.stream?.stop();
    this.deps.log.info(
      {
        acked: formatLsn(this.delivery.acked),
        delivered: this.delivery.delivered,
        skipped: this.assembler.skippedTransactions,
      },
      'stopped',
    );
  }

  /** Stop after a failure: nothing more is acknowledged. */
  async abort(): Promise<void> {
    this.stopping = true;
    if (this.statusTimer) clearInterval(this.statusTimer);
    this.streamed?.close();
    void this.snapshotter?.stop();
    this.delivery.dispose();
    await this.deps.session.close();
  }

  private fail(error: CdcError): void {
    if (this.stopping) return;
    this.stopping = true;
    this.deps.onFailure(error);
  }

  private tick(): void {
    if (this.stopping) return;
    try {
      if (!this.assembler.inTransaction && !this.blocked) this.windows.idle();
      // A read-only window waits for the stream to pass a position: ask for a keepalive.
      this.stream?.sendStatus(this.received, this.flushLsn, this.windows.waitingForStream);
      this.deps.onProgress?.({
        acked: formatLsn(this.delivery.acked),
        received: formatLsn(this.received),
        delivered: this.delivery.delivered,
      });
    } catch (error) {
      this.fail(toCdcError(error));
    }
  }

  /**
   * Something was received and is not yet committed: an open transaction, a pending Relation
   * lookup, or an open streamed transaction (pipeline/large-transactions.ts explains why the last one
   * keeps keepalive confirmation back too).
   */
  private get inFlight(): boolean {
    return this.assembler.inTransaction || this.blocked || (this.streamed?.open ?? false);
  }

  /** With nothing in flight, the checkpoint and `acked` follow the server (heartbeat.ts). */
  private async confirmIdle(): Promise<void> {
    // Not before the replayed history is verified: the checkpoint would pass what is unchecked.
    if (this.verified) await this.delivery.confirmIdle(this.lastWalEnd, this.inFlight);
    this.stream?.sendStatus(this.received, this.flushLsn);
  }

  private updateFlow(): void {
    const stream = this.stream;
    if (!stream) return;
    if (this.pressure || this.blocked) stream.pause();
    else stream.resume();
  }

  private onFrame(frame: Buffer): void {
    if (this.stopping) return;
    if (this.blocked) {
      this.backlog.push(frame);
      return;
    }
    try {
      this.process(frame);
    } catch (error) {
      this.fail(toCdcError(error, 'PROTOCOL_INVALID'));
    }
  }

  private process(frame: Buffer): void {
    const parsed = parseReplicationFrame(frame);
    if (parsed.kind === 'keepalive') {
      if (parsed.walEnd > this.lastWalEnd) this.lastWalEnd = parsed.walEnd;
      if (!this.assembler.inTransaction) {
        this.history?.keepalive(parsed.walEnd);
        this.windows.keepalive(parsed.walEnd);
      }
      if (parsed.replyRequested) this.stream?.sendStatus(this.received, this.flushLsn);
      return;
    }
    if (parsed.walStart > this.received) this.received = parsed.walStart;
    const streamed = this.streamed?.take(parsed.data, parsed.walStart);
    if (streamed !== undefined && streamed !== false) {
      // A Stream Commit: later frames wait until its replay has gone through the normal path.
      if (streamed !== true) this.hold(streamed);
      return;
    }
    const message = this.decoder.decode(parsed.data);
    if (message.tag === 'relation') {
      this.blocked = true;
      this.updateFlow();
      void this.applyRelation(message).then(
        () => this.unblock(),
        (error: unknown) => this.fail(toCdcError(error, 'SOURCE_QUERY_FAILED')),
      );
      return;
    }
    this.assembler.handle(message, parsed.walStart);
  }

  private hold(work: Promise<void>): void {
    this.blocked = true;
    this.updateFlow();
    void work.then(
      () => this.unblock(),
      (error: unknown) => this.fail(toCdcError(error)),
    );
  }

  private unblock(): void {
    this.blocked = false;
    while (this.backlog.length > 0 && !this.blocked && !this.stopping) {
      const frame = this.backlog.shift() as Buffer;
      try {
        this.process(frame);
      } catch (error) {
        this.fail(toCdcError(error, 'PROTOCOL_INVALID'));
        return;
      }
    }
    this.updateFlow();
  }

  /** Learns the table's key, partition root and any new types from the catalog, then rebuilds its schema. */
  private async applyRelation(message: RelationMessage): Promise<void> {
    const unknownType = message.columns.some((c) => !this.types.has(c.typeOid));
    if (unknownType) for (const [oid, type] of await loadPgTypes(this.deps.query)) this.types.set(oid, type);
    const known = this.tableFacts.get(message.relationId);
    const fresh = (await tablesByOid(this.deps.query, [message.relationId])).get(message.relationId) ?? known;
    if (fresh) this.tableFacts.set(message.relationId, fresh);
    const root = await partitionRoot(this.deps.query, message.relationId);
    if (root && !this.rootsLogged.has(message.relationId)) {
      this.rootsLogged.add(message.relationId);
      this.deps.log.info(
        { partition: `${message.namespace}.${message.name}`, root: `${root.schema}.${root.table}` },
        'changes of this partition are reported under its partitioned table (publish_via_partition_root = true ' +
          'on the publication makes PostgreSQL do this itself)',
      );
    }
    this.relations.apply(message, fresh ? { primaryKey: fresh.primaryKey, root } : { primaryKey: [], root });
    this.captured.relation(message, root);
    this.assembler.relationChanged(message.relationId);
    const schemas = this.schemaChanges;
    if (schemas) {
      // Inside the transaction that first uses the new shape: the event and the stored shape go
      // out with its commit.
      const line = schemas.tracker.applied(
        this.relations.get(message.relationId),
        this.assembler.openTransaction,
        Date.now(),
      );
      this.delivery.setProgress({ ...this.delivery.currentProgress, schemas: schemas.tracker.stored });
      if (line !== undefined) this.delivery.event(schemas.topic, line);
    }
  }
}
