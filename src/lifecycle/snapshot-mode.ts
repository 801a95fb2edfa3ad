/**
 * The snapshot part of start-up: what the stored checkpoint, the slot and `snapshot.mode` mean for
 * this start. Wraps the restart rule (lifecycle/restart-rule.ts), which it never weakens except where the user
 * asked for it (mode when_needed: start over with a new slot and a new snapshot when the stored
 * offset cannot be used).
 *
 * - An initial snapshot cut short (checkpoint `snapshot.state` running) continues online from its
 *   last stored chunk, with the incremental method, on the same slot: the rows already delivered
 *   are the tables' state at the slot's consistent point, and the stream resumes from there.
 *   Keyless tables are read as the exported snapshot saw them (snapshot/visibility.ts). When that
 *   cannot be exact (a keyless table under REPLICA IDENTITY FULL), or no incremental method is
 *   possible here (PostgreSQL 10-12 without a signal table), it is taken again on a fresh slot,
 *   the output cut back to where the snapshot began.
 * - A slot made before pgcdc first ran has no consistent point to read a snapshot at: the existing
 *   rows are read online (incrementally) instead.
 * - Mode always takes an incremental snapshot of the tables on every resume.
 */
import type { Config, SnapshotMode } from '../config.ts';
import { CdcError, isCdcError, type ErrorCode } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { formatLsn } from '../protocol/lsn.ts';
import type { Lsn } from '../protocol/messages.ts';
import type { Checkpoint } from '../offsets/store.ts';
import type { SlotState, TableRef } from '../postgres/catalog.ts';
import type { ReplicationSession, SystemIdentity } from '../postgres/slot.ts';
import type { ResolvedMethod } from '../snapshot/watermarks.ts';
import { continueInitial, pendingTables, requestTables, sameTable } from '../snapshot/resume-state.ts';
import type { SinkPosition } from '../sinks/contract.ts';
import { xminComparable } from '../snapshot/visibility.ts';
import { planStartup, type StartupPlan } from './restart-rule.ts';
import { checkRecoveryPossible, lostSlotRecovery, type LostSlotRecovery } from './lost-slot.ts';
import type { ResumeState } from '../offsets/store.ts';
import type { TimelineEntry } from './timeline-rule.ts';

/** Refusals that mode when_needed answers with a new slot and a new snapshot. */
const START_OVER_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'SLOT_MISSING',
  'SLOT_LOST',
  'SLOT_AHEAD_OF_OFFSET',
  'SYSTEM_CHANGED',
  'OFFSET_AHEAD_OF_SERVER',
]);

export interface StartupInput {
  readonly config: Config;
  readonly checkpoint: Checkpoint | undefined;
  readonly system: SystemIdentity;
  readonly slot: SlotState | undefined;
  readonly database: string;
  readonly method: ResolvedMethod | { readonly unavailable: string };
  readonly snapshotTables: readonly TableRef[];
  readonly session: ReplicationSession;
  readonly log: Logger;
  /** The server's timeline history, when the checkpoint is on another timeline (lifecycle/failover-slot.ts). */
  readonly timelineHistory?: readonly TimelineEntry[] | undefined;
}

export interface StartupDecision {
  readonly plan: StartupPlan;
  /** The progress to start with (from the checkpoint, or a continued initial snapshot). */
  readonly progress: ResumeState;
  /** The stored checkpoint is replaced by a lower one (a start over on purpose). */
  readonly rewind: boolean;
  /** Where the sink resumes instead of the stored checkpoint's position (an initial snapshot taken again). */
  readonly sinkFrom?: SinkPosition;
  /** onLost resnapshot: a new slot, and the gap re-read online (lost-slot.ts). */
  readonly recovery?: LostSlotRecovery;
}

/** Neither a primary key nor a replica identity index: read by ctid, its rows have no identity. */
export function isKeyless(table: TableRef): boolean {
  return table.primaryKey.length === 0 && table.replicaIdentity !== 'i';
}

