/**
 * Setup's failover part: the slot as a PostgreSQL 17+ failover slot, and what the primary and each standby need
 * so that a synchronised copy of it survives a promotion (docs/recovery.md, Failover). Printed as notes: the
 * standby's parameters are set on the standby, which setup does not connect to.
 */
import { quoteLiteral } from '../postgres/quote.ts';
import type { SetupOptions, SetupStep } from './plan-types.ts';

const SECTION = 'Failover';

/** Failover slots exist from 17; an unknown major (not connected) is planned for 17+ only when told. */
export function failoverSlot(o: Pick<SetupOptions, 'major'>): boolean {
  return o.major !== undefined && o.major >= 17;
}

/** The SQL creating the slot: a failover slot on 17+ (the 5th argument), the plain call before. */
export function createSlotSql(o: Pick<SetupOptions, 'major' | 'slot'>): string {
  return failoverSlot(o)
    ? `SELECT pg_create_logical_replication_slot(${quoteLiteral(o.slot)}, 'pgoutput', false, false, true);`
    : `SELECT pg_create_logical_replication_slot(${quoteLiteral(o.slot)}, 'pgoutput');`;
}

/** The notes of the Failover section for the server's major. */
export function failoverSteps(o: Pick<SetupOptions, 'major' | 'slot'>): SetupStep[] {
  const note = (title: string): SetupStep => ({ section: SECTION, title, manual: true, note: true });
  if (o.major !== undefined && o.major < 17)
    return [
      note(
        `PostgreSQL ${o.major} does not synchronise logical slots to standbys: after a failover the slot is ` +
          'missing and pgcdc refuses to resume (SLOT_MISSING) until you start over on purpose; PostgreSQL 17+ ' +
          'failover slots avoid that',
      ),
    ];
  return [
    note(
      `${o.major === undefined ? 'on PostgreSQL 17+ (not connected: the major is unknown) ' : ''}` +
        `slot ${o.slot} is a failover slot (pgcdc run creates it so, or alters it, with slotFailover auto)`,
    ),
    note(
      "on the primary: synchronized_standby_slots = '<each standby's physical slot>' (so pgcdc never receives " +
        'a change a standby lacks), then SELECT pg_reload_conf();',
    ),
    note(
      'on each standby that may be promoted: sync_replication_slots = on, hot_standby_feedback = on, ' +
        "primary_slot_name = '<its physical slot>', and dbname=<a database> in primary_conninfo",
    ),
    note('after a failover, point pgcdc at the promoted server with the same offsets: it checks the timeline'),
  ];
}
