/**
 * Helpers for snapshot tests: the stored progress, a concurrent workload on the same keys, and
 * the replay check (every event applied in delivery order onto an empty map equals the table).
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type pg from 'pg';
import { compareRows, readJsonl, replay, type DeliveredEvent } from './cli.ts';
import type { TestDatabase } from './pg.ts';
import { readCheckpoint } from '../../src/offsets/file.ts';
import type { Checkpoint } from '../../src/offsets/store.ts';
import { pendingTables } from '../../src/snapshot/resume-state.ts';

export interface StoredProgress {
  lsn: string;
  snapshot?: {
    state: string;
    only?: boolean;
    tables?: { table: string; emitted: number; cursor: { done: boolean } }[];
  };
  incremental?: {
    id: string;
    tables: {
      schema: string;
      table: string;
      read: number;
      emitted: number;
      stopped?: boolean;
      cursor: { done: boolean };
    }[];
    requests: string[];
  };
}

export async function storedProgress(offsets: string): Promise<StoredProgress | undefined> {
  const text = await readFile(offsets, 'utf8').catch(() => undefined);
  return text === undefined ? undefined : (JSON.parse(text) as StoredProgress);
}

/** The incremental snapshot has tables and every one is done (or stopped). */
export function incrementalDone(state: StoredProgress | undefined): boolean {
  const tables = state?.incremental?.tables ?? [];
  return tables.length > 0 && tables.every((t) => t.cursor.done || t.stopped === true);
}

/** The stored offset has reached the server's current WAL position (everything written is delivered). */
export async function caughtUp(sql: pg.Client, offsets: string): Promise<boolean> {
  const state = await storedProgress(offsets);
  if (!state) return false;
  const { rows } = await sql.query<{ ok: boolean }>(`select $1::pg_lsn >= pg_current_wal_lsn() as ok`, [state.lsn]);
  return rows[0]?.ok === true;
}

/**
 * Whether a stored checkpoint still has a snapshot to read: an initial snapshot running, or an
 * incremental snapshot table pending (a lost-slot recovery's re-read among them).
 */
export function snapshotPending(checkpoint: Checkpoint): boolean {
  return checkpoint.snapshot?.state === 'running' || pendingTables(checkpoint.incremental).length > 0;
}

/**
 * Caught up and no snapshot left to read. A start's first checkpoint already stands at the slot's
 * position while its initial snapshot is being read (and an interrupted one is continued online
 * after streaming resumed), so `caughtUp` alone can hold while rows are still to come.
 */
export async function settled(sql: pg.Client, offsets: string): Promise<boolean> {
  const stored = await readCheckpoint(offsets).catch(() => undefined);
  if (stored === undefined || snapshotPending(stored)) return false;
  const { rows } = await sql.query<{ ok: boolean }>(`select $1::pg_lsn >= pg_current_wal_lsn() as ok`, [stored.lsn]);
  return rows[0]?.ok === true;
}

/**
 * Inserts, updates and deletes random keys of `table (id int primary key, n int, ...)` in
 * `[1, keys]` until `stop()` is called; resolves with the number of statements run.
 */
export function workload(db: TestDatabase, table: string, keys: number): { stop: () => Promise<number> } {
  let running = true;
  let statements = 0;
  const done = (async () => {
    while (running) {
      const a = 1 + Math.floor(Math.random() * keys);
      const b = 1 + Math.floor(Math.random() * keys);
      const c = 1 + Math.floor(Math.random() * keys);
      await db.sql.query(`begin;
        update ${table} set n = n + 1 where id in (${a}, ${a + 1}, ${a + 2});
        delete from ${table} where id = ${b};
        insert into ${table} (id, n) values (${c}, -1) on conflict (id) do update set n = excluded.n - 1;
        commit`);
      statements += 3;
    }
    return statements;
  })();
  return {
    stop: async () => {
      running = false;
      return done;
    },
  };
}

