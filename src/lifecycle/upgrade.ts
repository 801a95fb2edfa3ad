/**
 * A cluster upgraded with pg_upgrade (PostgreSQL 17+, slot carried over) accepted as the one the
 * offsets belong to: the restart rule (restart-rule.ts) allows it once, when `upgradedFrom` names
 * the stored system identifier; this stores the new identity at once, before any event, so that
 * the next start (without the flag) resumes as on any cluster, and a second different cluster is
 * still refused.
 */
import type { Logger } from '../core/log.ts';
import { formatLsn } from '../protocol/lsn.ts';
import type { Checkpoint, OffsetStore } from '../offsets/store.ts';
import type { StartupPlan } from './restart-rule.ts';

export interface RecordUpgradeInput {
  readonly offsets: OffsetStore;
  readonly checkpoint: Checkpoint;
  /** The new cluster's identity (the checkpoint's identity fields as the engine writes them). */
  readonly identity: Pick<Checkpoint, 'systemId' | 'timeline' | 'database' | 'slot' | 'publication'>;
  readonly plan: Extract<StartupPlan, { kind: 'resume' }>;
  readonly log: Logger;
}

/**
 * Stores the checkpoint as it was, on the new cluster's identity and at the carried slot's
 * position. `lastCommit` goes: it names a commit of the old cluster's WAL, which the new one does
 * not have (pipeline/history-check.ts would look for it). Sink position and snapshot state stay.
 */
export async function recordUpgrade(input: RecordUpgradeInput): Promise<void> {
  const { checkpoint, identity, plan } = input;
  const { lastCommit: _oldWal, ...kept } = checkpoint;
  await input.offsets.commit({
    ...kept,
    ...identity,
    lsn: formatLsn(plan.startLsn),
    updatedAt: new Date().toISOString(),
  });
  input.log.warn(
    {
      from: plan.upgradedFrom,
      systemId: identity.systemId,
      timeline: identity.timeline,
      previousLsn: checkpoint.lsn,
      lsn: formatLsn(plan.startLsn),
    },
    'accepted the upgraded cluster (--upgraded-from): its identity is stored, the flag is not needed again',
  );
}
