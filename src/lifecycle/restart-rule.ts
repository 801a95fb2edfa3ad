/**
 * The restart rule as a pure function: stored checkpoint + what the server says + config -> a plan
 * or a refusal. PostgreSQL starts a slot at max(requested LSN, confirmed_flush_lsn) without any
 * error, so every case where that would skip changes we never delivered is refused here, before
 * START_REPLICATION. Never resume silently. What can change between this check and the start
 * (the slot dropped and recreated) is checked again once the stream runs (pipeline/stream-loop.ts).
 */
import { CdcError } from '../core/errors.ts';
import { formatLsn, parseLsn } from '../protocol/lsn.ts';
import type { Lsn } from '../protocol/messages.ts';
import type { Checkpoint } from '../offsets/store.ts';
import type { SlotState } from '../postgres/catalog.ts';
import type { SystemIdentity } from '../postgres/slot.ts';
import { timelineVerdict, type TimelineEntry, type TimelineVerdict } from './timeline-rule.ts';
import { RESNAPSHOT_HINT } from './lost-slot.ts';

export interface StartupInput {
  readonly checkpoint: Checkpoint | undefined;
  readonly system: SystemIdentity;
  readonly slot: SlotState | undefined;
  readonly slotName: string;
  readonly publication: string;
  readonly database: string;
  readonly offsetsPath: string;
  /**
   * `upgradedFrom` (--upgraded-from): the system identifier of the cluster this one was upgraded
   * from with pg_upgrade. pg_upgrade gives the new cluster a new identifier (initdb's) and a new
   * WAL, and PostgreSQL 17+ carries a logical slot over only when it had confirmed every change
   * (`pg_upgrade --check` refuses otherwise), positioned at the new cluster's start. So with the
   * operator's word that this is such an upgrade, naming the identifier the offsets hold, the new
   * identity is accepted once (the engine stores it at once: upgrade.ts) and streaming resumes at
   * the carried slot's position. Any other identifier is refused.
   */
  readonly upgradedFrom?: string | undefined;
  /** The server's timeline history (TIMELINE_HISTORY), read when its timeline differs from the checkpoint's. */
  readonly timelineHistory?: readonly TimelineEntry[] | undefined;
}

export type StartupPlan =
  /** First run and no slot: create it, stream from its consistent point. */
  | { readonly kind: 'create-slot' }
  /** First run, slot made beforehand (e.g. by `pgcdc setup`): stream from its confirmed position. */
  | { readonly kind: 'adopt-slot'; readonly startLsn: Lsn }
  /**
   * Resume after the checkpoint (`startLsn`, the stored offset); transactions that committed
   * before `skipBefore` were delivered already. START_REPLICATION asks for `replayFrom`, the
   * slot's confirmed position (at most the stored offset), so that the transactions between it
   * and the stored offset are replayed and checked against the checkpoint (history-check.ts).
   */
  | {
      readonly kind: 'resume';
      readonly startLsn: Lsn;
      readonly skipBefore: Lsn;
      readonly replayFrom: Lsn;
      /** Set when the cluster was upgraded (pg_upgrade) from this system identifier: see `upgradedFrom`. */
      readonly upgradedFrom?: string;
    };

/** The runbook's next steps after a gap: recover (lifecycle/lost-slot.ts), or start over by hand. */
const BY_HAND = 'to start over on purpose, remove the offsets file and the output it belongs to';
const START_OVER = `${RESNAPSHOT_HINT}; or, ${BY_HAND}`;
const FAILOVER_HINT =
  'the server was promoted from a standby that had no copy of the slot: slots reach standbys only as ' +
  'PostgreSQL 17+ failover slots (slotFailover, synchronized_standby_slots, sync_replication_slots; ' +
  'docs/recovery.md, Failover)';

