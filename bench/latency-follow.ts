/**
 * For bench/latency.ts: follows what pgcdc writes into the JSONL sink and stamps every change twice,
 * against the change's own source commit time (source.ts_us of its line: PostgreSQL's commit timestamp,
 * this machine's realtime clock, as is the bench's):
 *
 * - visible: the moment the bench read the line from the file (the sink wrote it; not yet fsynced);
 * - durable: the moment the bench read a stored checkpoint that covers it. pgcdc stores the checkpoint
 *   only after the sink's fdatasync returned (the acknowledgement rule), so the first checkpoint whose lsn
 *   is past the change's commit_lsn proves the line durable; this is also when pgcdc may tell PostgreSQL.
 *
 * Woken by inotify (fs.watch on the output directory and on the offsets file's directory, which sees the
 * rename that replaces the checkpoint), with a 20 ms poll as a fallback. Each look reads the checkpoint
 * FIRST, then the file to its end: everything a checkpoint covers was written before it was stored, so
 * every line it covers has been read by then.
 *
 * The stamps are the kernel's, not the moment the bench looked: on a busy machine the bench itself may run
 * late, and its lateness is no latency of pgcdc's. A line is visible at the JSONL file's mtime when read (the
 * last write holding it, at the latest); a change is durable at the ctime of the checkpoint file that covers
 * it (the rename that stored it: after the sink's fdatasync and the checkpoint's fsync, before the fsync of
 * its directory). A checkpoint the bench did not see before a later one replaced it credits its changes
 * to that later one, so a late bench still overstates, by less. `observerDelayMs` says how late it looked.
 */
import { closeSync, fstatSync, openSync, readFileSync, readSync, watch, type FSWatcher } from 'node:fs';
import path from 'node:path';
import { parseLsn } from '../src/protocol/lsn.ts';

/** `"commit_lsn":"0/16B3748","ts_ms":1700000000000,"ts_us":1700000000000123` in an event's source block. */
const COMMIT = /"commit_lsn":"([0-9A-Fa-f]+\/[0-9A-Fa-f]+)","ts_ms":\d+,"ts_us":(\d+)/;

const nowMs = (): number => performance.timeOrigin + performance.now();

/** Per change, in commit order: its commit time and the delays until visible and durable (ms). */
export interface Stamps {
  commitMs: number[];
  visibleMs: number[];
  durableMs: number[];
}

export class JsonlFollower {
  readonly stamps: Stamps = { commitMs: [], visibleMs: [], durableMs: [] };
  /** Per checkpoint seen: from its rename (ctime) until the bench read it, ms. */
  readonly observerDelayMs: number[] = [];
  private lastCtime = 0;
  private readonly file: string;
  private readonly offsets: string;
  private fd: number | undefined;
  private offset = 0;
  private partial = '';
  /** Lines read whose checkpoint has not been seen: their index in `stamps` and commit lsn. */
  private readonly waiting: { index: number; lsn: number }[] = [];
  private waitingHead = 0;
  private readonly watchers: FSWatcher[] = [];
  private readonly poll: NodeJS.Timeout;
  private readonly buffer = Buffer.alloc(1 << 20);
  private failure: unknown;

  constructor(file: string, offsets: string) {
    this.file = file;
    this.offsets = offsets;
    const look = (): void => this.look();
    for (const dir of new Set([path.dirname(file), path.dirname(offsets)]))
      this.watchers.push(watch(dir, { persistent: false }, look));
    this.poll = setInterval(look, 20);
  }

  /** Changes read so far, and how many of them are known durable. */
  get seen(): number {
    return this.stamps.commitMs.length;
  }

  get durable(): number {
    return this.waitingHead;
  }

  /** Resolves once `count` changes are durable (or rejects after `timeoutMs`). */
  async until(count: number, timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (this.durable < count) {
      if (this.failure !== undefined)
        throw this.failure instanceof Error
          ? this.failure
          : new Error('latency: the follower failed', { cause: this.failure });
      if (performance.now() > deadline)
        throw new Error(`latency: ${this.durable} of ${count} changes durable after ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 20));
      this.look();
    }
  }

  close(): void {
    clearInterval(this.poll);
    for (const watcher of this.watchers) watcher.close();
    if (this.fd !== undefined) closeSync(this.fd);
  }

  /** The stored checkpoint's lsn and when it was renamed into place (undefined before the first). */
  private readCheckpoint(): { lsn: number; storedAt: number } | undefined {
    let fd: number;
    try {
      fd = openSync(this.offsets, 'r');
    } catch {
      return undefined;
    }
    try {
      const storedAt = fstatSync(fd).ctimeMs;
      const text = readFileSync(fd, 'utf8');
      const lsn = (JSON.parse(text) as { lsn?: string }).lsn;
      if (lsn === undefined) return undefined;
      if (storedAt !== this.lastCtime) {
        this.lastCtime = storedAt;
        this.observerDelayMs.push(nowMs() - storedAt);
      }
      return { lsn: parseLsn(lsn), storedAt };
    } finally {
      closeSync(fd);
    }
  }

  private look(): void {
    if (this.failure !== undefined) return;
    try {
      const checkpoint = this.readCheckpoint();
      this.readLines();
      if (checkpoint !== undefined) this.covered(checkpoint.lsn, checkpoint.storedAt);
    } catch (error) {
      this.failure = error;
    }
  }

  private readLines(): void {
    if (this.fd === undefined) {
      try {
        this.fd = openSync(this.file, 'r');
      } catch {
        return; // Not created yet.
      }
    }
    const info = fstatSync(this.fd);
    const size = info.size;
    // Every byte up to `size` was written at or before the file's mtime.
    const at = Math.min(nowMs(), info.mtimeMs);
    while (this.offset < size) {
      const n = readSync(this.fd, this.buffer, 0, Math.min(this.buffer.length, size - this.offset), this.offset);
      if (n === 0) break;
      this.offset += n;
      const text = this.partial + this.buffer.toString('utf8', 0, n);
      const lines = text.split('\n');
      this.partial = lines.pop() ?? '';
      for (const line of lines) {
        const match = COMMIT.exec(line);
        if (match === null) continue;
        const commitMs = Number(match[2]) / 1000;
        this.stamps.commitMs.push(commitMs);
        this.stamps.visibleMs.push(at - commitMs);
        this.stamps.durableMs.push(Number.NaN);
        this.waiting.push({ index: this.stamps.commitMs.length - 1, lsn: parseLsn(match[1] as string) });
      }
    }
  }

  /** Every line whose commit_lsn is before the checkpoint's lsn (a commit end) is durable since `at`. */
  private covered(lsn: number, at: number): void {
    while (this.waitingHead < this.waiting.length) {
      const next = this.waiting[this.waitingHead] as { index: number; lsn: number };
      if (next.lsn >= lsn) break;
      const durable = at - (this.stamps.commitMs[next.index] as number);
      this.stamps.durableMs[next.index] = durable;
      // Read after a later write than the one that made it durable: visible no later than durable.
      if ((this.stamps.visibleMs[next.index] as number) > durable) this.stamps.visibleMs[next.index] = durable;
      this.waitingHead++;
    }
  }
}
