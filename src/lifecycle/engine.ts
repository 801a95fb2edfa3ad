/**
 * A capture from start to stop: preflight, the restart rule (lifecycle/restart-rule.ts) and the snapshot mode
 * (lifecycle/snapshot-mode.ts), slot creation, the initial snapshot, then streaming (pipeline/stream-loop.ts, with
 * incremental snapshots alongside) until a clean stop or a failure. Snapshot mode initial_only
 * reads the tables and stops (snapshot-only.ts). The source's checks are source-checks.ts, the topic naming
 * selection/topic-naming.ts, the slot's creation and the first checkpoint slot-start.ts.
 */
import type { Config } from '../config.ts';
import { parseTableName } from '../selection/table-name.ts';
import { CdcError, toCdcError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { openConnection, resolveEndpoint } from '../postgres/connect.ts';
import { ensurePublication, readSlot } from '../postgres/catalog.ts';
import { loadPgTypes } from '../postgres/pg-types.ts';
import { ReplicationSession } from '../postgres/slot.ts';
import { openOffsetStore, sideFilesBase } from '../offsets/open.ts';
import { SlotOwnership } from './slot-ownership.ts';
import type { Sink } from '../sinks/contract.ts';
import { StreamLoop } from '../pipeline/stream-loop.ts';
import { decideStartup, requestStartSnapshot } from './snapshot-mode.ts';
import { snapshotOnlyDisplay, snapshotOnlyTables, takeSnapshotOnly } from './snapshot-only.ts';
import { runInitialPhase } from './initial-phase.ts';
import { EngineEventBus } from '../observability/event-bus.ts';
import { StatusTracker, type EngineStatus } from '../observability/status-tracker.ts';
import type { EngineEvents } from '../core/engine-events.ts';
import { topicName } from '../envelope/topics.ts';
import type { TableName } from '../snapshot/initial-reader.ts';
import { resolveMethod } from '../snapshot/watermarks.ts';
import { truncateNotDecoded } from '../preflight/rules.ts';
import { filterTables } from '../selection/patterns.ts';
import type { ResumeState } from '../offsets/store.ts';
import { recordUpgrade } from './upgrade.ts';
import { dropUncapturedSnapshots, watchSnapshotRequests } from './snapshot-requests.ts';
import { pauseBeforeStreamForTest } from './test-pause.ts';
import { checkSource } from './source-checks.ts';
import { topicNaming } from '../selection/topic-naming.ts';
import { startSlot, storeFirstCheckpoint } from './slot-start.ts';
import { ensureSlotFailover, slotFailoverFor, timelineHistoryFor } from './failover-slot.ts';
import { Heartbeat } from '../pipeline/heartbeat.ts';
import { isHeartbeatTable } from '../selection/heartbeat-table.ts';
import { openToastStore } from '../pipeline/toast.ts';
import { announceRecovery, readNextXid, requestRecovery } from './lost-slot.ts';
import { XidHorizonSampler } from './xid-horizon.ts';
import { loadRecoveryDeletes } from './recovery-keys.ts';
import { formatLsn } from '../protocol/lsn.ts';

/** The longest one teardown step may take after a fault (see `bounded`). */
const TEARDOWN_STEP_MS = 5000;

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
  static async start(
    config: Config,
    sink: Sink,
    log: Logger,
    events?: EngineEvents,
    ownership?: SlotOwnership,
  ): Promise<Capture> {
    const capture = new Capture(log, events);
    await capture.begin(config, sink, ownership ?? new SlotOwnership());
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

  /** `ownership`: the walsenders of earlier attempts in this process (a supervisor's retries share it). */
  private async begin(config: Config, sink: Sink, ownership: SlotOwnership): Promise<void> {
    this.events.emit({ type: 'state', state: 'starting' });
    const endpoint = resolveEndpoint(config.source);
    const { store: offsets, file: offsetsFile } = await openOffsetStore(config.offsets, sink, this.log);
    const cleanups: (() => Promise<unknown>)[] = [() => offsets.close()];
    const cleanup = async (): Promise<void> => {
      for (const step of cleanups.reverse()) await bounded(step());
    };
    try {
      const query = await openConnection(endpoint, 'query', 'pgcdc-catalog');
      query.on('error', () => undefined);
      cleanups.push(() => query.end());
      // Before the offsets are loaded: a sink that stores them (Kafka) takes its identity over there.
      await ownership.refuseIfTakenOver(query, config.slot);
      const checkpoint = await offsets.load();
      if (offsetsFile?.upgradedFrom !== undefined) {
        this.log.warn(
          { offsets: offsetsFile.path, from: offsetsFile.upgradedFrom },
          'the offsets file was written by an earlier pgcdc without a checksum: accepted this once and ' +
            'rewritten with one',
        );
      }
      const mode = config.snapshot.mode;
      const { facts, selection } = await checkSource(config, endpoint, query, this.log);
      const tables = selection.tables;
      const naming = topicNaming(config, endpoint.database);
      // Before the slot is used: a destination that is missing (and may not be created) stops pgcdc
      // here. Routing may send several tables to one topic: each is named once.
      if (sink.prepareTopics) await sink.prepareTopics([...new Set(tables.map((table) => topicName(naming, table)))]);
      const types = await loadPgTypes(query);
      const signalTable = config.signalTable ? parseTableName(config.signalTable) : undefined;
      const method = resolveMethod(config.snapshot.method, facts.major, signalTable);
      if (typeof method !== 'string' && config.snapshot.method !== 'auto')
        throw new CdcError('CONFIG_INVALID', method.unavailable);

      if (mode === 'initial_only') {
        const chosen = snapshotOnlyTables(config, selection);
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
          display: await snapshotOnlyDisplay(config, query, chosen, this.log),
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
      const failover = await slotFailoverFor(config, query, facts.major);
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
        timelineHistory: await timelineHistoryFor(session, checkpoint, system, this.log),
      });
      const { plan } = startup;
      if (plan.kind !== 'create-slot') await ensureSlotFailover(session, config.slot, slot, failover, this.log);
      let progress = dropUncapturedSnapshots(startup.progress, selection, this.log);

      const { recovery } = startup;
      const slotStart = await startSlot(
        session,
        config.slot,
        plan,
        recovery === undefined && mode !== 'never' && snapshotTables.length > 0,
        this.log,
        failover,
      );
      ownership.took(session.backendPid);
      const { startLsn, exported } = slotStart;
      if (recovery) {
        const horizon = announceRecovery(
          recovery,
          await readNextXid(query, facts.major),
          snapshotTables.length,
          this.log,
          config.onLostDeletes,
        );
        progress = {
          ...progress,
          incremental: requestRecovery(progress.incremental, formatLsn(startLsn), snapshotTables, horizon),
        };
      }
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
      const recoveryDeletes = await loadRecoveryDeletes({
        config,
        sink,
        position: startup.sinkFrom ?? checkpoint?.sink,
        progress,
        naming,
        log: this.log,
      });
      let startPosition = await storeFirstCheckpoint({
        sink,
        offsets,
        identity,
        start: slotStart,
        position: startup.sinkFrom ?? checkpoint?.sink,
        progress,
        rewind: startup.rewind,
      });
      const upgraded = plan.kind === 'resume' && plan.upgradedFrom !== undefined;
      if (plan.kind === 'resume' && upgraded && checkpoint)
        await recordUpgrade({ offsets, checkpoint, identity, plan, log: this.log });
      const horizonSeed =
        plan.kind === 'resume' && checkpoint?.systemId === system.systemId && checkpoint.timeline === system.timeline
          ? checkpoint.xidHorizon
          : undefined;
      const horizon = new XidHorizonSampler(endpoint, facts.major, this.log, horizonSeed);
      cleanups.push(() => horizon.close());
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
        lastCommit: plan.kind === 'resume' && !upgraded ? checkpoint?.lastCommit : undefined,
        skipBefore: plan.kind === 'resume' ? plan.skipBefore : 0,
        startPosition,
        progress,
        method,
        signalTable,
        xidHorizon: (lsn) => horizon.at(lsn),
        recoveryDeletes,
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
