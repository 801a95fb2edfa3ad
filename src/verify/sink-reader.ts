/**
 * The one interface `pgcdc verify` reads a sink through: a SinkReader replays a table's events, in
 * the order the sink holds them, up to a given LSN, into per-table state keyed by the event key
 * (sink-state.ts). JSONL implements it today (jsonl-reader.ts); the other sinks (Kafka topics,
 * NATS streams, Redis streams) come later through the same interface: read their records in order,
 * hand each record's bytes (they are event lines, or key and value taken from one) to `applyEvent`.
 *
 * Replay rules (`applyEvent`), the same whatever the sink:
 * - c, u, r (snapshot read): the key's row is the event's row; d: the key is gone; t: the table is
 *   empty. A primary-key change is two events (d of the old key, c of the new one: envelope/json.ts
 *   writeKeyChange), so it needs no rule of its own.
 * - Which events count: those whose position (the LSN their id starts with) is below `upTo`. A
 *   change's id starts with its transaction's commit LSN, and a transaction is visible in a
 *   snapshot exported at consistent point L exactly when its commit record lies before L (it
 *   commits before the slot's snapshot is built; later ones are the slot's to stream). A snapshot
 *   read's id starts with the point its snapshot was taken at, which is likewise before or after L.
 * - Keyless tables: a multiset of row hashes; d and u remove their old row (the event's `before`,
 *   sent under REPLICA IDENTITY FULL). Without an old row the table is marked unreplayable.
 */
import type { Lsn } from '../protocol/messages.ts';
import type { ScanFormat, ScannedEvent } from './event-scan.ts';
import { forEachMember } from './event-scan.ts';
import { rowHash, type KeylessState, type TableState } from './sink-state.ts';

/** A table as the sink holds it. */
export interface ReplayTable {
  /** `schema.table`, for messages. */
  readonly name: string;
  /** The topic its events are written to (envelope/topics.ts topicName). */
  readonly topic: string;
  readonly format: ScanFormat;
  /** The TOAST placeholder as the JSON string the rows hold it as (`"__pgcdc_unavailable_value"`). */
  readonly placeholderJson: Buffer;
}

export type ReplayOutcome =
  | {
      /** The sink holds nothing for the table (no file, topic or stream): every source row is missing. */
      readonly kind: 'absent';
      readonly detail: string;
    }
  | {
      readonly kind: 'replayed';
      /** Events applied (position below upTo). */
      readonly events: number;
      /** Events at or after upTo, not applied. */
      readonly later: number;
      /** Lines that are not events of this table's format. */
      readonly malformed: number;
      /** Something the sink should hold and does not (e.g. a file shorter than its checkpoint). */
      readonly damage: string | undefined;
    };

export interface SinkReader {
  /** The sink kind, for the report. */
  readonly kind: string;
  /**
   * Replays `table`'s durable events whose position is below `upTo` into `state`, in the order
   * the sink holds them. Reads only what the sink made durable (never a torn tail after a crash).
   */
  replayTable(table: ReplayTable, upTo: Lsn, state: TableState): Promise<ReplayOutcome>;
}

/** Counters one replay keeps. */
export interface ReplayCounters {
  events: number;
  later: number;
  malformed: number;
}

/** The names of the row's members whose value is the placeholder. */
function placeholderColumns(data: Buffer, start: number, end: number, placeholder: Buffer): string[] {
  const names: string[] = [];
  // The row range has no closing brace: scan a copy that has one (rare path).
  const row = Buffer.concat([data.subarray(start, end), Buffer.from('}')]);
  forEachMember(row, 0, row.length, (ns, ne, vs, ve) => {
    if (ve - vs === placeholder.length && row.compare(placeholder, 0, placeholder.length, vs, ve) === 0)
      names.push(JSON.parse(row.toString('utf8', ns, ne)) as string);
    return false;
  });
  return names;
}

function applyKeyless(state: KeylessState, data: Buffer, scan: ScannedEvent, name: string): void {
  const op = scan.op;
  if (op === 't') state.clear();
  else if (op === 'd') {
    if (scan.rowStart < 0) state.unreplayable ??= `a delete of ${name} carries no old row`;
    else state.remove(rowHash(data, scan.rowStart, scan.rowEnd));
  } else if (op === 'u') {
    if (scan.beforeStart < 0) state.unreplayable ??= `an update of ${name} carries no old row`;
    else state.remove(rowHash(data, scan.beforeStart, scan.beforeEnd));
    if (scan.rowStart >= 0) state.add(rowHash(data, scan.rowStart, scan.rowEnd));
  } else if (scan.rowStart >= 0) state.add(rowHash(data, scan.rowStart, scan.rowEnd));
}

/** Applies one scanned event of `table` (position already checked) to `state`. */
export function applyEvent(table: ReplayTable, state: TableState, data: Buffer, scan: ScannedEvent): void {
  if (!state.keyed) {
    applyKeyless(state, data, scan, table.name);
    return;
  }
  const op = scan.op;
  if (op === 't') {
    state.clear();
    return;
  }
  if (scan.keyStart < 0) return; // a keyed table's event always has a key; nothing to apply
  const key = data.toString('latin1', scan.keyStart, scan.keyEnd);
  if (op === 'd') state.delete(key);
  else if (scan.rowStart >= 0) {
    state.set(key, rowHash(data, scan.rowStart, scan.rowEnd));
    // Only updates can carry unchanged TOAST values.
    if (op === 'u' && data.subarray(scan.rowStart, scan.rowEnd).indexOf(table.placeholderJson) >= 0) {
      const columns = placeholderColumns(data, scan.rowStart, scan.rowEnd, table.placeholderJson);
      if (columns.length > 0) state.partial.set(key, columns);
    }
  }
}