export function planStartup(input: StartupInput): StartupPlan {
  const { checkpoint, system, slot } = input;

  if (slot) {
    if (slot.slotType !== 'logical' || slot.plugin !== 'pgoutput') {
      throw new CdcError(
        'CONFIG_INVALID',
        `slot ${input.slotName} exists but is not a logical pgoutput slot (plugin ${slot.plugin ?? 'none'})`,
        {
          hint: 'choose another --slot name or drop that slot',
        },
      );
    }
    if (slot.database !== input.database) {
      throw new CdcError(
        'CONFIG_INVALID',
        `slot ${input.slotName} belongs to database ${slot.database ?? '?'}, not ${input.database}`,
        {
          hint: 'choose another --slot name',
        },
      );
    }
    if (slot.active) {
      throw new CdcError(
        'SOURCE_NOT_READY',
        `slot ${input.slotName} is in use by another process (pid ${slot.activePid ?? '?'})`,
        {
          retryable: true,
          hint: 'stop the other consumer, or use another --slot',
        },
      );
    }
  }

  if (!checkpoint) {
    if (!slot) return { kind: 'create-slot' };
    if (slot.walStatus === 'lost') {
      throw new CdcError('SLOT_LOST', `slot ${input.slotName} has lost WAL it needs (wal_status = lost)`, {
        hint: `drop it (SELECT pg_drop_replication_slot('${input.slotName}')) and run again to create a new one`,
      });
    }
    return { kind: 'adopt-slot', startLsn: slot.confirmedFlush ?? 0 };
  }

  if (
    checkpoint.slot !== input.slotName ||
    checkpoint.publication !== input.publication ||
    checkpoint.database !== input.database
  ) {
    throw new CdcError(
      'CONFIG_INVALID',
      `offsets file ${input.offsetsPath} belongs to slot ` +
        `${checkpoint.slot}, publication ${checkpoint.publication}, database ${checkpoint.database}; ` +
        `this run uses slot ${input.slotName}, publication ${input.publication}, database ${input.database}`,
      { hint: 'use the same --slot/--publication/--source as before, or another --offsets file' },
    );
  }
  if (checkpoint.systemId !== system.systemId) return planUpgraded(input, checkpoint);
  const stored = parseLsn(checkpoint.lsn);
  const timeline = timelineVerdict({
    timeline: checkpoint.timeline,
    offset: stored,
    current: system.timeline,
    history: input.timelineHistory,
  });
  refuseTimeline(timeline, checkpoint.lsn);
  if (stored > system.xlogPos) {
    throw new CdcError(
      'OFFSET_AHEAD_OF_SERVER',
      `the stored offset ` +
        (`${checkpoint.lsn} in ` +
          `${input.offsetsPath} is past the server's WAL (it ends at ${formatLsn(system.xlogPos)}): `) +
        `the server was restored from an older copy, or the offsets file was edited; changes may have been lost`,
      { hint: `pgcdc will not resume from a position the server never reached; ${START_OVER}` },
    );
  }
  if (!slot) {
    throw new CdcError(
      'SLOT_MISSING',
      `replication slot ` +
        (`${input.slotName} is gone (it was dropped, or the server was replaced): changes since ` +
          `${checkpoint.lsn} may have been lost`),
      {
        hint: timeline.kind === 'followed' ? `${FAILOVER_HINT}; ${START_OVER}` : START_OVER,
      },
    );
  }
  if (slot.walStatus === 'lost') {
    throw new CdcError(
      'SLOT_LOST',
      `replication slot ` +
        `${input.slotName} was invalidated (wal_status = lost): changes since ${checkpoint.lsn} are gone from the WAL`,
      {
        hint: `raise max_slot_wal_keep_size to avoid this; ${START_OVER}`,
      },
    );
  }
  if (slot.confirmedFlush !== undefined && slot.confirmedFlush > stored) {
    throw new CdcError(
      'SLOT_AHEAD_OF_OFFSET',
      `slot ${input.slotName} has confirmed ` +
        (`${formatLsn(slot.confirmedFlush)}, past the stored offset ` +
          `${checkpoint.lsn}: changes in between were consumed by someone else and may be lost`),
      { hint: `another consumer used this slot, or the offsets file is an old copy; ${START_OVER}` },
    );
  }
  // START_REPLICATION at X streams from max(X, confirmed_flush_lsn) and skips every transaction
  // whose commit record starts before that, unseen (checked on PostgreSQL 18: a request below the
  // slot's position starts at the slot's position; a request past a commit skips it). Asking for
  // the stored offset would so hide the transactions between the slot's position and it; asking
  // for the slot's own position replays them, for history-check.ts to compare with the checkpoint.
  // They are skipped as delivered (skipBefore), and nothing is confirmed past the slot's position
  // until the check passed (pipeline/stream-loop.ts), so the stored offset is where delivery resumes.
  return { kind: 'resume', startLsn: stored, skipBefore: stored, replayFrom: slot.confirmedFlush ?? stored };
}

const UPGRADE_RUNBOOK = 'docs/upgrades.md';

/**
 * The server's system identifier differs from the checkpoint's: refused unless `upgradedFrom`
 * names the checkpoint's identifier and the slot came over with pg_upgrade (PostgreSQL 17+).
 */
