/**
 * The lifecycle keys of the configuration (src/config.ts composes them at its top level): how a
 * start treats the slot and the restart rule's refusals. `slotFailover` (lifecycle/failover-slot.ts),
 * `upgradedFrom` (lifecycle/upgrade.ts), `onLost` and `onLostDeletes` (lifecycle/lost-slot.ts).
 */
import { z } from 'zod';
import { CdcError } from '../core/errors.ts';

/** The lifecycle keys' schemas, spread into the configuration's top level. */
export const lifecycleKeys = {
  /**
   * A PostgreSQL 17+ failover slot, which standbys with sync_replication_slots copy (docs/recovery.md, Failover):
   * auto (on 17+ when the source is a primary), true (refused where impossible) or false.
   */
  slotFailover: z.union([z.literal('auto'), z.boolean()]).default('auto'),
  /**
   * The system identifier of the cluster this server was upgraded from with pg_upgrade (17+, slot
   * drained first): the offsets' cluster, accepted once as this one (docs/upgrades.md).
   */
  upgradedFrom: z
    .string()
    .regex(/^[0-9]+$/, "a system identifier (decimal digits: the offsets file's systemId, or pg_controldata's)")
    .optional(),
  /**
   * What a start does when the restart rule finds a gap (slot missing, invalidated, ahead of the
   * offset, another cluster): `fail` refuses (exit 1); `resnapshot` creates a new slot and re-reads
   * online what the gap can have changed (lifecycle/lost-slot.ts, docs/recovery.md#lost-slots).
   */
  onLost: z.enum(['fail', 'resnapshot']).default('fail'),
  /**
   * What a lost-slot recovery does with keys the sink holds and the source no longer has (rows
   * deleted in the gap): `keep` leaves them (default); `emit` writes a key-only delete for each,
   * marked recovery (snapshot/recovery-deletes.ts). JSONL sink, envelope json, debezium, no shaping.
   */
  onLostDeletes: z.enum(['emit', 'keep']).default('keep'),
};

/** What `checkLostDeletes` reads of a parsed configuration. */
export interface LostDeletesInput {
  readonly onLostDeletes: 'emit' | 'keep';
  readonly sink: { readonly kind: string };
  readonly envelope: { readonly format: string; readonly type: string };
  readonly shaping?: { readonly rules: readonly unknown[] };
}

/**
 * Throws CONFIG_INVALID when `onLostDeletes: emit` is set where the sink's keys cannot be read back:
 * only JSONL output with the plain json debezium envelope and no shaping (lifecycle/recovery-keys.ts).
 */
export function checkLostDeletes(config: LostDeletesInput): void {
  if (config.onLostDeletes !== 'emit') return;
  const why =
    config.sink.kind !== 'jsonl'
      ? `the sink is ${config.sink.kind}`
      : config.envelope.format !== 'json'
        ? `envelope.format is ${config.envelope.format}`
        : config.envelope.type !== 'debezium'
          ? `envelope.type is ${config.envelope.type}`
          : (config.shaping?.rules.length ?? 0) > 0
            ? 'shaping rules are configured'
            : undefined;
  if (why !== undefined)
    throw new CdcError(
      'CONFIG_INVALID',
      `onLostDeletes emit (--on-lost-deletes) reads the sink's keys back from JSONL output with the plain ` +
        `json debezium envelope and no shaping, and ${why}`,
      { hint: 'use onLostDeletes: keep, and find the keys deleted in the gap with pgcdc verify' },
    );
}