export interface Verdict {
  lost: number;
  extra: number;
  mismatched: number;
  duplicates: number;
  /** Rows read by snapshots (op r), and of them, keys read twice by the same incremental snapshot. */
  reads: number;
  rereads: number;
}

/**
 * Replays every delivered event of `topicTable` onto an empty map and compares with the table,
 * selected by `select` (its columns must be the event's, its key `id`).
 */
export async function verifyTable(
  db: TestDatabase,
  out: string,
  table: string,
  select = `select * from ${table}`,
): Promise<Verdict & { events: DeliveredEvent[] }> {
  const events = (await readJsonl(out)).filter((e) => e.topic === `${db.name}.public.${table}`);
  const { rows } = await db.sql.query<Record<string, unknown>>(select);
  const source = new Map(rows.map((r) => [JSON.stringify({ id: r.id }), r]));
  const result = replay(events);
  const comparison = compareRows(result.tables.get(`${db.name}.public.${table}`), source);
  const reads = events.filter((e) => e.value.op === 'r');
  const seen = new Set<string>();
  let rereads = 0;
  for (const e of reads) {
    const key = `${e.id.split(':').slice(0, 3).join(':')}|${JSON.stringify(e.key)}`;
    if (seen.has(key)) rereads++;
    seen.add(key);
  }
  return { ...comparison, duplicates: result.duplicates, reads: reads.length, rereads, events };
}

export function assertExact(verdict: Verdict, what: string): void {
  assert.deepEqual(
    {
      lost: verdict.lost,
      extra: verdict.extra,
      mismatched: verdict.mismatched,
      duplicates: verdict.duplicates,
      rereads: verdict.rereads,
    },
    { lost: 0, extra: 0, mismatched: 0, duplicates: 0, rereads: 0 },
    what,
  );
}

export function outDir(dir: string): string {
  return path.join(dir, 'events');
}

export interface MultisetVerdict {
  /** Copies of a row the table has and the replay lacks, and the other way round. */
  lost: number;
  extra: number;
  /** Events whose id was delivered before. */
  duplicates: number;
  /** Updates and deletes whose `before` row was not in the replayed table (a row never delivered). */
  missingBefore: number;
}

/**
 * Replays the events of a keyless table onto an empty multiset of rows (`r`/`c` add `after`, `u`
 * removes one copy of `before` and adds `after`, `d` removes one copy of `before`, `t` empties it)
 * in delivery order, and compares it with `rows` (the table read with the events' columns in order).
 */
export function replayMultiset(
  events: readonly DeliveredEvent[],
  rows: readonly Record<string, unknown>[],
): MultisetVerdict {
  const bag = new Map<string, number>();
  const add = (row: Record<string, unknown>): void => {
    const key = JSON.stringify(row);
    bag.set(key, (bag.get(key) ?? 0) + 1);
  };
  let missingBefore = 0;
  const remove = (row: Record<string, unknown> | null): void => {
    const key = JSON.stringify(row);
    const count = bag.get(key) ?? 0;
    if (count === 0) missingBefore++;
    else if (count === 1) bag.delete(key);
    else bag.set(key, count - 1);
  };
  const seen = new Set<string>();
  let duplicates = 0;
  for (const event of events) {
    if (seen.has(event.id)) {
      duplicates++;
      continue;
    }
    seen.add(event.id);
    const { op, before, after } = event.value;
    if (op === 't') bag.clear();
    else if (op === 'd') remove(before);
    else if (op === 'u') {
      remove(before);
      add(after ?? {});
    } else if (op === 'c' || op === 'r') add(after ?? {});
  }
  const table = new Map<string, number>();
  for (const row of rows) {
    const key = JSON.stringify(row);
    table.set(key, (table.get(key) ?? 0) + 1);
  }
  let lost = 0;
  let extra = 0;
  for (const [key, count] of table) lost += Math.max(0, count - (bag.get(key) ?? 0));
  for (const [key, count] of bag) extra += Math.max(0, count - (table.get(key) ?? 0));
  return { lost, extra, duplicates, missingBefore };
}