function planUpgraded(input: StartupInput, checkpoint: Checkpoint): StartupPlan {
  const { system, slot, upgradedFrom } = input;
  if (upgradedFrom === undefined && !slot) {
    throw new CdcError(
      'SYSTEM_CHANGED',
      `the server is a different PostgreSQL cluster (system identifier ${system.systemId}, the offsets say ` +
        `${checkpoint.systemId}) without slot ${input.slotName}: changes since ${checkpoint.lsn} cannot be streamed`,
      {
        hint:
          `after pg_upgrade from PostgreSQL 16 or older (slots are not carried over), a dump/restore or a switch ` +
          `to another server, take a new snapshot: remove the offsets file and the output it belongs to and run ` +
          `again (see ${UPGRADE_RUNBOOK})`,
      },
    );
  }
  if (upgradedFrom === undefined) {
    throw new CdcError(
      'SYSTEM_CHANGED',
      `the server is a different PostgreSQL cluster (system identifier ` +
        `${system.systemId}, the offsets say ${checkpoint.systemId}): changes may have been lost`,
      {
        hint:
          `if it is the same database upgraded with pg_upgrade (PostgreSQL 17+, slot drained first), run once ` +
          `with --upgraded-from ${checkpoint.systemId}; otherwise pgcdc will not resume on another cluster: ` +
          `${START_OVER} (see ${UPGRADE_RUNBOOK})`,
      },
    );
  }
  if (upgradedFrom !== checkpoint.systemId) {
    throw new CdcError(
      'SYSTEM_CHANGED',
      `--upgraded-from ${upgradedFrom} is not the cluster the offsets belong to (system identifier ` +
        `${checkpoint.systemId}; the server is ${system.systemId}): changes may have been lost`,
      {
        hint:
          `pass --upgraded-from ${checkpoint.systemId} if this server was upgraded from that cluster; ` + START_OVER,
      },
    );
  }
  if (!slot) {
    throw new CdcError(
      'SLOT_MISSING',
      `replication slot ${input.slotName} did not survive the upgrade from cluster ${upgradedFrom} ` +
        `(pg_upgrade carries logical slots over from PostgreSQL 17 on, and only caught-up ones): changes since ` +
        `${checkpoint.lsn} cannot be streamed`,
      {
        hint:
          `if writes stayed stopped since pgcdc drained the old cluster, create the slot now, before they resume, ` +
          `and run again; otherwise take a new snapshot: ${START_OVER} (see ${UPGRADE_RUNBOOK})`,
      },
    );
  }
  if (checkpoint.snapshot?.state === 'running') {
    throw new CdcError(
      'SYSTEM_CHANGED',
      `the initial snapshot had not finished on cluster ${upgradedFrom} before the upgrade: it cannot be ` +
        `continued on another cluster`,
      { hint: `take a new snapshot: ${START_OVER} (see ${UPGRADE_RUNBOOK})` },
    );
  }
  if (slot.walStatus === 'lost') {
    throw new CdcError('SLOT_LOST', `replication slot ${input.slotName} was invalidated (wal_status = lost)`, {
      hint: START_OVER,
    });
  }
  // The carried slot starts at the new cluster's first WAL, past everything of the old one (pg_upgrade
  // checked it had confirmed all of that); nothing before it can be replayed or compared.
  const from = slot.confirmedFlush ?? system.xlogPos;
  if (from < parseLsn(checkpoint.lsn)) {
    throw new CdcError(
      'SYSTEM_CHANGED',
      `slot ${input.slotName} is at ${formatLsn(from)}, before the stored offset ${checkpoint.lsn}: not a slot ` +
        `that pg_upgrade carried over (it starts past the old cluster's WAL)`,
      { hint: START_OVER },
    );
  }
  return { kind: 'resume', startLsn: from, skipBefore: from, replayFrom: from, upgradedFrom };
}

/** Refuses a timeline the delivered changes are not on (see timeline-rule.ts); a followed promotion passes. */
function refuseTimeline(verdict: TimelineVerdict, offset: string): void {
  if (verdict.kind === 'same' || verdict.kind === 'followed') return;
  if (verdict.kind === 'diverged') {
    throw new CdcError(
      'SYSTEM_CHANGED',
      `the server was promoted: its timeline ${verdict.to} left timeline ${verdict.from} at ` +
        `${formatLsn(verdict.switchpoint)}, before the stored offset ${offset}, so the changes pgcdc delivered ` +
        `after ${formatLsn(verdict.switchpoint)} are lost from the new timeline`,
      {
        hint:
          'the old primary confirmed changes its standby never received: set synchronized_standby_slots on the ' +
          `primary to prevent it (docs/recovery.md, Failover); ${START_OVER}`,
      },
    );
  }
  throw new CdcError(
    'SYSTEM_CHANGED',
    `the server's timeline changed from ` +
      `${verdict.from} to ${verdict.to} (a failover or restore): changes may have been lost`,
    { hint: `verify the slot survived the failover; ${START_OVER}` },
  );
}
