/**
 * A capture from start to stop: preflight, the restart rule (lifecycle/restart-rule.ts) and the snapshot mode
 * (lifecycle/snapshot-mode.ts), slot creation, the initial snapshot, then streaming (pipeline/stream-loop.ts, with
 * incremental snapshots alongside) until a clean stop or a failure. Snapshot mode initial_only
 * reads the tables and stops (snapshot-only.ts).
 */
import type pg from 'pg';
import type { Config } from '../config.ts';
import { parseTableName } from '../selection/table-name.ts';
import { CdcError, toCdcError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { formatLsn } from '../protocol/lsn.ts';
import type { Lsn } from '../protocol/messages.ts';
import { describeEndpoint, openConnection, resolveEndpoint } from '../postgres/connect.ts';
import { ensurePublication, readServerFacts, readSlot, type TableRef } from '../postgres/catalog.ts';
import { loadPgTypes } from '../postgres/pg-types.ts';
import { ReplicationSession } from '../postgres/slot.ts';
import { openOffsetStore, sideFilesBase } from '../offsets/open.ts';
import type { Sink } from '../sinks/contract.ts';
import { EventBatch } from '../sinks/batch.ts';
import { StreamLoop } from '../pipeline/stream-loop.ts';
import { checkStreamingSupported } from '../pipeline/large-transactions.ts';
import { decideStartup, requestStartSnapshot } from './snapshot-mode.ts';
import { takeSnapshotOnly } from './snapshot-only.ts';
import { runInitialPhase } from './initial-phase.ts';
import { estimateRows, SnapshotBars } from '../observability/snapshot-bars.ts';
import { EngineEventBus } from '../observability/event-bus.ts';
import { StatusTracker, type EngineStatus } from '../observability/status-tracker.ts';
import type { EngineEvents } from '../core/engine-events.ts';
import { loadShaping } from '../envelope/shaping.ts';
import { topicName, type TopicNaming } from '../envelope/topics.ts';
import type { ExportedSlot } from '../postgres/exported-snapshot.ts';
import type { TableName } from '../snapshot/initial-reader.ts';
import { resolveMethod } from '../snapshot/watermarks.ts';
import { preflightForRun } from '../preflight/preflight.ts';
import { truncateNotDecoded } from '../preflight/rules.ts';
import { filterTables, parseTablePattern, tableMatches } from '../selection/patterns.ts';
import { requireMatched, resolveSelection } from '../selection/table-selection.ts';
import type { ResumeState } from '../offsets/store.ts';
import { dropUncapturedSnapshots, watchSnapshotRequests } from './snapshot-requests.ts';
import { pauseBeforeStreamForTest } from './test-pause.ts';

/** The longest one teardown step may take after a fault (see `bounded`). */
const TEARDOWN_STEP_MS = 5000;
import { Heartbeat } from '../pipeline/heartbeat.ts';
import { isHeartbeatTable } from '../selection/heartbeat-table.ts';
import { openToastStore } from '../pipeline/toast.ts';

/** A running capture. `stopped` settles when it ends: resolved on a clean stop, rejected on failure. */
export class Capture {
  readonly stopped: Promise<void>;
  private readonly log: Logger;
  private stopRequested = false;
  private resolveStopped!: () => void;
  private rejectStopped!: (error: CdcError) => void;
  private teardown: (() => Promise<void>) | undefined;
  private loop: StreamLoop | undefined;
  /** Every event of this capture goes through `events`: to `tracker` and to the caller's listener. */
  private readonly events = new EngineEventBus();
  private readonly tracker = new StatusTracker();

  private constructor(log: Logger, listener: EngineEvents | undefined) {
    this.log = log;
    this.events.subscribe((event) => this.tracker.emit(event));
    if (listener) this.events.subscribe((event) => listener.emit(event));
    this.stopped = new Promise<void>((resolve, reject) => {
      this.resolveStopped = resolve;
      this.rejectStopped = reject;
    });
    // Observed by whoever awaits it; this handler also keeps a rejection from being unhandled.
    this.stopped.then(
      () => this.events.emit({ type: 'state', state: 'stopped' }),
      (error: CdcError) => this.stoppedBy(error),
    );
  }

  /**
   * Runs the startup checks and starts streaming. Rejects (nothing started) when a check fails.
   * `events` hears every engine event (core/engine-events.ts), start-up included.
   */
  static async start(config: Config, sink: Sink, log: Logger, events?: EngineEvents): Promise<Capture> {
    const capture = new Capture(log, events);
    await capture.begin(config, sink);
    return capture;
  }

  /** The capture's status now, folded from its events (observability/status-tracker.ts). */
  status(): EngineStatus {
    return this.tracker.status();
  }

  /** The snapshot progress as it will be stored next (undefined before streaming started). */
  get resumeState(): ResumeState | undefined {
    return this.loop?.resumeState;
  }

  /** Asks for an incremental snapshot of `tables` (a `pgcdc snapshot` request with this id). */
  requestSnapshot(id: string, tables: readonly TableName[]): void {
    this.loop?.requestSnapshot(id, tables);
  }

  /** Clean stop: deliver what has committed, store the checkpoint, confirm it to PostgreSQL. */
  async stop(): Promise<void> {
    if (!this.stopRequested) {
      this.stopRequested = true;
      this.events.emit({ type: 'state', state: 'stopping' });
      await this.teardown?.().then(
        () => this.resolveStopped(),
        (error: unknown) => this.rejectStopped(toCdcError(error)),
      );
    }
    return this.stopped;
  }

  private stoppedBy(error: CdcError): void {
    this.events.emit({ type: 'fault', code: error.code, message: error.message });
    this.events.emit({ type: 'state', state: 'stopped' });
  }

  private async begin(config: Config, sink: Sink): Promise<void> {
    this.events.emit({ type: 'state', state: 'starting' });
    const endpoint = resolveEndpoint(config.source);
    const { store: offsets, file: offsetsFile } = await openOffsetStore(config.offsets, sink, this.log);
    const cleanups: (() => Promise<unknown>)[] = [() => offsets.close()];
    const cleanup = async (): Promise<void> => {
      for (const step of cleanups.reverse()) await bounded(step());
    };
    try {
      const checkpoint = await offsets.load();
      if (offsetsFile?.upgradedFrom !== undefined) {
        this.log.warn(
          { offsets: offsetsFile.path, from: offsetsFile.upgradedFrom },
          'the offsets file was written by an earlier pgcdc without a checksum: accepted this once and ' +
            'rewritten with one',
        );
      }
      const query = await openConnection(endpoint, 'query', 'pgcdc-catalog');
      query.on('error', () => undefined);
      cleanups.push(() => query.end());
      const facts = await readServerFacts(query);
      const mode = config.snapshot.mode;
      // The selection, once, for every mode: the preflight, the snapshots, the stream and requests.
      const selection = await resolveSelection(query, config);
      requireMatched(selection);
      if (mode !== 'initial_only') await preflightForRun({ query, endpoint, config, selection, facts, log: this.log });
      if (facts.walLevel !== 'logical' && mode !== 'initial_only') {
        throw new CdcError(
          'SOURCE_NOT_READY',
          `wal_level is ${facts.walLevel} on ${describeEndpoint(endpoint)}, logical replication needs logical`,
          {
            hint: 'set wal_level = logical (rds.logical_replication = 1 on RDS/Aurora) and restart the server',
          },
        );
      }
      checkStreamingSupported(config.streaming, facts.major, describeEndpoint(endpoint));
      if (config.origin === 'none' && facts.major < 16) {
        throw new CdcError(
          'CONFIG_INVALID',
          `origin: none needs PostgreSQL 16 or later, and ${describeEndpoint(endpoint)} runs PostgreSQL ${facts.major}`,
          {
            hint: 'remove origin: none (the default, any, delivers changes whatever their origin)',
          },
        );
      }
      const tables = selection.tables;
      const naming: TopicNaming = {
        prefix: config.topic.prefix ?? endpoint.database,
        database: endpoint.database,
        naming: config.topic.naming,
        envelope: {
          format: config.envelope.format,
          unavailableValue: config.toast.placeholder,
          type: config.envelope.type,
          deletes: config.envelope.deletes,
        },
        shaping: loadShaping(config.shaping, (text) => {
          const pattern = parseTablePattern(text);
          return (schema, table) => tableMatches(pattern, schema, table);
        }),
      };
      // Before the slot is used: a destination that is missing (and may not be created) stops pgcdc
      // here. Routing may send several tables to one topic: each is named once.
      if (sink.prepareTopics) await sink.prepareTopics([...new Set(tables.map((table) => topicName(naming, table)))]);
      const types = await loadPgTypes(query);
      const signalTable = config.signalTable ? parseTableName(config.signalTable) : undefined;
      const method = resolveMethod(config.snapshot.method, facts.major, signalTable);
      if (typeof method !== 'string' && config.snapshot.method !== 'auto')
        throw new CdcError('CONFIG_INVALID', method.unavailable);

      if (mode === 'initial_only') {
        if (selection.fromPublication)
          throw new CdcError(
            'CONFIG_INVALID',
            'snapshot mode initial_only needs --tables or --tables-file (it reads no publication)',
          );
        if (tables.length === 0)
          throw new CdcError('CONFIG_INVALID', 'the selection matches no table (every match is excluded)', {
            hint: 'check --tables and --exclude-tables',
          });
        const chosen = filterTables(tables, config.snapshot.include, config.snapshot.skip);
        this.events.emit({ type: 'state', state: 'snapshotting' });
        await takeSnapshotOnly({
          config,
          endpoint,
          query,
          major: facts.major,
          tables: chosen,
          types,
          naming,
          sink,
          offsets,
          checkpoint,
          log: this.log,
          display: await this.display(config, query, chosen),
        });
        await cleanup();
        this.teardown = () => Promise.resolve();
        this.resolveStopped();
        return;
      }

      const publication = await ensurePublication(
        query,
        config.publication,
        tables,
        config.createPublication,
        facts.major,
      );
      const truncate = truncateNotDecoded(facts.major);
      if (truncate) this.log.warn({ code: truncate.code, fix: truncate.fix }, truncate.message);
      const heartbeat = await Heartbeat.open(endpoint, config.heartbeat, this.log);
      cleanups.push(() => heartbeat.close());
      // The heartbeat table's rows are pgcdc's own: never read as events.
      const snapshotTables = filterTables(tables, config.snapshot.include, config.snapshot.skip).filter(
        (t) => !isHeartbeatTable(config.heartbeat, t),
      );
      const session = await ReplicationSession.open(endpoint);
      cleanups.push(() => session.close());
      const system = await session.identifySystem();
      const slot = await readSlot(query, config.slot, facts.major);
      const startup = await decideStartup({
        config,
        checkpoint,
        system,
        slot,
        database: endpoint.database,
        method,
        snapshotTables,
        session,
        log: this.log,
      });
      const { plan } = startup;
      let progress = dropUncapturedSnapshots(startup.progress, selection, this.log);

      let startLsn: Lsn;
      let exported: ExportedSlot | undefined;
      if (plan.kind === 'create-slot') {
        if (mode !== 'never' && snapshotTables.length > 0) {
          exported = await session.createSlotExportingSnapshot(config.slot);
          startLsn = exported.consistentPoint;
        } else startLsn = (await session.createSlot(config.slot)).consistentPoint;
        this.log.info({ slot: config.slot, lsn: formatLsn(startLsn) }, 'created replication slot');
      } else startLsn = plan.startLsn;
      if (plan.kind === 'resume')
        this.log.info({ slot: config.slot, lsn: formatLsn(startLsn) }, 'resuming after stored checkpoint');
      progress = requestStartSnapshot({ plan, mode, method, progress, snapshotTables, startLsn, log: this.log });

      // From here until every snapshot reader has imported the snapshot, the replication session
      // must stay idle (no command may run on it).
      // Closed even when open fails half-way: a sink may hold connections by then.
      cleanups.push(() => sink.close());
      await sink.open(startup.sinkFrom ?? checkpoint?.sink);
      const identity = {
        systemId: system.systemId,
        timeline: system.timeline,
        database: endpoint.database,
        slot: config.slot,
        publication: config.publication,
      };
      let startPosition = startup.sinkFrom ?? checkpoint?.sink;
      if (!startPosition || exported || startup.rewind) {
        // Store a first checkpoint before any event is written: a crash between the first write and
        // the first commit then finds a checkpoint to truncate back to, instead of unknown files.
        startPosition ??= await sink.write(EventBatch.of([]));
        const first = {
          version: 2 as const,
          ...identity,
          lsn: formatLsn(startLsn),
          sink: startPosition,
          updatedAt: new Date().toISOString(),
          ...(exported ? { snapshot: { state: 'running' as const, tables: [], start: startPosition } } : {}),
          ...(progress.incremental ? { incremental: progress.incremental } : {}),
        };
        if (startup.rewind) await offsets.replace(first);
        else await offsets.commit(first);
      }
      const toastStore = await openToastStore(config, plan.kind === 'resume' ? checkpoint?.lsn : undefined);
      if (exported) {
        const phase = await runInitialPhase({
          config,
          query,
          endpoint,
          major: facts.major,
          generatedColumns: publication.generatedColumns,
          types,
          naming,
          sink,
          offsets,
          exported,
          tables: snapshotTables,
          identity,
          startPosition,
          progress,
          method,
          events: this.events,
          log: this.log,
        });
        startPosition = phase.startPosition;
        progress = phase.progress;
      }
      // Set once the requests are watched (below), which needs the loop.
      let stopRequests = (): void => undefined;
      let takenRequests = (_ids: readonly string[]): void => undefined;
      const loop = new StreamLoop({
        config,
        endpoint,
        facts,
        query,
        session,
        sink,
        offsets,
        tables,
        selection,
        generatedColumns: publication.generatedColumns,
        log: this.log,
        identity,
        naming,
        types,
        heartbeat,
        toastStore,
        startLsn,
        replayFrom: plan.kind === 'resume' ? plan.replayFrom : startLsn,
        lastCommit: plan.kind === 'resume' ? checkpoint?.lastCommit : undefined,
        skipBefore: plan.kind === 'resume' ? plan.skipBefore : 0,
        startPosition,
        progress,
        method,
        signalTable,
        onStored: (stored) => takenRequests(stored.incremental?.requests ?? []),
        onFailure: (error) => {
          if (this.stopRequested) return;
          this.stopRequested = true;
          stopRequests();
          void bounded(loop.abort()).finally(() => void cleanup().finally(() => this.rejectStopped(error)));
        },
        onStatusSent: (positions) => this.events.emit({ type: 'status-sent', ...positions }),
        events: this.events,
      });
      this.loop = loop;
      await pauseBeforeStreamForTest();
      loop.start();
      this.events.emit({ type: 'state', state: 'streaming' });
      const requests = await watchSnapshotRequests({
        offsets: sideFilesBase(config.offsets, config.slot, config.sink.kind),
        selection,
        taken: checkpoint?.incremental?.requests ?? [],
        request: (id, names) => loop.requestSnapshot(id, names),
        log: this.log,
      });
      stopRequests = () => requests.stop();
      takenRequests = (ids) => requests.taken(ids);
      // The loop may have failed while the list of captured tables was written.
      if (this.stopRequested) requests.stop();
      this.teardown = async () => {
        stopRequests();
        await loop.stop();
        await cleanup();
      };
    } catch (error) {
      await cleanup();
      const failure = toCdcError(error);
      this.stoppedBy(failure);
      throw failure;
    }
  }

  /** The progress display of a snapshot of `tables`, or undefined when switched off. */
  private async display(
    config: Config,
    query: pg.Client,
    tables: readonly TableRef[],
  ): Promise<SnapshotBars | undefined> {
    if (config.snapshot.progress === 'off' || tables.length === 0) return undefined;
    return new SnapshotBars(config.snapshot.progress, await estimateRows(query, tables), this.log);
  }
}

/**
 * A teardown step that cannot hold up a restart (the supervisor starts the capture again once this
 * one is torn down): closing a client whose server vanished may never settle. Errors are dropped:
 * the step is best effort, and nothing it does acknowledges anything.
 */
async function bounded(step: Promise<unknown>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    step.catch(() => undefined),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, TEARDOWN_STEP_MS);
    }),
  ]);
  clearTimeout(timer);
}
