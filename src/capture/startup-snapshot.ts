/**
 * The snapshot part of start-up: what the stored checkpoint, the slot and `snapshot.mode` mean for
 * this start. Wraps the restart rule (startup.ts), which it never weakens except where the user
 * asked for it (mode when_needed: start over with a new slot and a new snapshot when the stored
 * offset cannot be used).
 *
 * - An initial snapshot cut short (checkpoint `snapshot.state` running) continues online from its
 *   last stored chunk, with the incremental method, on the same slot: the rows already delivered
 *   are the tables' state at the slot's consistent point, and the stream resumes from there. When
 *   no incremental method is possible here (PostgreSQL 10-12 without a signal table) it is taken
 *   again on a fresh slot, as before.
 * - A slot made before pgcdc first ran has no consistent point to read a snapshot at: the existing
 *   rows are read online (incrementally) instead.
 * - Mode always takes an incremental snapshot of the tables on every resume.
 */
import type { Config, SnapshotMode } from '../config.ts';
import { CdcError, isCdcError, type ErrorCode } from '../errors.ts';
import type { Logger } from '../log.ts';
import { formatLsn } from '../protocol/lsn.ts';
import type { Lsn } from '../protocol/messages.ts';
import type { Checkpoint } from '../offsets/store.ts';
import type { SlotState, TableRef } from '../postgres/catalog.ts';
import type { ReplicationSession, SystemIdentity } from '../postgres/slot.ts';
import type { ResolvedMethod } from '../backfill/watermarks.ts';
import { continueInitial, pendingTables, requestTables } from '../backfill/progress.ts';
import { planStartup, type StartupPlan } from './startup.ts';
import type { CheckpointProgress } from './delivery.ts';

/** Refusals that mode when_needed answers with a new slot and a new snapshot. */
const START_OVER_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['SLOT_MISSING', 'SLOT_LOST', 'SLOT_AHEAD_OF_OFFSET', 'SYSTEM_CHANGED', 'OFFSET_AHEAD_OF_SERVER']);

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
}

export interface StartupDecision {
  readonly plan: StartupPlan;
  /** The progress to start with (from the checkpoint, or a continued initial snapshot). */
  readonly progress: CheckpointProgress;
  /** The stored checkpoint is replaced by a lower one (a start over on purpose). */
  readonly rewind: boolean;
}

export async function decideStartup(input: StartupInput): Promise<StartupDecision> {
  const { config, checkpoint, system, slot, log } = input;
  const stored: CheckpointProgress = {
    ...(checkpoint?.snapshot ? { snapshot: checkpoint.snapshot } : {}),
    ...(checkpoint?.incremental ? { incremental: checkpoint.incremental } : {}),
    ...(checkpoint?.schemas ? { schemas: checkpoint.schemas } : {}),
  };
  const interrupted = checkpoint?.snapshot?.state === 'running' && checkpoint.systemId === system.systemId && checkpoint.slot === config.slot && slot?.active !== true;
  if (interrupted) {
    const done = checkpoint.snapshot?.tables;
    if (slot && typeof input.method === 'string' && done !== undefined) {
      const plan = planStartup(startupInput(input));
      log.warn({ slot: config.slot, method: input.method }, 'the initial snapshot was interrupted: continuing it online after its last stored chunk');
      return {
        plan,
        rewind: false,
        progress: { ...stored, snapshot: { state: 'done', tables: done }, incremental: continueInitial(checkpoint.incremental, checkpoint.lsn, input.snapshotTables, done) },
      };
    }
    log.warn({ slot: config.slot }, 'the initial snapshot was interrupted: taking it again on a fresh slot');
    if (slot) await input.session.dropSlot(config.slot);
    return { plan: { kind: 'create-slot' }, progress: {}, rewind: false };
  }
  try {
    return { plan: planStartup(startupInput(input)), progress: stored, rewind: false };
  } catch (error) {
    if (config.snapshot.mode !== 'when_needed' || !isCdcError(error) || !START_OVER_CODES.has(error.code)) throw error;
    log.warn({ reason: error.message }, 'snapshot mode when_needed: the stored offset cannot be used, so pgcdc starts over with a new slot and a new snapshot (events so far stay in the sink)');
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
  };
}

/** Adds the incremental snapshot this start asks for (adopted slot, mode always) to `progress`. */
export function requestStartSnapshot(input: {
  readonly plan: StartupPlan;
  readonly mode: SnapshotMode;
  readonly method: ResolvedMethod | { readonly unavailable: string };
  readonly progress: CheckpointProgress;
  readonly snapshotTables: readonly TableRef[];
  readonly startLsn: Lsn;
  readonly log: Logger;
}): CheckpointProgress {
  const { plan, mode, method, progress, log } = input;
  if (mode === 'never' || input.snapshotTables.length === 0) return progress;
  const wanted = (plan.kind === 'adopt-slot' && mode !== 'initial_only') || (plan.kind === 'resume' && mode === 'always');
  if (!wanted || pendingTables(progress.incremental).length > 0) return progress;
  if (typeof method !== 'string') {
    if (plan.kind === 'resume') throw new CdcError('CONFIG_INVALID', `snapshot mode always needs an incremental snapshot method: ${method.unavailable}`);
    log.warn({ reason: method.unavailable }, 'the slot existed before pgcdc first ran, so the existing rows cannot be read at its consistent point, and no incremental method is possible: they are not read');
    return progress;
  }
  log.info(
    { tables: input.snapshotTables.length, method },
    plan.kind === 'resume' ? 'snapshot mode always: taking an incremental snapshot' : 'the slot existed before pgcdc first ran: reading the existing rows online (incremental snapshot)',
  );
  const tables = input.snapshotTables.map((t) => ({ schema: t.schema, table: t.table }));
  return { ...progress, incremental: requestTables(progress.incremental, formatLsn(input.startLsn), tables) };
}
