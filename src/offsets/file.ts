/**
 * The offsets file: one JSON checkpoint, replaced atomically, guarded by a single-writer lock, and
 * sealed with a checksum so that a corrupted or hand-edited file is refused instead of trusted.
 *
 * Format (version 2): the checkpoint's fields plus `checksum`, "sha256:<hex>" over the canonical
 * JSON of every other field (keys sorted, no whitespace), so any changed value (a flipped digit,
 * an edited lsn) is caught while the layout may vary. A version 1 file (pgcdc before checksums) is
 * accepted once: `FileOffsetStore.load` rewrites it as version 2 at once and says so
 * (`upgradedFrom`). A version 2 file without a checksum, or with a wrong one, is OFFSETS_CORRUPT.
 */
import { createHash } from 'node:crypto';
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { CdcError } from '../core/errors.ts';
import { parseLsn } from '../protocol/lsn.ts';
import { errnoOf, isLocalIoFailure, localIoError } from '../core/local-io.ts';
import { LockFile } from './lock.ts';
import { CHECKPOINT_VERSION, type Checkpoint, type OffsetStore } from './store.ts';
import { syncDir } from '../core/durability.ts';

const LSN = /^[0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8}$/;
const lsnString = z.string().regex(LSN, 'an LSN like "0/16B3748"');

/** txid_current_snapshot() text: `xmin:xmax:xip,...`. */
const SNAPSHOT_TEXT = /^[0-9]+:[0-9]+:[0-9,]*$/;

const cursorSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('key'), after: z.array(z.string()).nullable(), done: z.boolean() }),
  z.object({ kind: z.literal('ctid'), nextPage: z.number().int().nonnegative(), done: z.boolean() }),
]);

/**
 * A 64-bit transaction id as decimal text (txid_snapshot_xmin): a normal xid is at least 3, and a
 * full xid stays below 2^63 (epoch and xid). Anything else is refused, never guessed at.
 */
const fullXid = z
  .string()
  .regex(/^[0-9]{1,19}$/, 'a transaction id as decimal text')
  // The refinement runs even when the pattern failed: BigInt must never see anything but digits.
  .refine(
    (text) => /^[0-9]{1,19}$/.test(text) && BigInt(text) >= 3n && BigInt(text) < 2n ** 63n,
    'a normal transaction id (3 .. 2^63-1)',
  );

const tableProgressSchema = z.object({
  schema: z.string(),
  table: z.string(),
  cursor: cursorSchema,
  read: z.number().int().nonnegative(),
  emitted: z.number().int().nonnegative(),
  stopped: z.boolean().optional(),
  asOf: z.string().regex(SNAPSHOT_TEXT, 'a snapshot like "10:20:12,15"').optional(),
  recovery: z.strictObject({ horizon: fullXid.optional() }).optional(),
});

/** The fields of versions 1 and 2. */
const commonFields = {
  systemId: z.string().regex(/^[0-9]+$/, 'a decimal string'),
  timeline: z.number().int().positive(),
  database: z.string(),
  slot: z.string(),
  publication: z.string(),
  lsn: lsnString,
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
    .object({
      id: z.string(),
      seq: z.number().int().nonnegative(),
      tables: z.array(tableProgressSchema),
      requests: z.array(z.string()),
    })
    .optional(),
};

const checkpointSchema = z.object({
  version: z.literal(CHECKPOINT_VERSION),
  ...commonFields,
  lastCommit: z.object({ commitLsn: lsnString, endLsn: lsnString, xid: z.number().int().nonnegative() }).optional(),
  xidHorizon: fullXid.optional(),
});

/** pgcdc before checksums and `lastCommit`. */
const legacySchema = z.object({ version: z.literal(1), ...commonFields });

