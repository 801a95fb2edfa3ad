/**
 * The offsets file: one JSON checkpoint, replaced atomically, guarded by a single-writer lock.
 */
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { CdcError } from '../errors.ts';
import { LockFile } from './lock.ts';
import type { Checkpoint, OffsetStore } from './store.ts';
import { syncDir } from '../durability.ts';

const LSN = /^[0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8}$/;

/** txid_current_snapshot() text: `xmin:xmax:xip,...`. */
const SNAPSHOT_TEXT = /^[0-9]+:[0-9]+:[0-9,]*$/;

const cursorSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('key'), after: z.array(z.string()).nullable(), done: z.boolean() }),
  z.object({ kind: z.literal('ctid'), nextPage: z.number().int().nonnegative(), done: z.boolean() }),
]);

const tableProgressSchema = z.object({
  schema: z.string(),
  table: z.string(),
  cursor: cursorSchema,
  read: z.number().int().nonnegative(),
  emitted: z.number().int().nonnegative(),
  stopped: z.boolean().optional(),
  asOf: z.string().regex(SNAPSHOT_TEXT, 'a snapshot like "10:20:12,15"').optional(),
});

const checkpointSchema = z.object({
  version: z.literal(1),
  systemId: z.string().regex(/^[0-9]+$/, 'a decimal string'),
  timeline: z.number().int().positive(),
  database: z.string(),
  slot: z.string(),
  publication: z.string(),
  lsn: z.string().regex(LSN, 'an LSN like "0/16B3748"'),
  sink: z.record(z.string(), z.unknown()),
  updatedAt: z.string(),
  snapshot: z
    .object({
      state: z.enum(['running', 'done']),
      tables: z.array(tableProgressSchema).optional(),
      only: z.boolean().optional(),
      asOf: z.string().regex(SNAPSHOT_TEXT, 'a snapshot like "10:20:12,15"').optional(),
      start: z.record(z.string(), z.unknown()).optional(),
    })
    .optional(),
  schemas: z.record(z.string(), z.string()).optional(),
  incremental: z
    .object({ id: z.string(), seq: z.number().int().nonnegative(), tables: z.array(tableProgressSchema), requests: z.array(z.string()) })
    .optional(),
});

/** The LSN "X/Y" as one 64-bit number; private so this module does not depend on protocol/lsn.ts. */
function lsnValue(lsn: string): bigint {
  const slash = lsn.indexOf('/');
  return (BigInt(`0x${lsn.slice(0, slash)}`) << 32n) | BigInt(`0x${lsn.slice(slash + 1)}`);
}

/**
 * Reads and validates the checkpoint at `file` without taking the lock (for `status`: the running
 * engine holds it). Undefined when the file does not exist; CdcError('OFFSETS_CORRUPT') on garbage.
 */
export async function readCheckpoint(file: string): Promise<Checkpoint | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return undefined;
    throw new CdcError('INTERNAL', `cannot read the offsets file ${file}: ${messageOf(error)}`, { cause: error });
  }
  const corrupt = (detail: string, cause?: unknown): CdcError =>
    new CdcError('OFFSETS_CORRUPT', `the offsets file ${file} is not a valid pgcdc checkpoint: ${detail}`, {
      hint: 'restore it from a backup; deleting it makes pgcdc start over (a new snapshot) and refuse to reuse the existing output',
      cause,
    });
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw corrupt(text.length === 0 ? 'it is empty' : 'it is not JSON', error);
  }
  const parsed = checkpointSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue === undefined || issue.path.length === 0 ? '' : `${issue.path.join('.')}: `;
    throw corrupt(`${where}${issue?.message ?? 'invalid'}`, parsed.error);
  }
  return parsed.data;
}

/**
 * The checkpoint in one JSON file.
 *
 * - Single writer: `open` takes `<path>.lock` (see lock.ts); a live holder makes it fail at once
 *   with OFFSETS_LOCKED, a crashed one's lock is taken over. `close` releases it.
 * - Atomic and durable: `commit` writes `<path>.tmp`, fsyncs it, renames it over `<path>` and
 *   fsyncs the directory, so a crash leaves the old or the new checkpoint, never a mix.
 * - Monotonic: a checkpoint whose lsn is lower than the stored one is refused with INTERNAL (a
 *   bug upstream); an equal lsn is accepted (e.g. the same progress with a fresher time).
 * - A failed commit (ENOSPC...) is CdcError('INTERNAL'), retryable when the cause may pass; the
 *   stored checkpoint is then the old or the new one and `commit` may be called again.
 */