/**
 * Why the unfinished keyless tables of an interrupted initial snapshot cannot be continued online
 * exactly (snapshot/visibility.ts), or undefined when they can: rows inserted since the snapshot
 * are left out of the read by their xmin, but a row updated or deleted since (possible under
 * REPLICA IDENTITY FULL) is gone from the heap, and its change would stream with a `before` that
 * was never delivered (with identical rows, a consumer would remove the wrong copy).
 */
export function keylessInexact(keyless: readonly TableRef[], asOf: string | undefined): string | undefined {
  if (keyless.length === 0) return undefined;
  const names = (list: readonly TableRef[]): string => list.map((t) => `${t.schema}.${t.table}`).join(', ');
  const full = keyless.filter((t) => t.replicaIdentity === 'f');
  if (full.length > 0) {
    return (
      `${names(full)} ha${full.length === 1 ? 's' : 've'} no key and REPLICA IDENTITY FULL: rows updated ` +
      `or deleted since the snapshot cannot be read as it saw them`
    );
  }
  if (asOf === undefined)
    return (
      `${names(keyless)} ha${keyless.length === 1 ? 's' : 've'} no key and the snapshot's transaction ids ` +
      `were not stored`
    );
  if (!xminComparable(asOf)) {
    return (
      `${names(keyless)} ha${keyless.length === 1 ? 's' : 've'} no key and the server has used over 2^31 ` +
      `transaction ids: the 32-bit xmin of a row frozen long ago could look like a later one`
    );
  }
  return undefined;
}

export async function decideStartup(input: StartupInput): Promise<StartupDecision> {
  const { config, checkpoint, system, slot, log } = input;
  const stored: ResumeState = {
    ...(checkpoint?.snapshot ? { snapshot: checkpoint.snapshot } : {}),
    ...(checkpoint?.incremental ? { incremental: checkpoint.incremental } : {}),
    ...(checkpoint?.schemas ? { schemas: checkpoint.schemas } : {}),
  };
  const interrupted =
    checkpoint?.snapshot?.state === 'running' &&
    checkpoint.systemId === system.systemId &&
    checkpoint.slot === config.slot &&
    slot?.active !== true;
  if (interrupted) {
    const done = checkpoint.snapshot?.tables;
    const keyless = input.snapshotTables.filter(
      (t) => isKeyless(t) && done?.find((d) => sameTable(d, t))?.cursor.done !== true,
    );
    const inexact = keylessInexact(keyless, checkpoint.snapshot?.asOf);
    if (slot && typeof input.method === 'string' && done !== undefined && inexact === undefined) {
      const plan = planStartup(startupInput(input));
      log.warn(
        { slot: config.slot, method: input.method },
        'the initial snapshot was interrupted: continuing it online after its last stored chunk',
      );
      const asOf = checkpoint.snapshot?.asOf;
      if (keyless.length > 0)
        log.info(
          { tables: keyless.map((t) => `${t.schema}.${t.table}`) },
          'tables without a key are read online as the interrupted snapshot saw them: rows inserted since ' +
            'arrive from the stream',
        );
      return {
        plan,
        rewind: false,
        progress: {
          ...stored,
          snapshot: { state: 'done', tables: done },
          incremental: continueInitial(
            checkpoint.incremental,
            checkpoint.lsn,
            input.snapshotTables,
            done,
            asOf !== undefined ? { xids: asOf, tables: keyless } : undefined,
          ),
        },
      };
    }
    // Taken again from the start. The output is cut back to where the snapshot began (when that
    // position is stored), so an exactly-once sink holds the snapshot once.
    const start = checkpoint.snapshot?.start;
    const reason =
      inexact ?? (typeof input.method === 'string' ? 'no snapshot progress was stored' : input.method.unavailable);
    log.warn(
      { slot: config.slot, reason },
      start !== undefined
        ? 'the initial snapshot was interrupted and cannot be continued exactly: taking it again on a fresh ' +
            'slot, the output cut back to where the snapshot began'
        : 'the initial snapshot was interrupted and cannot be continued exactly: taking it again on a fresh ' +
            'slot (the rows delivered before stay in the output)',
    );
    if (slot) await input.session.dropSlot(config.slot);
    return {
      plan: { kind: 'create-slot' },
      progress: {},
      rewind: start !== undefined,
      ...(start !== undefined ? { sinkFrom: start } : {}),
    };
  }
  try {
    return { plan: planStartup(startupInput(input)), progress: stored, rewind: false };
  } catch (error) {
    const recovery =
      config.onLost === 'resnapshot' && isCdcError(error) ? lostSlotRecovery(error, checkpoint, system) : undefined;
    if (recovery) {
      checkRecoveryPossible(recovery, input.method, input.snapshotTables.length);
      // Never an active slot: the restart rule refused that before any gap was looked at.
      if (slot) await input.session.dropSlot(config.slot);
      // The snapshot and schemas of another cluster describe nothing here; the sink keeps its position.
      const progress: ResumeState = {
        ...(checkpoint?.incremental ? { incremental: checkpoint.incremental } : {}),
        ...(recovery.sameCluster && checkpoint?.schemas ? { schemas: checkpoint.schemas } : {}),
      };
      return { plan: { kind: 'create-slot' }, progress, rewind: true, recovery };
    }
    if (config.snapshot.mode !== 'when_needed' || !isCdcError(error) || !START_OVER_CODES.has(error.code)) throw error;
    log.warn(
      { reason: error.message },
      'snapshot mode when_needed: the stored offset cannot be used, so pgcdc starts over with a new slot and a ' +
        'new snapshot (events so far stay in the sink)',
    );
    if (slot) await input.session.dropSlot(config.slot);
    return { plan: { kind: 'create-slot' }, progress: {}, rewind: true };
  }
}

