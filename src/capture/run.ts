/**
 * A capture from start to stop: preflight, the restart rule (startup.ts), slot creation, the
 * initial snapshot, then streaming (stream-loop.ts) until a clean stop or a failure.
 */
import type { Config } from '../config.ts';
import { parseTableName } from '../config.ts';
import { CdcError, toCdcError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { formatLsn } from '../protocol/lsn.ts';
import type { Lsn } from '../protocol/messages.ts';
import { describeEndpoint, openConnection, resolveEndpoint } from '../postgres/connect.ts';
import { ensurePublication, readServerFacts, readSlot, resolveTables } from '../postgres/catalog.ts';
import { loadPgTypes } from '../postgres/pg-types.ts';
import { ReplicationSession } from '../postgres/slot.ts';
import { FileOffsetStore } from '../offsets/file.ts';
import type { Sink } from '../sinks/sink.ts';
import { EventBatch } from '../sinks/batch.ts';
import { planStartup, type StartupPlan } from './startup.ts';
import { takeInitialSnapshot } from './initial-snapshot.ts';
import { StreamLoop } from './stream-loop.ts';
import { checkStreamingSupported } from './streamed-transactions.ts';
import type { TopicNaming } from '../envelope/json.ts';
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
      checkStreamingSupported(config.streaming, facts.major, describeEndpoint(endpoint));
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
      const naming: TopicNaming = { prefix: config.topic.prefix ?? endpoint.database, database: endpoint.database, naming: config.topic.naming };
      const types = await loadPgTypes(query);
      if (exported) {
        const snapshotTables = tables.length > 0 ? tables : await resolveTables(query, publication.tables);
        const after = await takeInitialSnapshot({
          exported,
          tables: snapshotTables,
          config,
          endpoint,
          major: facts.major,
          types,
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
        naming,
        types,
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
      loop.start();
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
