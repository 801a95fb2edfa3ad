/**
 * Where streaming starts: the replication slot created when the start-up plan says so (exporting a snapshot when
 * the initial snapshot will read one) or the plan's stored position, and the first checkpoint, stored before any
 * event is written.
 *
 * Separate from the engine (engine.ts), which runs a capture from start to stop: these are the two steps of its
 * start-up that fix the position a restart comes back to, so they are read (and reviewed) together.
 */
import type { Logger } from '../core/log.ts';
import { formatLsn } from '../protocol/lsn.ts';
import type { Lsn } from '../protocol/messages.ts';
import type { ExportedSlot } from '../postgres/exported-snapshot.ts';
import type { ReplicationSession } from '../postgres/slot.ts';
import type { Sink, SinkPosition } from '../sinks/contract.ts';
import { EventBatch } from '../sinks/batch.ts';
import type { Checkpoint, OffsetStore, ResumeState } from '../offsets/store.ts';
import type { StartupPlan } from './restart-rule.ts';

/** The position streaming starts from, and the snapshot the new slot exported (when one is read). */
export interface SlotStart {
  readonly startLsn: Lsn;
  readonly exported: ExportedSlot | undefined;
}

/**
 * Creates the slot `slot` when `plan` says so, exporting a snapshot when `readsSnapshot` (an initial snapshot
 * will read the tables), a failover slot when `failover` (lifecycle/failover-slot.ts), or starts from the plan's
 * position.
 */
export async function startSlot(
  session: ReplicationSession,
  slot: string,
  plan: StartupPlan,
  readsSnapshot: boolean,
  log: Logger,
  failover = false,
): Promise<SlotStart> {
  let startLsn: Lsn;
  let exported: ExportedSlot | undefined;
  if (plan.kind === 'create-slot') {
    if (readsSnapshot) {
      exported = await session.createSlotExportingSnapshot(slot, failover);
      startLsn = exported.consistentPoint;
    } else startLsn = (await session.createSlot(slot, failover)).consistentPoint;
    log.info({ slot, lsn: formatLsn(startLsn), failover }, 'created replication slot');
  } else startLsn = plan.startLsn;
  if (plan.kind === 'resume') log.info({ slot, lsn: formatLsn(startLsn) }, 'resuming after stored checkpoint');
  return { startLsn, exported };
}

export interface FirstCheckpointInput {
  readonly sink: Sink;
  readonly offsets: OffsetStore;
  /** The checkpoint's identity fields (system, timeline, database, slot, publication). */
  readonly identity: Pick<Checkpoint, 'systemId' | 'timeline' | 'database' | 'slot' | 'publication'>;
  readonly start: SlotStart;
  /** Where the sink resumes (the start-up decision's, or the stored checkpoint's); undefined on a first run. */
  readonly position: SinkPosition | undefined;
  readonly progress: ResumeState;
  /** The stored checkpoint is replaced by a lower one (a start over on purpose). */
  readonly rewind: boolean;
}

/**
 * The sink position streaming (or the initial snapshot) starts from. On a first run, a new exported snapshot or a
 * start over, a first checkpoint is stored before any event is written: a crash between the first write and the
 * first commit then finds a checkpoint to truncate back to, instead of unknown files.
 */
export async function storeFirstCheckpoint(input: FirstCheckpointInput): Promise<SinkPosition> {
  const { offsets, start, progress } = input;
  let startPosition = input.position;
  if (startPosition && !start.exported && !input.rewind) return startPosition;
  startPosition ??= await input.sink.write(EventBatch.of([]));
  const first = {
    version: 2 as const,
    ...input.identity,
    lsn: formatLsn(start.startLsn),
    sink: startPosition,
    updatedAt: new Date().toISOString(),
    ...(start.exported ? { snapshot: { state: 'running' as const, tables: [], start: startPosition } } : {}),
    ...(progress.incremental ? { incremental: progress.incremental } : {}),
  };
  if (input.rewind) await offsets.replace(first);
  else await offsets.commit(first);
  return startPosition;
}