/** JSON with object keys sorted and no whitespace: the same bytes for the same values. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const record = value as Record<string, unknown>;
    const fields = Object.keys(record)
      .sort()
      .filter((key) => record[key] !== undefined)
      .map((key) => `${JSON.stringify(key)}:${canonicalJson(record[key])}`);
    return `{${fields.join(',')}}`;
  }
  return JSON.stringify(value);
}

/**
 * The checksum of a checkpoint as stored: "sha256:<hex>" over the canonical JSON of every field
 * but `checksum`. Exported for tests that build a consistent file on purpose.
 */
export function checkpointChecksum(fields: Readonly<Record<string, unknown>>): string {
  const { checksum: _ignored, ...rest } = fields;
  return `sha256:${createHash('sha256').update(canonicalJson(rest)).digest('hex')}`;
}

/** The file's text for `checkpoint`: its JSON, checksum last. */
export function serializeCheckpoint(checkpoint: Checkpoint): string {
  // A JSON round trip first, so that the checksum covers exactly what a reader parses back.
  const plain = JSON.parse(JSON.stringify(checkpoint)) as Record<string, unknown>;
  return `${JSON.stringify({ ...plain, checksum: checkpointChecksum(plain) }, null, 2)}\n`;
}

/** The LSN "X/Y" as one 64-bit number; private so this module does not depend on protocol/lsn.ts. */
/** A checkpoint as read from its file, and whether the file was in the version 1 format. */
export interface ReadResult {
  readonly checkpoint: Checkpoint;
  readonly legacy: boolean;
}

/**
 * Reads and validates the checkpoint at `file` without taking the lock (for `status`: the running
 * engine holds it). Undefined when the file does not exist; CdcError('OFFSETS_CORRUPT') on garbage,
 * a wrong checksum or an unknown version. A version 1 file is returned as version 2 (no lastCommit).
 */
export async function readCheckpoint(file: string): Promise<Checkpoint | undefined> {
  return (await readCheckpointFile(file))?.checkpoint;
}

async function readCheckpointFile(file: string): Promise<ReadResult | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return undefined;
    if (isLocalIoFailure(error)) throw localIoError(error, 'cannot read the offsets file', file);
    throw new CdcError('INTERNAL', `cannot read the offsets file ${file}: ${messageOf(error)}`, { cause: error });
  }
  return parseCheckpointText(text, `the offsets file ${file}`, FILE_REPAIR_HINT);
}

const FILE_REPAIR_HINT =
  'restore it from a backup (never edit it by hand); deleting it makes pgcdc start over (a new ' +
  'snapshot) and refuse to reuse the existing output';

/**
 * Parses and validates a stored checkpoint's text (the file's content, or the copy a sink stores:
 * offsets/sink-store.ts). `where` names it in the error: CdcError('OFFSETS_CORRUPT') on garbage, a
 * wrong checksum or an unknown version, with `hint` saying how to repair it.
 */
