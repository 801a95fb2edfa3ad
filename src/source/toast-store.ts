/**
 * The TOAST fill store (`toast.mode: fill`): the last known large values of each row, so an update
 * that leaves a TOASTed column unchanged (PostgreSQL then does not send it) can still carry it.
 *
 * Contract:
 * - Keyed by table and event key. An entry holds exactly the row's current large string values
 *   (see FILL_MIN_LENGTH); every insert or update replaces the whole entry, so a column missing from
 *   it is a miss, never a stale value.
 * - In memory: one LRU map bounded by `maxBytes` (value and key lengths). An evicted row is a cold
 *   miss later, never a wrong value.
 * - On disk: an append-only journal `<offsets>.toast`, one JSON line per checkpoint with the
 *   operations of the transactions it covers, tagged with the checkpoint LSN. `persist(lsn)` is
 *   called (and fsynced) *before* that checkpoint is stored; `open` replays only lines at or below
 *   the stored checkpoint and drops the rest, so after a restart the store is exactly the state at
 *   the resume point: neither newer values (journaled but not checkpointed) nor older ones.
 * - The journal is rewritten compactly (temp file, fsync, rename) when it outgrows the live data.
 */
import { createReadStream } from 'node:fs';
import { open, rename, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { CdcError } from '../core/errors.ts';
import { syncDir } from '../core/durability.ts';

/** Values shorter than this are never stored: PostgreSQL moves only large values out of line. */
export const FILL_MIN_LENGTH = 256;

/** Column name -> value text. */
export type StoredRow = Readonly<Record<string, string>>;

type Operation = readonly ['p', string, StoredRow] | readonly ['d', string] | readonly ['t', string];

interface JournalLine {
  readonly lsn: number;
  readonly ops: readonly Operation[];
}

const SEP = '\u0000';

export class ToastStore {
  readonly file: string;
  private readonly maxBytes: number;
  private readonly rows = new Map<string, StoredRow>();
  private bytes = 0;
  /** Operations of the open transaction. */
  private pending: Operation[] = [];
  /** Committed transactions not yet journaled, in commit order. */
  private readonly committed: JournalLine[] = [];
  private journalBytes = 0;
  /** Cold misses since start (logged by the capture). */
  misses = 0;
  hits = 0;

  private constructor(file: string, maxBytes: number) {
    this.file = file;
    this.maxBytes = maxBytes;
  }

  /** Loads the journal up to `checkpointLsn` (nothing when there is no checkpoint) and compacts it. */
  static async open(file: string, maxBytes: number, checkpointLsn: number | undefined): Promise<ToastStore> {
    const store = new ToastStore(path.resolve(file), maxBytes);
    if (checkpointLsn !== undefined) await store.replay(checkpointLsn);
    await store.rewrite(checkpointLsn ?? 0);
    return store;
  }

  static key(table: string, key: string): string {
    return `${table}${SEP}${key}`;
  }

  get size(): { rows: number; bytes: number } {
    return { rows: this.rows.size, bytes: this.bytes };
  }

  get(key: string): StoredRow | undefined {
    const row = this.rows.get(key);
    if (row !== undefined) {
      // LRU: most recently used last.
      this.rows.delete(key);
      this.rows.set(key, row);
    }
    return row;
  }

  put(key: string, row: StoredRow): void {
    this.apply(['p', key, row]);
    this.pending.push(['p', key, row]);
  }

  delete(key: string): void {
    if (!this.rows.has(key)) return;
    this.apply(['d', key]);
    this.pending.push(['d', key]);
  }

  truncate(table: string): void {
    this.apply(['t', table]);
    this.pending.push(['t', table]);
  }

  /** The open transaction committed at `endLsn`; its operations wait for the checkpoint covering it. */
  commit(endLsn: number): void {
    if (this.pending.length === 0) return;
    this.committed.push({ lsn: endLsn, ops: this.pending });
    this.pending = [];
  }

  /**
   * Makes every transaction committed at or below `lsn` durable in the journal, tagged `lsn`.
   * Must resolve before the checkpoint at `lsn` is stored.
   */
  async persist(lsn: number): Promise<void> {
    let n = 0;
    while (n < this.committed.length && (this.committed[n] as JournalLine).lsn <= lsn) n++;
    if (n === 0) return;
    const ops: Operation[] = [];
    for (const line of this.committed.splice(0, n)) for (const op of line.ops) ops.push(op);
    const text = `${JSON.stringify({ lsn, ops } satisfies JournalLine)}\n`;
    const handle = await open(this.file, 'a');
    try {
      await handle.writeFile(text, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    this.journalBytes += Buffer.byteLength(text);
    // Compact when the journal is mostly dead operations, and only when nothing is pending beyond
    // `lsn`, so the snapshot written is exactly the state at `lsn`.
    if (
      this.committed.length === 0 &&
      this.pending.length === 0 &&
      this.journalBytes > 2 * this.bytes + 16 * 1024 * 1024
    )
      await this.rewrite(lsn);
  }

  private apply(op: Operation): void {
    switch (op[0]) {
      case 'p': {
        this.remove(op[1]);
        this.rows.set(op[1], op[2]);
        this.bytes += sizeOf(op[1], op[2]);
        while (this.bytes > this.maxBytes && this.rows.size > 0) {
          const oldest = this.rows.keys().next().value as string;
          this.remove(oldest);
        }
        return;
      }
      case 'd':
        this.remove(op[1]);
        return;
      case 't': {
        const prefix = `${op[1]}${SEP}`;
        for (const key of [...this.rows.keys()]) if (key.startsWith(prefix)) this.remove(key);
        return;
      }
      default: {
        const unreachable: never = op;
        throw new CdcError('INTERNAL', `unknown toast store operation ${String(unreachable)}`);
      }
    }
  }

  private remove(key: string): void {
    const row = this.rows.get(key);
    if (row === undefined) return;
    this.rows.delete(key);
    this.bytes -= sizeOf(key, row);
  }

  private async replay(upTo: number): Promise<void> {
    let lines;
    try {
      lines = createInterface({ input: createReadStream(this.file, 'utf8'), crlfDelay: Infinity });
      for await (const text of lines) {
        let line: JournalLine;
        try {
          line = JSON.parse(text) as JournalLine;
        } catch {
          break; // a torn last line: it was never covered by a stored checkpoint
        }
        if (line.lsn > upTo) break;
        for (const op of line.ops) this.apply(op);
      }
    } catch (error) {
      if ((error as { code?: string }).code === 'ENOENT') return;
      throw new CdcError('INTERNAL', `cannot read the TOAST fill store ${this.file}: ${(error as Error).message}`, {
        cause: error,
      });
    }
  }

  /** Replaces the journal with one line holding the live rows, tagged `lsn`. */
  private async rewrite(lsn: number): Promise<void> {
    const temp = `${this.file}.tmp`;
    const ops: Operation[] = [];
    for (const [key, row] of this.rows) ops.push(['p', key, row]);
    const text = ops.length === 0 ? '' : `${JSON.stringify({ lsn, ops } satisfies JournalLine)}\n`;
    try {
      const handle = await open(temp, 'w', 0o644);
      try {
        await handle.writeFile(text, 'utf8');
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temp, this.file);
      await syncDir(path.dirname(this.file));
      this.journalBytes = (await stat(this.file)).size;
    } catch (error) {
      await unlink(temp).catch(() => undefined);
      throw new CdcError('INTERNAL', `cannot write the TOAST fill store ${this.file}: ${(error as Error).message}`, {
        cause: error,
      });
    }
  }
}

function sizeOf(key: string, row: StoredRow): number {
  let n = key.length + 32;
  for (const name in row) n += name.length + (row[name] as string).length;
  return n;
}
