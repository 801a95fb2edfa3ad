/**
 * The initial snapshot's ranges (initial-reader.ts): the tables cut into the chunks readers read at
 * once, in hand-over order. A keyed table's range ends at the key `chunkRows` keys on (found by an
 * index walk, query.ts keyBoundarySql), so each range holds exactly the rows a LIMIT read of
 * `chunkRows` would; its last range is open-ended. A keyless table's ranges are `chunkPages` heap
 * pages each.
 */
import type pg from 'pg';
import { CdcError } from '../core/errors.ts';
import type { ChunkCursor } from '../offsets/store.ts';
import { parseLines, type CopyRow } from './copy-text.ts';
import {
  copyBytes,
  ctidChunkSql,
  initialCursor,
  keyBoundarySql,
  keyRangeChunkSql,
  type BackfillTable,
  type ChunkSizing,
} from './query.ts';
import { chunkSizing, describeBackfillTable } from './tables.ts';
import type { GeneratedColumns } from '../postgres/catalog.ts';

export interface TableName {
  readonly schema: string;
  readonly table: string;
}

/** `schema.table`, the key of `resume` and of progress (names may contain dots: it is only a map key). */
export function tableKey(name: TableName): string {
  return `${name.schema}.${name.table}`;
}

/** What planning needs of the snapshot's options (initial-reader.ts SnapshotOptions). */
export interface PlanOptions {
  readonly major: number;
  readonly generatedColumns?: GeneratedColumns | undefined;
  readonly chunkRows: number;
  readonly resume?: ReadonlyMap<string, ChunkCursor>;
}

/** A table being read: its description, sizing, and where the next range starts. */
export interface OpenTable {
  readonly name: TableName;
  readonly table: BackfillTable;
  readonly sizing: ChunkSizing;
  /** The start of the next range to plan; `done` once its last range is planned. */
  next: ChunkCursor;
}

/** One range of one table, in hand-over order. */
export interface ChunkTask {
  readonly open: OpenTable;
  /** The cursor after the range (for a keyset range: the key it ends at). */
  readonly to: ChunkCursor;
  /** The SELECT that reads the range. */
  readonly select: string;
  /** The range runs to the end of the table. */
  readonly final: boolean;
  /** Its rows, set by the reader that took it. */
  result?: Promise<{ data: Buffer; rows: number }>;
}

/** The cursor after a table's last range: its last row's key when it has rows (as a LIMIT read leaves it). */
export function cursorAfterFinal(task: ChunkTask, data: Buffer, rows: number): ChunkCursor {
  if (task.to.kind !== 'key' || rows === 0) return task.to;
  const table = task.open.table;
  const parsed: CopyRow[] = [];
  parseLines(data.toString('utf8', data.lastIndexOf(0x0a, data.length - 2) + 1), table.columns.length, parsed);
  const last = parsed[0] as CopyRow;
  const after = table.keyIndexes.map((i) => {
    const value = last[i];
    // A primary key or replica identity index column is never NULL.
    if (value === null || value === undefined)
      throw new CdcError('INTERNAL', `a key column of ${table.schema}.${table.table} read as NULL`);
    return value;
  });
  return { kind: 'key', after, done: true };
}

/**
 * Cuts the tables into ranges, in hand-over order, on the connection of the reader asking: a
 * table is described and sized when its first range is planned; a keyed table's range ends at the
 * key found `chunkRows` keys on (the last range is open-ended), a keyless table's at the next
 * `chunkPages` pages.
 */
export class RangePlanner {
  private readonly options: PlanOptions;
  private readonly queue: TableName[];
  private open: OpenTable | undefined;
  /** No range is left to plan. */
  finished = false;

  constructor(options: PlanOptions, tables: readonly TableName[]) {
    this.options = options;
    this.queue = tables.slice();
  }

  /** Tables whose reading has not started. */
  get tablesWaiting(): number {
    return this.queue.length;
  }

  async next(client: pg.Client): Promise<ChunkTask | undefined> {
    if (this.finished) return undefined;
    while (this.open === undefined || this.open.next.done) {
      const name = this.queue.shift();
      if (name === undefined) {
        this.finished = true;
        return undefined;
      }
      this.open = await this.openTable(client, name);
    }
    const open = this.open;
    const from = open.next;
    const task = from.kind === 'key' ? await this.keyRange(client, open, from) : this.pageRange(open, from);
    open.next = task.to;
    return task;
  }

  private async openTable(client: pg.Client, name: TableName): Promise<OpenTable> {
    const o = this.options;
    const table = await describeBackfillTable(client, name.schema, name.table, o.major, o.generatedColumns);
    const sizing = await chunkSizing(client, table, o.chunkRows);
    const key = tableKey(name);
    const start = initialCursor(table);
    const next = o.resume?.get(key) ?? start;
    if (next.kind !== start.kind) {
      throw new CdcError(
        'CONFIG_INVALID',
        `the stored snapshot progress of ${key} is by ${next.kind} but the table is now read by ${start.kind}`,
        {
          hint:
            'its key (primary key or replica identity index) was added or dropped since; restart the ' +
            'snapshot of this table',
        },
      );
    }
    return { name, table, sizing, next };
  }

  private async keyRange(client: pg.Client, open: OpenTable, from: ChunkCursor & { kind: 'key' }): Promise<ChunkTask> {
    const found = await copyBytes(client, keyBoundarySql(open.table, from.after, open.sizing.chunkRows));
    const keys: CopyRow[] = [];
    parseLines(found.toString('utf8'), open.table.keyIndexes.length, keys);
    const boundary = keys[0];
    if (boundary === undefined) {
      // Fewer than chunkRows rows remain: the last range, whose cursor is its last row's key (known once read).
      return {
        open,
        to: { kind: 'key', after: from.after, done: true },
        select: keyRangeChunkSql(open.table, from.after, null),
        final: true,
      };
    }
    const after = boundary.map((value) => {
      // A primary key or replica identity index column is never NULL.
      if (value === null) throw new CdcError('INTERNAL', `a key column of ${tableKey(open.name)} read as NULL`);
      return value;
    });
    return {
      open,
      to: { kind: 'key', after, done: false },
      select: keyRangeChunkSql(open.table, from.after, after),
      final: false,
    };
  }

  private pageRange(open: OpenTable, from: ChunkCursor & { kind: 'ctid' }): ChunkTask {
    const { chunkPages, relationPages } = open.sizing;
    // The last range is open-ended, so pages added since the size was read are read too.
    const toPage = from.nextPage + chunkPages >= relationPages ? null : from.nextPage + chunkPages;
    return {
      open,
      to:
        toPage === null
          ? { kind: 'ctid', nextPage: from.nextPage, done: true }
          : { kind: 'ctid', nextPage: toPage, done: false },
      select: ctidChunkSql(open.table, from.nextPage, toPage),
      final: toPage === null,
    };
  }
}
