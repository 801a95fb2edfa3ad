/**
 * Failover: what a capture does so that its slot survives a promotion, and what it reads to recognise one.
 *
 * - PostgreSQL 17+ failover slots: with `slotFailover` (auto: on 17+ when the server is a primary) the slot is
 *   created with `FAILOVER true`, or an existing slot is altered to it, so a standby running
 *   `sync_replication_slots = on` keeps a synchronised copy. With `synchronized_standby_slots` naming the
 *   standby's physical slot, the primary sends pgcdc nothing the standby has not received, so the copy is never
 *   behind what pgcdc stored: after a promotion the copy resumes exactly (the restart rule still checks it).
 * - On every start whose checkpoint is on another timeline than the server's, the server's timeline history is
 *   read (TIMELINE_HISTORY) for the restart rule (lifecycle/timeline-rule.ts): an offset before the switch point
 *   resumes on the promoted server, one past it is refused.
 */
import type pg from 'pg';
import type { Config } from '../config.ts';
import { CdcError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { SlotState } from '../postgres/catalog.ts';
import type { ReplicationSession, SystemIdentity } from '../postgres/slot.ts';
import type { Checkpoint } from '../offsets/store.ts';
import { parseTimelineHistory, type TimelineEntry } from './timeline-rule.ts';

/** The first major with failover slots (CREATE_REPLICATION_SLOT ... FAILOVER, sync_replication_slots). */
export const FAILOVER_MAJOR = 17;

/**
 * Whether this run's slot is a failover slot. `auto`: on 17+ when the server is a primary (a standby refuses
 * failover slots: its own slots cannot be synchronised further). `true` where that is impossible is the
 * user's mistake: refused with what to change.
 */
export function resolveSlotFailover(setting: Config['slotFailover'], major: number, inRecovery: boolean): boolean {
  if (setting === false) return false;
  const possible = major >= FAILOVER_MAJOR && !inRecovery;
  if (setting === 'auto') return possible;
  if (major < FAILOVER_MAJOR)
    throw new CdcError(
      'CONFIG_INVALID',
      `slotFailover is true but the server runs PostgreSQL ${major}: failover slots need PostgreSQL ${FAILOVER_MAJOR}+`,
      { hint: 'set slotFailover to auto or false (--slot-failover auto)' },
    );
  if (inRecovery)
    throw new CdcError(
      'CONFIG_INVALID',
      'slotFailover is true but the source is a standby: PostgreSQL refuses failover slots on a standby',
      { hint: 'capture from the primary, or set slotFailover to auto or false' },
    );
  return true;
}

/** Reads the facts resolveSlotFailover needs and resolves it. */
export async function slotFailoverFor(config: Config, query: pg.ClientBase, major: number): Promise<boolean> {
  if (config.slotFailover === false || major < FAILOVER_MAJOR)
    return resolveSlotFailover(config.slotFailover, major, false);
  const { rows } = await query.query<{ r: boolean }>('select pg_is_in_recovery() as r');
  return resolveSlotFailover(config.slotFailover, major, rows[0]?.r === true);
}

/**
 * Makes an existing slot a failover slot when this run wants one and it is not (a slot made before, or by
 * another version of pgcdc). A synced copy on a promoted standby already is one. Never turns it off: a user
 * who set false on purpose can run ALTER_REPLICATION_SLOT themselves.
 */
export async function ensureSlotFailover(
  session: ReplicationSession,
  slotName: string,
  slot: SlotState | undefined,
  wanted: boolean,
  log: Logger,
): Promise<void> {
  if (!wanted || !slot || slot.failover !== false) return;
  await session.alterSlotFailover(slotName, true);
  log.info(
    { slot: slotName },
    'made the replication slot a failover slot (standbys with sync_replication_slots copy it)',
  );
}

/**
 * The server's timeline history when the checkpoint was stored on another timeline (a promotion, or a restore),
 * for the restart rule; undefined otherwise. Timeline 1 has no history file.
 */
export async function timelineHistoryFor(
  session: ReplicationSession,
  checkpoint: Checkpoint | undefined,
  system: SystemIdentity,
  log: Logger,
): Promise<TimelineEntry[] | undefined> {
  if (!checkpoint || checkpoint.timeline === system.timeline || system.timeline <= 1) return undefined;
  if (checkpoint.systemId !== system.systemId) return undefined;
  const history = parseTimelineHistory(await session.timelineHistory(system.timeline));
  log.info(
    { from: checkpoint.timeline, to: system.timeline, offset: checkpoint.lsn },
    'the server is on another timeline than the stored checkpoint (a promotion or a restore): checking its history',
  );
  return history;
}
