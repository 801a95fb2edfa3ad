/**
 * The incremental snapshots' state as stored in the checkpoint (offsets/store.ts
 * IncrementalSnapshotState), and the pure transitions between its states. No I/O: the capture
 * applies them at transaction boundaries and stores the result with the events they describe.
 */
import type { IncrementalSnapshotState, SnapshotTableState } from '../offsets/store.ts';
import type { ChunkCursor } from '../offsets/store.ts';
import type { TableName } from './initial-reader.ts';

/** How many taken `pgcdc snapshot` request ids are remembered (a request is retried at most this far back). */
const REMEMBERED_REQUESTS = 64;

/** The cursor of a table not read yet. A keyless table's cursor is switched to ctid when it is described. */
export const FRESH_CURSOR: ChunkCursor = { kind: 'key', after: null, done: false };

export function sameTable(a: TableName, b: TableName): boolean {
  return a.schema === b.schema && a.table === b.table;
}

/** Still to be read: neither done nor stopped. */
export function isPending(table: SnapshotTableState): boolean {
  return !table.cursor.done && table.stopped !== true;
}

/** Indexes of the tables still to be read, in reading order. */
export function pendingTables(progress: IncrementalSnapshotState | undefined): number[] {
  if (!progress) return [];
  const out: number[] = [];
  progress.tables.forEach((t, i) => {
    if (isPending(t)) out.push(i);
  });
  return out;
}

function freshTable(name: TableName, cursor: ChunkCursor = FRESH_CURSOR): SnapshotTableState {
  return { schema: name.schema, table: name.table, cursor, read: 0, emitted: 0 };
}

/**
 * Adds `tables` to the running incremental snapshot, or starts a new one (named after `lsn`) when
 * none is running. A table already waiting or being read is not added twice (one waiting in a
 * targeted recovery is read in full instead); a table read before is read again.
 */
export function requestTables(
  progress: IncrementalSnapshotState | undefined,
  lsn: string,
  tables: readonly TableName[],
): IncrementalSnapshotState {
  const running = progress !== undefined && pendingTables(progress).length > 0;
  const base: IncrementalSnapshotState = running
    ? progress
    : {
        id: `${lsn}:i${(progress?.seq ?? 0) + 1}`,
        seq: (progress?.seq ?? 0) + 1,
        tables: [],
        requests: progress?.requests ?? [],
      };
  const added = tables.filter(
    (name, i) =>
      tables.findIndex((other) => sameTable(other, name)) === i &&
      !base.tables.some((t) => isPending(t) && sameTable(t, name)),
  );
  // A table waiting in a targeted lost-slot recovery is asked for in full: its read starts over
  // without the xid filter (still marked recovery), which covers both requests. `read` keeps
  // counting, so event ids stay unique.
  let widened = false;
  const current = base.tables.map((t) => {
    if (!isPending(t) || t.recovery?.horizon === undefined || !tables.some((name) => sameTable(name, t))) return t;
    widened = true;
    const cursor: ChunkCursor =
      t.cursor.kind === 'ctid' ? { kind: 'ctid', nextPage: 0, done: false } : { kind: 'key', after: null, done: false };
    return { ...t, cursor, recovery: {} };
  });
  if (running && added.length === 0 && !widened) return progress;
  return { ...base, tables: [...current, ...added.map((name) => freshTable(name))] };
}

/**
 * Continues an initial snapshot that was cut short: its unfinished tables become an incremental
 * snapshot with the same cursors (so nothing already delivered is read again). The tables of
 * `asOf.tables` (keyless ones) are read as the exported snapshot `asOf.xids` saw them
 * (snapshot/visibility.ts).
 */
export function continueInitial(
  progress: IncrementalSnapshotState | undefined,
  lsn: string,
  tables: readonly TableName[],
  done: readonly SnapshotTableState[],
  asOf?: { readonly xids: string; readonly tables: readonly TableName[] },
): IncrementalSnapshotState {
  const seq = (progress?.seq ?? 0) + 1;
  const list = tables
    .map((name) => done.find((t) => sameTable(t, name)) ?? freshTable(name))
    .filter(isPending)
    .map((t) => (asOf?.tables.some((name) => sameTable(name, t)) === true ? { ...t, asOf: asOf.xids } : t));
  return { id: `${lsn}:i${seq}`, seq, tables: list, requests: progress?.requests ?? [] };
}

/** Stops the reading of `tables` (all of them when undefined); what was delivered stays delivered. */
export function stopTables(
  progress: IncrementalSnapshotState | undefined,
  tables: readonly TableName[] | undefined,
): IncrementalSnapshotState | undefined {
  if (!progress) return progress;
  let changed = false;
  const list = progress.tables.map((t) => {
    if (!isPending(t) || (tables !== undefined && !tables.some((name) => sameTable(name, t)))) return t;
    changed = true;
    return { ...t, stopped: true };
  });
  return changed ? { ...progress, tables: list } : progress;
}

/** The table at `index` read one more chunk: `read` rows, `emitted` of them delivered, cursor now `cursor`. */
export function advanceTable(
  progress: IncrementalSnapshotState,
  index: number,
  cursor: ChunkCursor,
  read: number,
  emitted: number,
): IncrementalSnapshotState {
  const table = progress.tables[index];
  if (table === undefined) return progress;
  const tables = progress.tables.slice();
  tables[index] = { ...table, cursor, read: table.read + read, emitted: table.emitted + emitted };
  return { ...progress, tables };
}

/** Replaces the cursor of a table that was found to have no key (read by ctid instead). */
export function withCursor(
  progress: IncrementalSnapshotState,
  index: number,
  cursor: ChunkCursor,
): IncrementalSnapshotState {
  const table = progress.tables[index];
  if (table === undefined) return progress;
  const tables = progress.tables.slice();
  tables[index] = { ...table, cursor };
  return { ...progress, tables };
}

/** Notes a taken `pgcdc snapshot` request id. */
export function withRequest(progress: IncrementalSnapshotState, requestId: string): IncrementalSnapshotState {
  return { ...progress, requests: [...progress.requests, requestId].slice(-REMEMBERED_REQUESTS) };
}
