/**
 * The JSONL sink: one append-only file per topic, `<dir>/<file name of topic>.jsonl`, one event
 * per line.
 *
 * File names: a topic is used as is when it only holds `A-Z a-z 0-9 . _ -` and does not start
 * with `.`; otherwise every other byte of its UTF-8 form (and a leading `.`) is written `%XX`
 * (upper-case hex), like URL encoding. `shop.public.orders` -> `shop.public.orders.jsonl`,
 * `shop.public.my/table` -> `shop.public.my%2Ftable.jsonl`. The mapping is injective (`%` itself
 * is escaped), so two topics never share a file, and `/` can never leave the directory.
 * A name longer than 255 bytes is refused.
 */
import { constants as fsConstants } from 'node:fs';
import { mkdir, open, readdir, stat, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { CdcError } from '../../core/errors.ts';
import type { EventBatch, Sink, SinkPosition } from '../contract.ts';
import { syncDir } from '../../core/durability.ts';
import type { Logger } from '../../core/log.ts';
import { countCut, errnoOf, firstRejection, fsError, queuedBehindFailure, writeFully } from './io.ts';
import { noteDirectoryWrites, takeOverDirectory } from './directory-writes.ts';

const SUFFIX = '.jsonl';
/** NAME_MAX on Linux file systems. */
const NAME_MAX = 255;
const PLAIN_TOPIC = /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/;
const SAFE_BYTE = /[A-Za-z0-9._-]/;

/** The file name (not path) a topic is written to. Throws SINK_FAILED when it cannot be one. */
export function jsonlFileName(topic: string): string {
  let base: string;
  if (PLAIN_TOPIC.test(topic)) {
    base = topic;
  } else {
    if (topic.length === 0)
      throw new CdcError('SINK_FAILED', 'an event has an empty topic, which cannot name a JSONL file');
    base = '';
    for (const byte of Buffer.from(topic, 'utf8')) {
      const char = String.fromCharCode(byte);
      const safe = byte < 0x80 && SAFE_BYTE.test(char) && !(base.length === 0 && char === '.');
      base += safe ? char : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
    }
  }
  const name = base + SUFFIX;
  if (Buffer.byteLength(name) > NAME_MAX) {
    throw new CdcError(
      'SINK_FAILED',
      `topic ${JSON.stringify(topic.slice(0, 80))}... is too long for a file name (${NAME_MAX} bytes at most)`,
      {
        hint: 'use a shorter topic prefix or table names',
      },
    );
  }
  return name;
}

/** What `open` did to restore the checkpointed state, for logs. */
export interface JsonlRecovery {
  readonly file: string;
  readonly action: 'truncated' | 'removed';
  /** Size before and after, in bytes. */
  readonly fromBytes: number;
  readonly toBytes: number;
  /** Whole events (lines) cut, and whether a torn last line (no newline) was cut too. */
  readonly events: number;
  readonly tornLine: boolean;
}

/** The JSONL sink's resume state: the durable byte length of every file it has written. */
const positionSchema = z.object({ files: z.record(z.string(), z.number().int().nonnegative()) });

interface TopicFile {
  readonly path: string;
  /** Open between writes (the hot path); undefined until the file exists. */
  handle: FileHandle | undefined;
  /** Bytes known durable: the length in the last resolved position. */
  length: number;
  /** Whether the position lists this topic (false for a file created by a batch that failed). */
  listed: boolean;
}

type State = 'new' | 'open' | 'failed' | 'closed';

/**
 * Exactly-once JSONL files.
 *
 * - `write(batch)` appends each topic's lines with one positional write per touched file, then
 *   fdatasyncs every touched file (and the directory after creating a file), and only then
 *   resolves `{ files: { [topic]: bytes } }` listing every file written so far. Writes are
 *   serialized: a write waits for the one in flight, and one queued behind a write that failed is
 *   refused (it would land after a gap).
 * - `open(resume)` truncates every file to its checkpointed length and removes `*.jsonl` files the
 *   checkpoint does not list, so bytes written after the last checkpoint (and re-sent after a
 *   restart) appear once. Without a checkpoint it refuses a directory that already holds events.
 * - A failed write is undone (files truncated back) when possible and the error is retryable when
 *   the cause may pass (ENOSPC...). When it cannot be undone, or fsync failed (the kernel may have
 *   dropped the dirty pages, so a later fsync proves nothing), the sink refuses every later write:
 *   restart from the checkpoint.
 *
 * One pgcdc process per directory: nothing here locks the directory, the offsets lock does. Within
 *   the process, a sink's `open` waits for the writes of the one before it (directory-writes.ts).
 */
export class JsonlSink implements Sink {
  readonly kind = 'jsonl';
  /** Nothing of a batch is kept once its write resolved. */
  readonly releasesBatches = true;
  private readonly dir: string;
  private readonly files = new Map<string, TopicFile>();
  private state: State = 'new';
  private failure: unknown;
  /** Serializes writes; never rejects. */
  private tail: Promise<unknown> = Promise.resolve();
  /** Writes rejected so far, and the latest reason: see `write`. */
  private rejections = 0;
  private lastRejection: unknown;
  /** A file was created and the directory entry is not yet known durable. */
  private dirDirty = false;
  private readonly recoveries: JsonlRecovery[] = [];
  private readonly log: Logger | undefined;

  /** `log`: where `open` says what it cut (info level), if anywhere. */
  constructor(options: { dir: string; log?: Logger }) {
    this.dir = options.dir;
    this.log = options.log;
  }

  /** The file a topic's events are appended to (Sink.eventFile). */
  eventFile(topic: string): string {
    return path.join(this.dir, jsonlFileName(topic));
  }

  /** What the last `open` truncated or removed. */
  get recovered(): readonly JsonlRecovery[] {
    return this.recoveries;
  }

  async open(resume: SinkPosition | undefined): Promise<void> {
    if (this.state !== 'new') throw new CdcError('INTERNAL', 'JsonlSink.open called twice');
    await takeOverDirectory(this.dir, this.tail);
    try {
      await this.prepare(resume);
      this.state = 'open';
    } catch (error) {
      await this.closeHandles();
      this.state = 'closed';
      if (error instanceof CdcError) throw error;
      throw fsError(error, 'cannot prepare the output directory', this.dir);
    }
  }

  write(batch: EventBatch): Promise<SinkPosition> {
    const rejectionsBefore = this.rejections;
    const run = this.tail.then(() => {
      // Issued expecting an earlier write to land, which failed: writing it would leave a gap.
      if (this.rejections !== rejectionsBefore) throw queuedBehindFailure(this.dir, this.lastRejection);
      return this.writeNow(batch);
    });
    // Counted before the caller sees the rejection, so a write it issues then is not refused.
    this.tail = run.catch((error: unknown) => {
      this.rejections++;
      this.lastRejection = error;
    });
    if (this.state === 'open') noteDirectoryWrites(this.dir, this.tail);
    return run;
  }

  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    await this.tail;
    await this.closeHandles();
  }

  private async prepare(resume: SinkPosition | undefined): Promise<void> {
    const madeDir = await mkdir(this.dir, { recursive: true });
    if (madeDir !== undefined) await syncDir(path.dirname(madeDir));
    const existing = (await readdir(this.dir)).filter((name) => name.endsWith(SUFFIX));

    if (resume === undefined) {
      const withData: string[] = [];
      for (const name of existing) {
        const info = await stat(path.join(this.dir, name));
        if (!info.isFile() || info.size > 0) withData.push(name);
      }
      if (withData.length > 0) {
        throw new CdcError(
          'CONFIG_INVALID',
          `the output directory ` +
            (`${this.dir} already has event files ` +
              (`(${withData.slice(0, 3).join(', ')}${withData.length > 3 ? ', ...' : ''}) but there is no ` +
                `checkpoint, so pgcdc cannot tell which of their events were delivered`)),
          { hint: 'choose a new output directory (--out), or remove its *.jsonl files to start over' },
        );
      }
      // Empty files hold nothing: removing them destroys no data and keeps "unlisted" meaning
      // "not ours" for the O_EXCL create in `handleFor`.
      for (const name of existing) await unlink(path.join(this.dir, name));
      if (existing.length > 0) await syncDir(this.dir);
      return;
    }

    const parsed = positionSchema.safeParse(resume);
    if (!parsed.success) {
      throw new CdcError(
        'CONFIG_INVALID',
        'the checkpoint holds no JSONL sink position (was it written with a different sink?)',
        {
          hint:
            'use the sink the checkpoint was written with, or a new offsets file and a new output ' +
            'directory to start over',
        },
      );
    }
    const listedNames = new Set<string>();
    for (const [topic, length] of Object.entries(parsed.data.files)) {
      const name = jsonlFileName(topic);
      listedNames.add(name);
      const file: TopicFile = { path: path.join(this.dir, name), handle: undefined, length, listed: true };
      this.files.set(topic, file);
      await this.restore(file, name);
    }
    let removed = false;
    for (const name of existing) {
      if (listedNames.has(name)) continue;
      const filePath = path.join(this.dir, name);
      const info = await stat(filePath);
      const cut = await countCut(filePath, 0, info.size);
      await unlink(filePath);
      this.noteRecovery({ file: filePath, action: 'removed', fromBytes: info.size, toBytes: 0, ...cut });
      removed = true;
    }
    if (removed) await syncDir(this.dir);
  }

  /**
   * Records and logs one cut. Bytes past the checkpoint were written by a run that ended (a crash,
   * a kill, a failure) before storing the checkpoint that covers them: the capture resumes from
   * the stored checkpoint and writes those events again, so the cut keeps each event once.
   */
  private noteRecovery(recovery: JsonlRecovery): void {
    this.recoveries.push(recovery);
    const bytes = recovery.fromBytes - recovery.toBytes;
    const what =
      `${recovery.events} event${recovery.events === 1 ? '' : 's'}` +
      (recovery.tornLine ? ' and a torn last line' : '');
    const removed = recovery.action === 'removed';
    this.log?.info(
      { ...recovery, bytes },
      `${removed ? 'removed' : 'cut'} ${bytes} bytes ` +
        `(${what}) from ${recovery.file}${removed ? ', a file the checkpoint does not know' : ''}: ` +
        ('they were written after the last stored checkpoint (pgcdc ended, by a crash, a kill or a failure, ' +
          'before storing the checkpoint that covers them); ') +
        'they are written again as the capture resumes from that checkpoint',
    );
  }

  /** Opens a checkpointed file and cuts it back to its checkpointed length. */
  private async restore(file: TopicFile, name: string): Promise<void> {
    const size = await stat(file.path).then(
      (info) => info.size,
      (error: unknown) => {
        if (errnoOf(error) === 'ENOENT') return undefined;
        throw error;
      },
    );
    const damaged = (detail: string): CdcError =>
      new CdcError(
        'SINK_FAILED',
        `${file.path} ${detail}, so it no longer holds the events the checkpoint says were delivered`,
        {
          hint: 'restore the file, or start over with a new output directory (--out) and a new offsets file',
        },
      );
    if (size === undefined) {
      if (file.length > 0) throw damaged(`is gone but the checkpoint says it had ${file.length} bytes`);
      return;
    }
    if (size < file.length) throw damaged(`has ${size} bytes but the checkpoint says ${file.length}`);
    file.handle = await open(file.path, 'r+');
    if (file.length > 0) {
      // A checkpointed length always ends a line; anything else means the file was replaced.
      const last = Buffer.alloc(1);
      await file.handle.read(last, 0, 1, file.length - 1);
      if (last[0] !== 0x0a)
        throw damaged(
          `does not end a line at its checkpointed length ${file.length} (was ${name} edited or replaced?)`,
        );
    }
    if (size > file.length) {
      const cut = await countCut(file.path, file.length, size);
      await file.handle.truncate(file.length);
      await file.handle.datasync();
      this.noteRecovery({ file: file.path, action: 'truncated', fromBytes: size, toBytes: file.length, ...cut });
    }
  }

  private async writeNow(batch: EventBatch): Promise<SinkPosition> {
    if (this.state === 'failed') {
      throw new CdcError(
        'SINK_FAILED',
        `the JSONL sink in ${this.dir} failed earlier and cannot promise durability any more`,
        {
          hint: 'restart pgcdc: on start the JSONL sink restores the last checkpointed state',
          cause: this.failure,
        },
      );
    }
    if (this.state !== 'open') throw new CdcError('INTERNAL', `JsonlSink.write called while ${this.state}`);
    if (batch.count === 0) return this.position();

    const groups = batch.byTopic();

    // Phase 1: files and bytes. Nothing is written yet, so a failure leaves no trace.
    const touched: { file: TopicFile; handle: FileHandle; data: Buffer }[] = [];
    try {
      for (const [topicNumber, data] of groups) {
        const file = this.fileFor(batch.topicName(topicNumber));
        const handle = await this.handleFor(file);
        touched.push({ file, handle, data });
      }
      if (this.dirDirty) {
        await syncDir(this.dir);
        this.dirDirty = false;
      }
    } catch (error) {
      if (error instanceof CdcError) throw error;
      throw fsError(error, 'cannot open an event file in', this.dir);
    }

    // Phase 2: one positional write per file, all files at once.
    const writes = await Promise.allSettled(touched.map((t) => writeFully(t.handle, t.data, t.file.length)));
    const writeError = firstRejection(writes);
    if (writeError !== undefined) {
      // Cut every touched file back to its durable length so the sink is as before the batch.
      const rollback = await Promise.allSettled(touched.map((t) => t.handle.truncate(t.file.length)));
      const undone = firstRejection(rollback) === undefined;
      if (!undone) this.fail(writeError);
      throw fsError(writeError, 'cannot write events to', this.dir, undone);
    }

    // Phase 3: durability. After a failed fsync nothing can be trusted (see the class comment).
    const syncs = await Promise.allSettled(touched.map((t) => t.handle.datasync()));
    const syncError = firstRejection(syncs);
    if (syncError !== undefined) {
      this.fail(syncError);
      throw fsError(syncError, 'cannot fsync event files in', this.dir, false);
    }

    for (const t of touched) {
      t.file.length += t.data.length;
      t.file.listed = true;
    }
    return this.position();
  }

  private fileFor(topic: string): TopicFile {
    let file = this.files.get(topic);
    if (file === undefined) {
      file = { path: path.join(this.dir, jsonlFileName(topic)), handle: undefined, length: 0, listed: false };
      this.files.set(topic, file);
    }
    return file;
  }

  private async handleFor(file: TopicFile): Promise<FileHandle> {
    if (file.handle !== undefined) return file.handle;
    // O_EXCL: `open` removed every file we do not own, so an existing one was put there by
    // someone else; writing at offset 0 over it would mix their bytes with ours.
    try {
      file.handle = await open(file.path, fsConstants.O_RDWR | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o644);
    } catch (error) {
      if (errnoOf(error) === 'EEXIST') {
        throw new CdcError('SINK_FAILED', `${file.path} appeared in the output directory but pgcdc did not create it`, {
          hint: "do not write into pgcdc's output directory; restart pgcdc to restore the checkpointed state",
          cause: error,
        });
      }
      throw error;
    }
    this.dirDirty = true;
    return file.handle;
  }

  private position(): SinkPosition {
    const files: Record<string, number> = {};
    for (const [topic, file] of this.files) if (file.listed) files[topic] = file.length;
    return { files };
  }

  private fail(error: unknown): void {
    this.state = 'failed';
    this.failure = error;
  }

  private async closeHandles(): Promise<void> {
    const handles = [...this.files.values()].flatMap((f) => (f.handle === undefined ? [] : [f.handle]));
    for (const file of this.files.values()) file.handle = undefined;
    await Promise.allSettled(handles.map((h) => h.close()));
  }
}
