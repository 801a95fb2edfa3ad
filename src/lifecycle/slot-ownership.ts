/**
 * Which walsenders of this process have held the slot, so that a retry never takes the slot (and,
 * with exactly-once Kafka, the transactional id) back from a pgcdc that started while this one was
 * reconnecting. Without it the last pgcdc to (re)start wins: a first pgcdc between two retry
 * attempts when a second one starts would, at its next attempt, fence the second (which had taken
 * over in the meantime) and the two would take turns. With it the one that lost the slot stops.
 *
 * A slot active for one of this process's own walsenders (one still exiting after a cut or a
 * half-open connection) is not taken over: the restart rule waits for it (SOURCE_NOT_READY).
 */
import type pg from 'pg';
import { CdcError } from '../core/errors.ts';

export class SlotOwnership {
  private readonly walsenders = new Set<number>();

  /** The walsender `pid` of this process holds the slot (created it or started streaming it). */
  took(pid: number): void {
    this.walsenders.add(pid);
  }

  /**
   * Before a start-up touches the offsets or the sink: once this process has held the slot, a slot
   * now active for another process means another pgcdc (or consumer) took it over while this one
   * was reconnecting. Rejects with SLOT_TAKEN_OVER (not retried); resolves otherwise.
   */
  async refuseIfTakenOver(query: pg.Client, slot: string): Promise<void> {
    if (this.walsenders.size === 0) return;
    const result = await query.query<{ active_pid: number | null }>(
      'select active_pid from pg_catalog.pg_replication_slots where slot_name = $1',
      [slot],
    );
    const pid = result.rows[0]?.active_pid ?? null;
    if (pid === null || this.walsenders.has(pid)) return;
    throw new CdcError(
      'SLOT_TAKEN_OVER',
      `another process (pid ${pid}) streams slot ${slot} since this pgcdc lost its connection: ` +
        'this one stops without acknowledging more',
      { hint: 'run one pgcdc per slot; the one streaming now continues from the stored checkpoint' },
    );
  }
}
