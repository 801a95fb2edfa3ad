/**
 * Failover preflight (PostgreSQL 17+, on a primary with a physical standby): what keeps pgcdc's slot alive
 * through a promotion of that standby, judged from the primary. Warnings only: a primary without a standby, or
 * a standby never meant to be promoted, is fine. The facts are read by readFailoverFacts (read-only catalog
 * queries); the rules are pure.
 *
 * The standby's own settings (sync_replication_slots, hot_standby_feedback, primary_slot_name, a dbname in
 * primary_conninfo) cannot be read from the primary, but their effect can: the standby's slot sync worker
 * connects to the primary as an ordinary backend (application_name `slotsync worker`, or the one in
 * primary_conninfo), and starts only when all of them are set.
 */
import type pg from 'pg';
import { quoteLiteral } from '../postgres/quote.ts';
import type { Problem } from './problem.ts';
import { problem, type PreflightInput } from './rule-input.ts';

export interface FailoverFacts {
  /** Physical slots on this server, and whether a standby streams from each now. */
  readonly physicalSlots: readonly { readonly name: string; readonly active: boolean }[];
  /** Physical walsenders streaming without a slot (a standby without primary_slot_name). */
  readonly slotlessStandbys: number;
  /** synchronized_standby_slots, as a list of names. */
  readonly synchronizedStandbySlots: readonly string[];
  /** Whether a standby's slot sync worker is connected (sync_replication_slots = on there). */
  readonly slotSyncConnected: boolean;
}

/** Reads the failover facts: PostgreSQL 17+ primaries only (undefined elsewhere). */
export async function readFailoverFacts(
  client: pg.ClientBase,
  major: number,
  inRecovery: boolean,
): Promise<FailoverFacts | undefined> {
  if (major < 17 || inRecovery) return undefined;
  const { rows } = await client.query<{
    slots: { name: string; active: boolean }[] | null;
    slotless: number;
    sss: string | null;
    sync: boolean;
  }>(
    `select (select json_agg(json_build_object('name', slot_name, 'active', active) order by slot_name)
               from pg_replication_slots where slot_type = 'physical') as slots,
            (select count(*)::int from pg_stat_activity a
              where a.backend_type = 'walsender' and a.datname is null
                and not exists (select 1 from pg_replication_slots s where s.active_pid = a.pid)) as slotless,
            current_setting('synchronized_standby_slots', true) as sss,
            exists (select 1 from pg_stat_activity a
                     where a.backend_type = 'client backend' and a.pid <> pg_backend_pid()
                       and (a.application_name like '%slotsync worker'
                            or a.application_name in (select w.application_name from pg_stat_activity w
                                                       where w.backend_type = 'walsender' and w.datname is null
                                                         and w.application_name <> ''))) as sync`,
  );
  const row = rows[0];
  return {
    physicalSlots: row?.slots ?? [],
    slotlessStandbys: row?.slotless ?? 0,
    synchronizedStandbySlots: (row?.sss ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== ''),
    slotSyncConnected: row?.sync ?? false,
  };
}

/** The parameters a standby needs to keep synchronised copies of failover slots (also printed by setup). */
export const STANDBY_FAILOVER_SETTINGS =
  "sync_replication_slots = on, hot_standby_feedback = on, primary_slot_name = '<its physical slot>', and a " +
  'dbname in primary_conninfo';

/** Warnings when a standby exists that could be promoted but pgcdc's slot would not survive it. */
export function failoverRules(input: PreflightInput): Problem[] {
  const facts = input.failover;
  if (!facts) return [];
  const standbys = facts.physicalSlots.filter((s) => s.active);
  if (standbys.length === 0 && facts.slotlessStandbys === 0) return [];
  const out: Problem[] = [];
  const notFailover = input.slot ? input.slot.failover === false : input.slotFailover === false;
  if (notFailover && (input.mode === 'check' || input.slotFailover === false)) {
    out.push(
      problem(
        'warning',
        'failover-slot',
        `slot ${input.slotName} ${input.slot ? 'is' : 'will be created as'} not a failover slot: a promoted ` +
          'standby will not have it, and pgcdc will refuse to resume there (SLOT_MISSING)',
        input.slotFailover === false
          ? 'set slotFailover to auto or true (--slot-failover auto): pgcdc then creates it with FAILOVER, or ' +
              'alters the existing slot'
          : 'pgcdc run (slotFailover auto) alters the existing slot to a failover slot on its next start',
      ),
    );
  }
  const unnamed = standbys.filter((s) => !facts.synchronizedStandbySlots.includes(s.name)).map((s) => s.name);
  if (unnamed.length > 0) {
    const all = [...new Set([...facts.synchronizedStandbySlots, ...unnamed])].join(',');
    out.push(
      problem(
        'warning',
        'synchronized-standby-slots',
        `synchronized_standby_slots does not name the standby slot${unnamed.length === 1 ? '' : 's'} ` +
          `${unnamed.join(', ')}: pgcdc may receive (and confirm) changes that standby has not, which a ` +
          'promotion of it would lose',
        `ALTER SYSTEM SET synchronized_standby_slots = ${quoteLiteral(all)}; SELECT pg_reload_conf();`,
      ),
    );
  }
  if (facts.slotlessStandbys > 0) {
    out.push(
      problem(
        'warning',
        'standby-slot',
        `${facts.slotlessStandbys} standby${facts.slotlessStandbys === 1 ? ' streams' : 's stream'} without a ` +
          'physical slot: failover slots are synchronised only to standbys streaming through one',
        'create a physical slot (SELECT pg_create_physical_replication_slot(...)) and set primary_slot_name ' +
          'on the standby',
      ),
    );
  }
  if (!facts.slotSyncConnected) {
    out.push(
      problem(
        'warning',
        'standby-slot-sync',
        'no standby is synchronising replication slots (no slot sync worker is connected): after a promotion ' +
          `slot ${input.slotName} would be missing`,
        `on the standby set ${STANDBY_FAILOVER_SETTINGS} (docs/recovery.md, Failover)`,
      ),
    );
  }
  return out;
}