export class FileOffsetStore implements OffsetStore {
  private stored: Checkpoint | undefined;
  /** Whether `stored` reflects the file (it is read once, lazily). */
  private known = false;
  private closed = false;
  private tail: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly path: string,
    private readonly lock: LockFile,
  ) {}

  /** Takes the single-writer lock for `file` (creating its directory if needed). */
  static async open(file: string): Promise<FileOffsetStore> {
    const absolute = path.resolve(file);
    try {
      await mkdir(path.dirname(absolute), { recursive: true });
    } catch (error) {
      throw new CdcError('CONFIG_INVALID', `cannot create the directory of the offsets file ${absolute}: ${messageOf(error)}`, { cause: error });
    }
    try {
      const lock = await LockFile.acquire(`${absolute}.lock`, `offsets file ${absolute}`);
      return new FileOffsetStore(absolute, lock);
    } catch (error) {
      if (error instanceof CdcError) throw error;
      throw new CdcError('CONFIG_INVALID', `cannot lock the offsets file ${absolute}: ${messageOf(error)}`, {
        hint: 'pgcdc must be able to create files next to the offsets file',
        cause: error,
      });
    }
  }

  load(): Promise<Checkpoint | undefined> {
    return this.serialized(() => this.loadNow());
  }

  commit(checkpoint: Checkpoint): Promise<void> {
    return this.serialized(() => this.commitNow(checkpoint, false));
  }

  replace(checkpoint: Checkpoint): Promise<void> {
    return this.serialized(() => this.commitNow(checkpoint, true));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.tail;
    await this.lock.release();
  }

  /** Loads and commits run one at a time, so the monotonic check compares with what is on disk. */
  private serialized<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.tail.then(fn);
    this.tail = run.catch(() => undefined);
    return run;
  }

  private async loadNow(): Promise<Checkpoint | undefined> {
    this.assertOpen();
    this.stored = await readCheckpoint(this.path);
    this.known = true;
    return this.stored;
  }

  private async commitNow(checkpoint: Checkpoint, rewind: boolean): Promise<void> {
    this.assertOpen();
    const valid = checkpointSchema.safeParse(checkpoint);
    if (!valid.success) {
      throw new CdcError('INTERNAL', `refusing to store an invalid checkpoint: ${valid.error.issues[0]?.message ?? 'invalid'}`);
    }
    if (!this.known) await this.loadNow();
    if (!rewind && this.stored !== undefined && lsnValue(checkpoint.lsn) < lsnValue(this.stored.lsn)) {
      throw new CdcError('INTERNAL', `refusing to move the checkpoint back from ${this.stored.lsn} to ${checkpoint.lsn}`, {
        hint: 'this is a bug in pgcdc; the stored checkpoint is unchanged',
      });
    }
    const temp = `${this.path}.tmp`;
    try {
      // 'w' truncates a temp file left by a crash; the lock makes the name ours alone.
      const handle = await open(temp, 'w', 0o644);
      try {
        await handle.writeFile(`${JSON.stringify(checkpoint, null, 2)}\n`, 'utf8');
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temp, this.path);
      await syncDir(path.dirname(this.path));
    } catch (error) {
      await unlink(temp).catch(() => undefined);
      const code = errnoOf(error);
      throw new CdcError('INTERNAL', `cannot store the checkpoint in ${this.path}: ${messageOf(error)}`, {
        retryable: code === 'ENOSPC' || code === 'EDQUOT' || code === 'EINTR' || code === 'EAGAIN',
        hint: code === 'ENOSPC' || code === 'EDQUOT' ? 'free disk space next to the offsets file' : undefined,
        cause: error,
      });
    }
    this.stored = checkpoint;
  }

  private assertOpen(): void {
    if (this.closed) throw new CdcError('INTERNAL', `the offsets store ${this.path} is closed`);
  }
}


function errnoOf(error: unknown): string | undefined {
  if (error instanceof Error && 'code' in error && typeof error.code === 'string') return error.code;
  return undefined;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
