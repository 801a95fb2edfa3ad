/**
 * The capture loop: startup checks, then socket bytes -> CopyData frame -> pgoutput message ->
 * events -> sink -> checkpoint -> flush LSN to PostgreSQL.
 *
 * Flow control: reading pauses while the sink is behind (Delivery's high-water mark) or while a
 * Relation message waits for a catalog lookup. Standby status updates go out on a timer whatever
 * the state of reading, so the walsender never hits wal_sender_timeout.
 */
import type pg from 'pg';
import type { Config } from '../config.ts';
import { parseTableName } from '../config.ts';
import { CdcError, toCdcError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { formatLsn } from '../protocol/lsn.ts';
import type { Lsn } from '../protocol/messages.ts';
import { PgoutputDecoder } from '../protocol/pgoutput.ts';
import { parseReplicationFrame } from '../protocol/replication.ts';
import { describeEndpoint, openConnection, resolveEndpoint, type SourceEndpoint } from '../postgres/connect.ts';
import { ensurePublication, readServerFacts, readSlot, resolveTables, tablesByOid, type ServerFacts, type TableRef } from '../postgres/catalog.ts';
import { loadPgTypes } from '../postgres/pg-types.ts';
import { partitionRoot } from '../postgres/partitions.ts';
import { ReplicationSession, type ReplicationStream } from '../postgres/slot.ts';
import { FileOffsetStore } from '../offsets/file.ts';
import type { Sink } from '../sinks/sink.ts';
import { EventBatch } from '../sinks/batch.ts';
import { RelationCache, type RelationMessage } from '../source/relations.ts';
import type { PgType } from '../source/values.ts';
import { ChangeAssembler } from './changes.ts';
import { Delivery } from './delivery.ts';
import { planStartup, type StartupPlan } from './startup.ts';
import { takeInitialSnapshot } from './initial-snapshot.ts';
import type { ExportedSlot } from '../backfill/export.ts';
import { preflightForRun } from '../preflight/preflight.ts';

export interface CaptureStatus {
  readonly acked: string;
  readonly received: string;
  readonly delivered: number;
}

/** A running capture. `stopped` settles when it ends: resolved on a clean stop, rejected on failure. */
export class Capture {
  readonly stopped: Promise<void>;
  private readonly log: Logger;
  private stopRequested = false;
  private resolveStopped!: () => void;
  private rejectStopped!: (error: CdcError) => void;
  private teardown: (() => Promise<void>) | undefined;

  private constructor(log: Logger) {
    this.log = log;
    this.stopped = new Promise<void>((resolve, reject) => {
      this.resolveStopped = resolve;
      this.rejectStopped = reject;
    });
    // Observed by whoever awaits it; avoid an unhandled rejection when nobody does yet.
    this.stopped.catch(() => undefined);
  }

  /** Runs the startup checks and starts streaming. Rejects (nothing started) when a check fails. */
  static async start(config: Config, sink: Sink, log: Logger, onProgress?: (status: CaptureStatus) => void): Promise<Capture> {
    const capture = new Capture(log);
    await capture.begin(config, sink, onProgress);
    return capture;
  }

  /** Clean stop: deliver what has committed, store the checkpoint, confirm it to PostgreSQL. */
  async stop(): Promise<void> {
    if (!this.stopRequested) {
      this.stopRequested = true;
      await this.teardown?.().then(
        () => this.resolveStopped(),
        (error: unknown) => this.rejectStopped(toCdcError(error)),
      );
    }
    return this.stopped;
  }

  private async begin(config: Config, sink: Sink, onProgress?: (status: CaptureStatus) => void): Promise<void> {
    const endpoint = resolveEndpoint(config.source);
    const offsets = await FileOffsetStore.open(config.offsets);
    const cleanups: (() => Promise<unknown>)[] = [() => offsets.close()];
    const cleanup = async (): Promise<void> => {
      for (const step of cleanups.reverse()) await step().catch(() => undefined);
    };
    try {
      const checkpoint = await offsets.load();
      const query = await openConnection(endpoint, 'query', 'pgcdc-catalog');
      query.on('error', () => undefined);
      cleanups.push(() => query.end());
      const facts = await readServerFacts(query);
      await preflightForRun({ query, endpoint, config, facts, log: this.log });
      if (facts.walLevel !== 'logical') {
        throw new CdcError('SOURCE_NOT_READY', `wal_level is ${facts.walLevel} on ${describeEndpoint(endpoint)}, logical replication needs logical`, {
          hint: 'set wal_level = logical (rds.logical_replication = 1 on RDS/Aurora) and restart the server',
        });
      }
      const wanted = config.tables.map(parseTableName);
      const tables = await resolveTables(query, wanted);
      const publication = await ensurePublication(query, config.publication, tables, config.createPublication);

      const session = await ReplicationSession.open(endpoint);
      cleanups.push(() => session.close());
      const system = await session.identifySystem();
      const slot = await readSlot(query, config.slot, facts.major);
      // An initial snapshot cut short (crash, kill) cannot be continued: its exported snapshot died
      // with the connection. Take it again on a fresh slot; the sink truncates what it had written.
      const interrupted =
        checkpoint?.snapshot?.state === 'running' && checkpoint.systemId === system.systemId && checkpoint.slot === config.slot && slot?.active !== true;
      let plan: StartupPlan;
      if (interrupted) {
        this.log.warn({ slot: config.slot }, 'the initial snapshot was interrupted: taking it again on a fresh slot');
        if (slot) await session.dropSlot(config.slot);
        plan = { kind: 'create-slot' };
      } else {
        plan = planStartup({
          checkpoint,
          system,
          slot,
          slotName: config.slot,
          publication: config.publication,
          database: endpoint.database,
          offsetsPath: config.offsets,
        });
      }
      let startLsn: Lsn;
      let exported: ExportedSlot | undefined;
      if (plan.kind === 'create-slot') {
        if (config.snapshot.mode === 'initial') {
          exported = await session.createSlotExportingSnapshot(config.slot);
          startLsn = exported.consistentPoint;
        } else startLsn = (await session.createSlot(config.slot)).consistentPoint;
        this.log.info({ slot: config.slot, lsn: formatLsn(startLsn) }, 'created replication slot');
      } else startLsn = plan.startLsn;
      if (plan.kind === 'resume') this.log.info({ slot: config.slot, lsn: formatLsn(startLsn) }, 'resuming after stored checkpoint');
      if (plan.kind === 'adopt-slot' && config.snapshot.mode === 'initial') {
        this.log.warn(
          { slot: config.slot },
          'the slot existed before pgcdc first ran, so there is no consistent point to snapshot from: rows that already existed are not read (drop the slot to have pgcdc create it and take the initial snapshot)',
        );
      }

      // From here until every snapshot reader has imported the snapshot, the replication session
      // must stay idle (no command may run on it).
      await sink.open(checkpoint?.sink);
      cleanups.push(() => sink.close());
      const identity = { systemId: system.systemId, timeline: system.timeline, database: endpoint.database, slot: config.slot, publication: config.publication };
      let startPosition = checkpoint?.sink;
      if (!startPosition || exported) {
        // Store a first checkpoint before any event is written: a crash between the first write and
        // the first commit then finds a checkpoint to truncate back to, instead of unknown files.
        startPosition ??= await sink.write(EventBatch.of([]));
        await offsets.commit({
          version: 1,
          ...identity,
          lsn: formatLsn(startLsn),
          sink: startPosition,
          updatedAt: new Date().toISOString(),
          ...(exported ? { snapshot: { state: 'running' as const } } : {}),
        });
      }
      const naming = { prefix: config.topic.prefix ?? endpoint.database, database: endpoint.database, naming: config.topic.naming };
      if (exported) {
        const snapshotTables = tables.length > 0 ? tables : await resolveTables(query, publication.tables);
        const after = await takeInitialSnapshot({
          exported,
          tables: snapshotTables,
          config,
          endpoint,
          major: facts.major,
          types: await loadPgTypes(query),
          naming,
          sink,
          log: this.log,
        });
        if (after) startPosition = after;
        await offsets.commit({ version: 1, ...identity, lsn: formatLsn(startLsn), sink: startPosition, updatedAt: new Date().toISOString(), snapshot: { state: 'done' } });
      }
      const loop = new StreamLoop({
        config,
        endpoint,
        facts,
        query,
        session,
        sink,
        offsets,
        tables,
        log: this.log,
        identity,
        startLsn,
        skipBefore: plan.kind === 'resume' ? plan.skipBefore : 0,
        startPosition,
        onFailure: (error) => {
          if (this.stopRequested) return;
          this.stopRequested = true;
          void loop.abort().finally(() => void cleanup().finally(() => this.rejectStopped(error)));
        },
        onProgress,
      });
      await loop.start();
      this.teardown = async () => {
        await loop.stop();
        await cleanup();
      };
    } catch (error) {
      await cleanup();
      throw toCdcError(error);
    }
  }
}

interface LoopDeps {
  config: Config;
  endpoint: SourceEndpoint;
  facts: ServerFacts;
  query: pg.Client;
  session: ReplicationSession;
  sink: Sink;
  offsets: FileOffsetStore;
  tables: readonly TableRef[];
  log: Logger;
  identity: { systemId: string; timeline: number; database: string; slot: string; publication: string };
  startLsn: Lsn;
  skipBefore: Lsn;
  startPosition: Record<string, unknown>;
  onFailure: (error: CdcError) => void;
  onProgress: ((status: CaptureStatus) => void) | undefined;
}

/** The streaming part of a capture, from START_REPLICATION to CopyDone. */
class StreamLoop {
  private readonly deps: LoopDeps;
  private readonly decoder = new PgoutputDecoder({ protoVersion: 1 });
  private readonly types = new Map<number, PgType>();
  private readonly tableFacts = new Map<number, TableRef>();
  private readonly rootsLogged = new Set<number>();
  private readonly relations: RelationCache;
  private readonly assembler: ChangeAssembler;
  private readonly delivery: Delivery;
  private stream: ReplicationStream | undefined;
  private statusTimer: NodeJS.Timeout | undefined;
  /** Frames that arrived while a Relation lookup was pending. */
  private backlog: Buffer[] = [];
  private blocked = false;
  private pressure = false;
  private stopping = false;
  private received: Lsn;
  private lastWalEnd: Lsn = 0;

  constructor(deps: LoopDeps) {
    this.deps = deps;
    this.received = deps.startLsn;
    for (const table of deps.tables) this.tableFacts.set(table.oid, table);
    const values = deps.config.values;
    this.relations = new RelationCache((oid) => this.types.get(oid), values);
    this.delivery = new Delivery(
      deps.sink,
      deps.offsets,
      deps.identity,
      { lsn: deps.startLsn, position: deps.startPosition },
      deps.config.batch,
      {
        pressure: (high) => {
          this.pressure = high;
          this.updateFlow();
        },
        failed: (error) => deps.onFailure(error),
        stored: () => undefined,
      },
    );
    this.assembler = new ChangeAssembler(this.relations, this.delivery, {
      naming: { prefix: deps.config.topic.prefix ?? deps.identity.database, database: deps.identity.database, naming: deps.config.topic.naming },
      skipBefore: deps.skipBefore,
    });
  }

  async start(): Promise<void> {
    for (const [oid, type] of await loadPgTypes(this.deps.query)) this.types.set(oid, type);
    const stream = this.deps.session.start({
      slot: this.deps.config.slot,
      startLsn: this.deps.startLsn,
      publication: this.deps.config.publication,
      protoVersion: 1,
      messages: this.deps.facts.major >= 14,
    });
    this.stream = stream;
    stream.on('frame', (frame) => this.onFrame(frame));
    stream.on('error', (error) => this.fail(error));
    stream.on('end', () => this.fail(new CdcError('REPLICATION_STREAM_FAILED', 'the server ended the replication stream', { retryable: true })));
    // Status updates well inside wal_sender_timeout (a third of it, as the walsender itself assumes).
    const timeout = this.deps.facts.walSenderTimeoutMs;
    const interval = timeout > 0 ? Math.min(this.deps.config.statusIntervalMs, Math.max(100, Math.floor(timeout / 3))) : this.deps.config.statusIntervalMs;
    this.statusTimer = setInterval(() => void this.tick(), interval);
    this.deps.log.info({ source: describeEndpoint(this.deps.endpoint), slot: this.deps.config.slot, publication: this.deps.config.publication, from: formatLsn(this.deps.startLsn) }, 'streaming');
  }

  /** Clean stop: stop reading, deliver committed transactions, confirm, CopyDone. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.statusTimer) clearInterval(this.statusTimer);
    await this.delivery.drain();
    await this.delivery.confirmIdle(this.lastWalEnd, this.assembler.inTransaction || this.blocked);
    this.delivery.dispose();
    this.stream?.sendStatus(this.received, this.delivery.acked);
    await this.stream?.stop();
    this.deps.log.info({ acked: formatLsn(this.delivery.acked), delivered: this.delivery.delivered, skipped: this.assembler.skippedTransactions }, 'stopped');
  }

  /** Stop after a failure: nothing more is acknowledged. */
  async abort(): Promise<void> {
    this.stopping = true;
    if (this.statusTimer) clearInterval(this.statusTimer);
    this.delivery.dispose();
    await this.deps.session.close();
  }

  private fail(error: CdcError): void {
    if (this.stopping) return;
    this.stopping = true;
    this.deps.onFailure(error);
  }

  private async tick(): Promise<void> {
    if (this.stopping) return;
    try {
      await this.delivery.confirmIdle(this.lastWalEnd, this.assembler.inTransaction || this.blocked);
      this.stream?.sendStatus(this.received, this.delivery.acked);
      this.deps.onProgress?.({ acked: formatLsn(this.delivery.acked), received: formatLsn(this.received), delivered: this.delivery.delivered });
    } catch (error) {
      this.fail(toCdcError(error));
    }
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
      if (parsed.replyRequested) this.stream?.sendStatus(this.received, this.delivery.acked);
      return;
    }
    if (parsed.walStart > this.received) this.received = parsed.walStart;
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
        'changes of this partition are reported under its partitioned table (publish_via_partition_root = true on the publication makes PostgreSQL do this itself)',
      );
    }
    this.relations.apply(message, fresh ? { primaryKey: fresh.primaryKey, root } : { primaryKey: [], root });
    this.assembler.relationChanged(message.relationId);
  }
}
