/**
 * Snapshot progress for people: a bar per table on a terminal (rows, percent, rows/s, ETA), plain
 * periodic lines otherwise. Machines read the same counters from the checkpoint (`snapshot.tables`
 * and `incremental.tables` in the offsets file, see docs/snapshots.md).
 *
 * Totals are the planner's estimates (pg_class.reltuples), so percent and ETA are approximate and
 * capped below 100% until a table is done.
 */
import type pg from 'pg';
import type { SnapshotTableState } from '../offsets/store.ts';
import type { Logger } from '../core/log.ts';

export type SnapshotBarsMode = 'auto' | 'bars' | 'lines' | 'off';

/** Estimated rows per `schema.table` (absent or <= 0: unknown). */
export async function estimateRows(
  client: pg.ClientBase,
  tables: readonly { schema: string; table: string }[],
): Promise<Map<string, number>> {
  if (tables.length === 0) return new Map();
  const { rows } = await client.query<{ name: string; rows: number }>(
    `select t.s || '.' || t.r as name,
            coalesce((select sum(greatest(c2.reltuples, 0))::float8 from pg_inherits i join pg_class c2 on ` +
      `c2.oid = i.inhrelid where i.inhparent = c.oid), 0) + greatest(c.reltuples, 0)::float8 as rows
       from unnest($1::text[], $2::text[]) as t(s, r)
       join pg_namespace n on n.nspname = t.s join pg_class c on c.relnamespace = n.oid and c.relname = t.r`,
    [tables.map((t) => t.schema), tables.map((t) => t.table)],
  );
  return new Map(rows.map((r) => [r.name, r.rows]));
}

const LINES_EVERY_MS = 10_000;
const BARS_EVERY_MS = 250;
const BAR_WIDTH = 24;

interface Rate {
  readonly startedAt: number;
  readonly startRows: number;
}

export class SnapshotBars {
  private readonly out: NodeJS.WritableStream;
  private readonly mode: 'bars' | 'lines' | 'off';
  private readonly estimates: Map<string, number>;
  private readonly log: Logger;
  private readonly rates = new Map<string, Rate>();
  private latest: readonly SnapshotTableState[] = [];
  private lastDraw = 0;
  private drawnLines = 0;

  constructor(
    mode: SnapshotBarsMode,
    estimates: Map<string, number>,
    log: Logger,
    out: NodeJS.WritableStream & { isTTY?: boolean } = process.stderr,
  ) {
    this.out = out;
    this.mode = mode === 'auto' ? (out.isTTY === true ? 'bars' : 'lines') : mode;
    this.estimates = estimates;
    this.log = log;
  }

  update(tables: readonly SnapshotTableState[]): void {
    if (this.mode === 'off') return;
    this.latest = tables;
    const now = Date.now();
    for (const t of tables) {
      const key = `${t.schema}.${t.table}`;
      if (!this.rates.has(key) && !t.cursor.done) this.rates.set(key, { startedAt: now, startRows: t.emitted });
    }
    if (now - this.lastDraw < (this.mode === 'bars' ? BARS_EVERY_MS : LINES_EVERY_MS)) return;
    this.lastDraw = now;
    this.draw(now);
  }

  /** Draws the final state (every table's last numbers). */
  finish(): void {
    if (this.mode === 'off' || this.latest.length === 0) return;
    this.draw(Date.now());
  }

  private draw(now: number): void {
    const rows = this.latest.filter((t) => t.stopped !== true);
    if (this.mode === 'lines') {
      for (const t of rows)
        if (!t.cursor.done || this.rates.has(`${t.schema}.${t.table}`))
          this.log.info(this.figures(t, now), 'snapshot progress');
      return;
    }
    let text = this.drawnLines > 0 ? `\x1b[${this.drawnLines}A` : '';
    for (const t of rows) text += `\x1b[2K${this.bar(t, now)}\n`;
    this.drawnLines = rows.length;
    this.out.write(text);
  }

  private figures(
    t: SnapshotTableState,
    now: number,
  ): {
    table: string;
    rows: number;
    percent: number | null;
    rowsPerSecond: number;
    etaSeconds: number | null;
    done: boolean;
  } {
    const key = `${t.schema}.${t.table}`;
    const estimate = this.estimates.get(key) ?? 0;
    const rate = this.rates.get(key);
    const seconds = rate ? Math.max(0.001, (now - rate.startedAt) / 1000) : 0;
    const perSecond = rate && seconds > 0 ? Math.round((t.emitted - rate.startRows) / seconds) : 0;
    const done = t.cursor.done;
    const percent = done ? 100 : estimate > 0 ? Math.min(99, Math.floor((t.read / estimate) * 100)) : null;
    const eta =
      !done && estimate > t.read && perSecond > 0 ? Math.round((estimate - t.read) / perSecond) : done ? 0 : null;
    return { table: key, rows: t.emitted, percent, rowsPerSecond: perSecond, etaSeconds: eta, done };
  }

  private bar(t: SnapshotTableState, now: number): string {
    const f = this.figures(t, now);
    const filled = f.percent === null ? 0 : Math.round((f.percent / 100) * BAR_WIDTH);
    const bar = `${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}`;
    const percent = f.percent === null ? '  ?%' : `${String(f.percent).padStart(3)}%`;
    const eta = f.done ? 'done' : f.etaSeconds === null ? 'eta ?' : `eta ${formatDuration(f.etaSeconds)}`;
    return (
      `${f.table.padEnd(32).slice(0, 32)} [${bar}] ` +
      `${percent} ${String(f.rows).padStart(10)} rows ${String(f.rowsPerSecond).padStart(8)} rows/s ${eta}`
    );
  }
}

function formatDuration(seconds: number): string {
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m${String(seconds % 60).padStart(2, '0')}s`;
  return `${Math.floor(seconds / 3600)}h${String(Math.floor((seconds % 3600) / 60)).padStart(2, '0')}m`;
}