function startupInput(input: StartupInput): Parameters<typeof planStartup>[0] {
  return {
    checkpoint: input.checkpoint,
    system: input.system,
    slot: input.slot,
    slotName: input.config.slot,
    publication: input.config.publication,
    database: input.database,
    offsetsPath: input.config.offsets,
    upgradedFrom: input.config.upgradedFrom,
    timelineHistory: input.timelineHistory,
  };
}

/** Adds the incremental snapshot this start asks for (adopted slot, mode always) to `progress`. */
export function requestStartSnapshot(input: {
  readonly plan: StartupPlan;
  readonly mode: SnapshotMode;
  readonly method: ResolvedMethod | { readonly unavailable: string };
  readonly progress: ResumeState;
  readonly snapshotTables: readonly TableRef[];
  readonly startLsn: Lsn;
  readonly log: Logger;
}): ResumeState {
  const { plan, mode, method, progress, log } = input;
  if (mode === 'never' || input.snapshotTables.length === 0) return progress;
  const wanted =
    (plan.kind === 'adopt-slot' && mode !== 'initial_only') || (plan.kind === 'resume' && mode === 'always');
  if (!wanted || pendingTables(progress.incremental).length > 0) return progress;
  if (typeof method !== 'string') {
    if (plan.kind === 'resume')
      throw new CdcError(
        'CONFIG_INVALID',
        `snapshot mode always needs an incremental snapshot method: ${method.unavailable}`,
      );
    log.warn(
      { reason: method.unavailable },
      'the slot existed before pgcdc first ran, so the existing rows cannot be read at its consistent point, ' +
        'and no incremental method is possible: they are not read',
    );
    return progress;
  }
  log.info(
    { tables: input.snapshotTables.length, method },
    plan.kind === 'resume'
      ? 'snapshot mode always: taking an incremental snapshot'
      : 'the slot existed before pgcdc first ran: reading the existing rows online (incremental snapshot)',
  );
  const tables = input.snapshotTables.map((t) => ({ schema: t.schema, table: t.table }));
  return { ...progress, incremental: requestTables(progress.incremental, formatLsn(input.startLsn), tables) };
}
