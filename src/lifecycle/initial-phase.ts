/**
 * The initial snapshot phase of a start that created its slot with an exported snapshot: every
 * selected table read as of the slot's consistent point, each chunk's progress stored with the
 * checkpoint, before streaming starts (engine.ts). Concurrent DDL that makes the exported snapshot
 * unreadable turns it into an online (incremental) read from the same point.
 */
import type pg from 'pg';
import type { Config } from '../config.ts';
import { CdcError } from '../core/errors.ts';
import type { EngineEvents } from '../core/engine-events.ts';
import type { Logger } from '../core/log.ts';
import type { TopicNaming } from '../envelope/topics.ts';
import { estimateRows, SnapshotBars } from '../observability/snapshot-bars.ts';
import type { Checkpoint, OffsetStore, ResumeState, SnapshotTableState } from '../offsets/store.ts';
import type { TableRef } from '../postgres/catalog.ts';
import type { SourceEndpoint } from '../postgres/connect.ts';
import type { ExportedSlot } from '../postgres/exported-snapshot.ts';
import { formatLsn } from '../protocol/lsn.ts';
import type { Sink, SinkPosition } from '../sinks/contract.ts';
import type { InitialSnapshotInput } from '../snapshot/initial.ts';
import { takeInitialSnapshot } from '../snapshot/initial.ts';
import { continueInitial } from '../snapshot/resume-state.ts';
import type { ResolvedMethod } from '../snapshot/watermarks.ts';
import type { PgType } from '../source/values.ts';
import { isKeyless, keylessInexact } from './snapshot-mode.ts';

export interface InitialPhaseInput {
  readonly config: Config;
  readonly query: pg.Client;
  readonly endpoint: SourceEndpoint;
  readonly major: number;
  readonly generatedColumns: InitialSnapshotInput['generatedColumns'];
  readonly types: ReadonlyMap<number, PgType>;
  readonly naming: TopicNaming;
  readonly sink: Sink;
  readonly offsets: OffsetStore;
  readonly exported: ExportedSlot;
  readonly tables: readonly TableRef[];
  /** The checkpoint's identity fields (system, timeline, database, slot, publication). */
  readonly identity: Pick<Checkpoint, 'systemId' | 'timeline' | 'database' | 'slot' | 'publication'>;
  /** The sink's position before the snapshot's first event. */
  readonly startPosition: SinkPosition;
  readonly progress: ResumeState;
  /** How an online read would place its watermarks, or why none can (then DDL stays fatal). */
  readonly method: ResolvedMethod | { readonly unavailable: string };
  readonly events: EngineEvents;
  readonly log: Logger;
}

export interface InitialPhaseResult {
  readonly startPosition: SinkPosition;
  readonly progress: ResumeState;
}

export async function runInitialPhase(input: InitialPhaseInput): Promise<InitialPhaseResult> {
  const { config, offsets, identity, exported, tables, method, log } = input;
  let progress = input.progress;
  const lsnText = formatLsn(exported.consistentPoint);
  input.events.emit({ type: 'state', state: 'snapshotting' });
  const estimates = await estimateRows(input.query, tables);
  const display =
    config.snapshot.progress === 'off' || tables.length === 0
      ? undefined
      : new SnapshotBars(config.snapshot.progress, estimates, log);
  // Stored with the progress: the exported snapshot's xids and where the output was before it.
  const meta: { asOf?: string; start?: SinkPosition } = { start: input.startPosition };
  const store = (position: SinkPosition, list: readonly SnapshotTableState[], state: 'running' | 'done') =>
    offsets.commit({
      version: 2,
      ...identity,
      lsn: lsnText,
      sink: position,
      updatedAt: new Date().toISOString(),
      snapshot: { state, tables: list, ...meta },
      ...(progress.incremental ? { incremental: progress.incremental } : {}),
    });
  const result = await takeInitialSnapshot({
    exported,
    tables,
    config,
    endpoint: input.endpoint,
    major: input.major,
    generatedColumns: input.generatedColumns,
    types: input.types,
    naming: input.naming,
    sink: input.sink,
    log,
    onSnapshotXids: (asOf) => (meta.asOf = asOf),
    checkpoint: async (position, list) => {
      const started = performance.now();
      await store(position, list, 'running');
      const durationMs = performance.now() - started;
      input.events.emit({ type: 'checkpoint-stored', lsn: lsnText, events: 0, lastCommitAt: undefined, durationMs });
    },
    events: input.events,
    onTablesRead: (list) => {
      display?.update(list);
      emitProgress(input.events, list, estimates);
    },
  }).catch((error: unknown) => {
    // DDL (a TRUNCATE, say) between the slot's creation and the readers' lock: the exported
    // snapshot cannot be read, but nothing was delivered yet, so the tables are read online
    // instead, from the stream's start at the same consistent point.
    if (!(error instanceof CdcError) || error.code !== 'SNAPSHOT_CONFLICT' || typeof method !== 'string') throw error;
    // Keyless tables are read as the exported snapshot saw them; when that is not exact, the
    // error stands and the next start takes the snapshot again on a fresh slot.
    const keyless = tables.filter(isKeyless);
    if (keylessInexact(keyless, meta.asOf) !== undefined) throw error;
    log.warn(
      { method },
      "concurrent DDL at the initial snapshot's start: reading the tables online (incremental snapshot) instead",
    );
    const asOf = meta.asOf !== undefined && keyless.length > 0 ? { xids: meta.asOf, tables: keyless } : undefined;
    progress = { ...progress, incremental: continueInitial(progress.incremental, lsnText, tables, [], asOf) };
    return { position: undefined, tables: [] };
  });
  display?.finish();
  const startPosition = result.position ?? input.startPosition;
  await store(startPosition, result.tables, 'done');
  return { startPosition, progress: { ...progress, snapshot: { state: 'done', tables: result.tables } } };
}

/** One snapshot-progress event per table of the initial snapshot. */
function emitProgress(
  events: EngineEvents,
  tables: readonly SnapshotTableState[],
  estimates: ReadonlyMap<string, number>,
): void {
  for (const t of tables) {
    const table = `${t.schema}.${t.table}`;
    const estimate = estimates.get(table);
    events.emit({
      type: 'snapshot-progress',
      table,
      rows: t.read,
      total: estimate !== undefined && estimate > 0 ? estimate : undefined,
      done: t.cursor.done,
    });
  }
}