export function parseCheckpointText(text: string, where: string, hint: string): ReadResult {
  const corrupt = (detail: string, cause?: unknown): CdcError =>
    new CdcError('OFFSETS_CORRUPT', `${where} is not a valid pgcdc checkpoint: ${detail}`, { hint, cause });
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw corrupt(text.length === 0 ? 'it is empty' : 'it is not JSON', error);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw corrupt('it is not a JSON object');
  const fields = json as Record<string, unknown>;
  const firstIssue = (error: z.ZodError): string => {
    const issue = error.issues[0];
    const where = issue === undefined || issue.path.length === 0 ? '' : `${issue.path.join('.')}: `;
    return `${where}${issue?.message ?? 'invalid'}`;
  };
  if (fields.version === 1) {
    const parsed = legacySchema.safeParse(fields);
    if (!parsed.success) throw corrupt(firstIssue(parsed.error), parsed.error);
    return { checkpoint: { ...parsed.data, version: CHECKPOINT_VERSION }, legacy: true };
  }
  if (fields.version !== CHECKPOINT_VERSION) {
    throw corrupt(
      `version ${JSON.stringify(fields.version)} is not one this pgcdc reads (1 or ` +
        `${CHECKPOINT_VERSION}; was it written by a newer pgcdc?)`,
    );
  }
  if (typeof fields.checksum !== 'string') throw corrupt('it has no checksum');
  if (fields.checksum !== checkpointChecksum(fields)) {
    throw corrupt('its checksum does not match its content (it was damaged or edited after pgcdc wrote it)');
  }
  const parsed = checkpointSchema.safeParse(fields);
  if (!parsed.success) throw corrupt(firstIssue(parsed.error), parsed.error);
  return { checkpoint: parsed.data, legacy: false };
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
 * - A failed commit on a full, read-only or failing disk is CdcError('LOCAL_IO') (core/local-io.ts),
 *   retryable when the cause may pass (ENOSPC, EDQUOT); other failures are INTERNAL. The stored
 *   checkpoint is then the old or the new one and `commit` may be called again.
 * - Sealed: every file written carries its checksum (see the top of this file).
 */
export class FileOffsetStore implements OffsetStore {
  private stored: Checkpoint | undefined;
  /** Whether `stored` reflects the file (it is read once, lazily). */
  private known = false;
  private closed = false;
  /** Set by `load` when the file was in an older format, now rewritten (for a warning). */
  upgradedFrom: number | undefined;
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
      if (isLocalIoFailure(error))
        throw localIoError(error, 'cannot create the directory of the offsets file', absolute);
      throw new CdcError(
        'CONFIG_INVALID',
        `cannot create the directory of the offsets file ${absolute}: ${messageOf(error)}`,
        { cause: error },
      );
    }
    try {
      const lock = await LockFile.acquire(`${absolute}.lock`, `offsets file ${absolute}`);
      return new FileOffsetStore(absolute, lock);
    } catch (error) {
      if (error instanceof CdcError) throw error;
      if (isLocalIoFailure(error)) throw localIoError(error, 'cannot lock the offsets file', absolute);
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
    const read = await readCheckpointFile(this.path);
    this.stored = read?.checkpoint;
    this.known = true;
    if (read?.legacy === true) {
      // Accepted once: sealed with a checksum right away, so it is never read unsealed again.
      await this.commitNow(read.checkpoint, false);
      this.upgradedFrom = 1;
    }
    return this.stored;
  }

  private async commitNow(checkpoint: Checkpoint, rewind: boolean): Promise<void> {
    this.assertOpen();
    const valid = checkpointSchema.safeParse(checkpoint);
    if (!valid.success) {
      throw new CdcError(
        'INTERNAL',
        `refusing to store an invalid checkpoint: ${valid.error.issues[0]?.message ?? 'invalid'}`,
      );
    }
    if (!this.known) await this.loadNow();
    if (!rewind && this.stored !== undefined && parseLsn(checkpoint.lsn) < parseLsn(this.stored.lsn)) {
      throw new CdcError(
        'INTERNAL',
        `refusing to move the checkpoint back from ${this.stored.lsn} to ${checkpoint.lsn}`,
        {
          hint: 'this is a bug in pgcdc; the stored checkpoint is unchanged',
        },
      );
    }
    const temp = `${this.path}.tmp`;
    try {
      // 'w' truncates a temp file left by a crash; the lock makes the name ours alone.
      const handle = await open(temp, 'w', 0o644);
      try {
        await handle.writeFile(serializeCheckpoint(checkpoint), 'utf8');
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temp, this.path);
      await syncDir(path.dirname(this.path));
    } catch (error) {
      await unlink(temp).catch(() => undefined);
      if (isLocalIoFailure(error)) throw localIoError(error, 'cannot store the checkpoint in', this.path);
      const code = errnoOf(error);
      throw new CdcError('INTERNAL', `cannot store the checkpoint in ${this.path}: ${messageOf(error)}`, {
        retryable: code === 'EINTR' || code === 'EAGAIN',
        cause: error,
      });
    }
    this.stored = checkpoint;
  }

  private assertOpen(): void {
    if (this.closed) throw new CdcError('INTERNAL', `the offsets store ${this.path} is closed`);
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
