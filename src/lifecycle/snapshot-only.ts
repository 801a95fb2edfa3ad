/**
 * Snapshot mode `initial_only`: read the existing rows of the selected tables, deliver them as op
 * `r` events, and stop. No slot is created and nothing is streamed, so it needs neither the
 * REPLICATION privilege nor a publication, and works on a standby.
 *
 * The snapshot is exported from an ordinary REPEATABLE READ transaction (pg_export_snapshot) so
 * parallel readers see the same state. Progress is stored after every chunk: a crash resumes
 * after the last stored chunk, reading the rest in a new snapshot (a later state than the rows
 * already delivered, which is all a one-off copy without a stream can promise; the log says so).
 */
import type pg from 'pg';
import type { Config } from '../config.ts';
import { CdcError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { formatLsn, parseLsn } from '../protocol/lsn.ts';
import type { TableRef } from '../postgres/catalog.ts';
import type { SourceEndpoint } from '../postgres/connect.ts';
import type { Checkpoint, OffsetStore } from '../offsets/store.ts';
import type { Sink } from '../sinks/contract.ts';
import { EventBatch } from '../sinks/batch.ts';
import type { PgType } from '../source/values.ts';
import type { TopicNaming } from '../envelope/topics.ts';
import { takeInitialSnapshot } from '../snapshot/initial.ts';
import { isKeyless } from './snapshot-mode.ts';
import { sameTable } from '../snapshot/resume-state.ts';
import { estimateRows, SnapshotBars } from '../observability/snapshot-bars.ts';
import { filterTables } from '../selection/patterns.ts';
import type { TableSelection } from '../selection/table-selection.ts';

export interface SnapshotOnlyInput {
  readonly config: Config;
  readonly endpoint: SourceEndpoint;
  /** A query connection: it exports the snapshot and stays idle until the readers imported it. */
  readonly query: pg.Client;
  readonly major: number;
  readonly tables: readonly TableRef[];
  readonly types: ReadonlyMap<number, PgType>;
  readonly naming: TopicNaming;
  readonly sink: Sink;
  readonly offsets: OffsetStore;
  readonly checkpoint: Checkpoint | undefined;
  readonly log: Logger;
  readonly display?: SnapshotBars | undefined;
}

export async function takeSnapshotOnly(input: SnapshotOnlyInput): Promise<void> {
  const { checkpoint, config, log, query } = input;
  if (checkpoint && checkpoint.snapshot?.only !== true) {
    throw new CdcError(
      'CONFIG_INVALID',
      `the offsets file ${config.offsets} belongs to a streaming capture, not to an initial_only snapshot`,
      {
        hint: 'give the initial_only run its own --offsets file and --out directory',
      },
    );
  }
  if (checkpoint?.snapshot?.state === 'done') {
    log.info(
      { offsets: config.offsets },
      'initial_only: the snapshot is already complete; nothing to do (remove the offsets file and the output ' +
        'to take it again)',
    );
    return;
  }
  // A keyless table is read by ctid: continued as of now, a row updated since could be read in its
  // old version before and its new one (on a later page) now. Such a snapshot starts over, the
  // output cut back to where it began.
  const unfinishedKeyless = input.tables.filter(
    (t) => isKeyless(t) && checkpoint?.snapshot?.tables?.find((d) => sameTable(d, t))?.cursor.done !== true,
  );
  const startOver =
    checkpoint?.snapshot?.start !== undefined && unfinishedKeyless.length > 0 ? checkpoint.snapshot.start : undefined;
  if (startOver !== undefined) {
    log.warn(
      { tables: unfinishedKeyless.map((t) => `${t.schema}.${t.table}`) },
      'initial_only: continuing the interrupted snapshot could read a row of these tables without a key twice ' +
        '(one updated since), so it is taken again from its start, the output cut back to where it began',
    );
  } else if (checkpoint)
    log.warn(
      {},
      'initial_only: continuing an interrupted snapshot after its last stored chunk; the remaining rows are ' +
        'read as of now',
    );

  // Before the exporting transaction: a failing query would abort it.
  const systemId = await systemIdentifier(query);
  await query.query('begin isolation level repeatable read read only');
  try {
    const { rows } = await query.query<{ name: string; lsn: string | null }>(
      `select pg_export_snapshot() as name, (case when pg_is_in_recovery() then pg_last_wal_replay_lsn() else ` +
        `pg_current_wal_lsn() end)::text as lsn`,
    );
    const exported = rows[0];
    if (!exported?.lsn) throw new CdcError('SOURCE_QUERY_FAILED', 'could not export a snapshot for initial_only');
    const lsn = parseLsn(exported.lsn);
    const identity = {
      version: 2 as const,
      systemId,
      timeline: 1,
      database: input.endpoint.database,
      slot: config.slot,
      publication: config.publication,
    };
    const resumeAt = startOver ?? checkpoint?.sink;
    await input.sink.open(resumeAt);
    const first = resumeAt ?? (await input.sink.write(EventBatch.of([])));
    const start = checkpoint?.snapshot?.start ?? (checkpoint ? undefined : first);
    const lsnText = formatLsn(lsn);
    const store = (
      sink: Checkpoint['sink'],
      tables: NonNullable<Checkpoint['snapshot']>['tables'],
      state: 'running' | 'done',
    ): Promise<void> =>
      input.offsets.commit({
        ...identity,
        lsn: lsnText,
        sink,
        updatedAt: new Date().toISOString(),
        snapshot: { state, only: true, tables, ...(start ? { start } : {}) },
      });
    if (!checkpoint || startOver !== undefined) await store(first, [], 'running');
    const result = await takeInitialSnapshot({
      exported: { slot: config.slot, consistentPoint: lsn, snapshotName: exported.name },
      tables: input.tables,
      config,
      endpoint: input.endpoint,
      major: input.major,
      types: input.types,
      naming: input.naming,
      sink: input.sink,
      log,
      resume: startOver !== undefined ? undefined : checkpoint?.snapshot?.tables,
      checkpoint: (position, tables) => store(position, tables, 'running'),
      onTablesRead: input.display ? (tables) => input.display?.update(tables) : undefined,
    });
    await store(result.position ?? first, result.tables, 'done');
    log.info({ tables: input.tables.length }, 'initial_only: snapshot complete');
  } finally {
    await query.query('commit').catch(() => undefined);
    // Settles its writes and releases its connections (a Kafka producer would keep the process alive).
    await input.sink.close().catch(() => undefined);
  }
}

/** The cluster's system identifier, when the user may read it (pg_control_system). */
async function systemIdentifier(query: pg.Client): Promise<string> {
  try {
    const { rows } = await query.query<{ id: string }>('select system_identifier::text as id from pg_control_system()');
    return rows[0]?.id ?? '0';
  } catch {
    return '0';
  }
}

/**
 * The tables snapshot mode initial_only reads: the selection's, which must name them (it reads no publication)
 * and match at least one, less those `snapshot.include` and `snapshot.skip` leave out.
 */
export function snapshotOnlyTables(config: Config, selection: TableSelection): readonly TableRef[] {
  if (selection.fromPublication)
    throw new CdcError(
      'CONFIG_INVALID',
      'snapshot mode initial_only needs --tables or --tables-file (it reads no publication)',
    );
  if (selection.tables.length === 0)
    throw new CdcError('CONFIG_INVALID', 'the selection matches no table (every match is excluded)', {
      hint: 'check --tables and --exclude-tables',
    });
  return filterTables(selection.tables, config.snapshot.include, config.snapshot.skip);
}

/** The progress display of a snapshot of `tables`, or undefined when switched off. */
export async function snapshotOnlyDisplay(
  config: Config,
  query: pg.Client,
  tables: readonly TableRef[],
  log: Logger,
): Promise<SnapshotBars | undefined> {
  if (config.snapshot.progress === 'off' || tables.length === 0) return undefined;
  return new SnapshotBars(config.snapshot.progress, await estimateRows(query, tables), log);
}
