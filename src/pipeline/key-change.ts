/**
 * Primary-key changes (docs/events.md): whether an update moved its row to another key, which the
 * assembler then writes as a delete of the old key and a create of the new one, as Debezium does.
 */
import { UNCHANGED_TOAST, type TupleData } from '../protocol/messages.ts';
import type { TableSerializer } from '../envelope/json.ts';

/**
 * True when `old` (the old key 'K' or old row 'O' pgoutput sent) carries every key column and one
 * differs from `row`. A key column absent from `old` (null: key columns are NOT NULL, so null means
 * not sent, e.g. a REPLICA IDENTITY USING INDEX on other columns) means it cannot tell: a plain update.
 * An unchanged TOAST value in `row` is unchanged.
 */
export function keyChanged(keyIndexes: readonly number[], old: TupleData, row: TupleData): boolean {
  let changed = false;
  for (const i of keyIndexes) {
    const before = old[i];
    const after = row[i];
    if (before === null || before === undefined || before === UNCHANGED_TOAST) return false;
    if (after === UNCHANGED_TOAST) continue;
    if (typeof before === 'string' ? before !== after : !(Buffer.isBuffer(after) && before.equals(after)))
      changed = true;
  }
  return changed;
}

/**
 * `old` laid out in the columns of `variant`, a TOAST omit variant of `s` (columns left out): the
 * key columns are always kept, so the old key reads the same.
 */
export function oldKeyIn(s: TableSerializer, variant: TableSerializer, old: TupleData): TupleData {
  const byName = new Map(s.table.columns.map((c, i) => [c.name, i]));
  return variant.table.columns.map((c) => old[byName.get(c.name) ?? -1] ?? null);
}
