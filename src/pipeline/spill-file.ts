/**
 * The on-disk spill of one streamed (in-progress) top-level transaction: the raw pgoutput message
 * bytes PostgreSQL sent between Stream Start and Stream Stop, in arrival order, so memory stays
 * bounded whatever the transaction's size. Decoding waits until Stream Commit.
 *
 * Record framing (big-endian): Int32 length of data, Float64 walStart (an LSN, exact below 2^53),
 * Byte[length] data (one pgoutput message with its leading xid, exactly as received).
 *
 * Contract:
 * - `append` is synchronous and keeps the order of calls; records reach the file through a write
 *   buffer (no fsync: after a crash the server sends the whole transaction again, so a spill file
 *   never needs to survive one). The write buffer may be shared by many files, one appending at a
 *   time: `flush` before another file appends. Only one stream block is open at a time, so one
 *   buffer serves every open streamed transaction and memory does not grow with their number.
 * - `dropSubtransaction(subXid)` truncates the file at that subtransaction's first record. Everything
 *   after it belongs to the subtransaction or to subtransactions nested in it: only the innermost
 *   open subtransaction writes, and PostgreSQL streams a transaction's changes in WAL order, with
 *   the abort of a subtransaction sent when decoding reaches its abort record, before any change
 *   made after it. PostgreSQL's own apply worker discards aborted subtransactions the same way.
 * - `readSpill` reads the records back through one reusable buffer, so replaying never holds more
 *   than a chunk (or one record larger than a chunk) in memory.
 */
import { closeSync, ftruncateSync, openSync, rmSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { isLocalIoFailure, localIoError } from '../core/local-io.ts';
import { CdcError } from '../core/errors.ts';
import type { Lsn } from '../protocol/messages.ts';

/** Bytes of a record header: Int32 length, Float64 walStart. */
export const RECORD_HEADER = 12;
/** Write buffer size: big enough to make writes cheap, small enough not to matter for memory. */
export const WRITE_BUFFER = 1024 * 1024;
/** Read chunk size for replay. */
const READ_CHUNK = 1024 * 1024;

export class SpillFile {
  readonly path: string;
  private fd: number | undefined;
  /** Bytes already written to the file. */
  private written = 0;
  private readonly buffer: Buffer;
  /** Bytes of `buffer` holding this file's records not yet written. */
  private used = 0;
  /** Subtransaction xid -> file offset of its first record, in first-seen order. */
  private readonly firstRecord = new Map<number, number>();
  /** Records appended and not dropped (for logs). */
  records = 0;

  /** Creates (or empties) the file at `path`; `buffer` is the (possibly shared) write buffer. */
  constructor(path: string, buffer: Buffer = Buffer.allocUnsafe(WRITE_BUFFER)) {
    this.path = path;
    this.buffer = buffer;
    try {
      this.fd = openSync(path, 'w', 0o600);
    } catch (cause) {
      throw spillFailed(path, cause);
    }
  }

  /** Logical size: what is in the file plus what waits in the write buffer. */
  get size(): number {
    return this.written + this.used;
  }

  /**
   * Appends one message. `subXid` is the xid the message carries: the top-level xid or that of the
   * subtransaction that made the change.
   */
  append(subXid: number, walStart: Lsn, data: Buffer): void {
    if (!this.firstRecord.has(subXid)) this.firstRecord.set(subXid, this.size);
    const capacity = this.buffer.length;
    if (this.used + RECORD_HEADER + data.length > capacity) this.flush();
    this.buffer.writeUInt32BE(data.length, this.used);
    this.buffer.writeDoubleBE(walStart, this.used + 4);
    this.used += RECORD_HEADER;
    if (this.used + data.length <= capacity) {
      data.copy(this.buffer, this.used);
      this.used += data.length;
    } else {
      // A message larger than the buffer (a huge row): written straight through, after its header.
      this.flush();
      this.writeAll(data);
    }
    this.records++;
  }

  /** Writes the buffered records to the file (the OS cache; see the module doc on fsync). */
  flush(): void {
    if (this.used === 0) return;
    const chunk = this.buffer.subarray(0, this.used);
    this.used = 0;
    this.writeAll(chunk);
  }

  /**
   * Drops the records of an aborted subtransaction (and of any subtransaction nested in it).
   * Returns false when it had no record here (nothing it changed was published), true otherwise.
   */
  dropSubtransaction(subXid: number): boolean {
    const from = this.firstRecord.get(subXid);
    if (from === undefined) return false;
    this.flush();
    ftruncateSync(this.requireFd(), from);
    this.written = from;
    for (const [xid, offset] of this.firstRecord) if (offset >= from) this.firstRecord.delete(xid);
    return true;
  }

  /** Flushes and closes the file descriptor; the file stays for `readSpill`. */
  close(): void {
    this.flush();
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  /** Closes and deletes the file. Safe to call more than once. */
  remove(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
    this.used = 0;
    rmSync(this.path, { force: true });
  }

  private writeAll(data: Buffer): void {
    const fd = this.requireFd();
    let offset = 0;
    try {
      while (offset < data.length) {
        const n = writeSync(fd, data, offset, data.length - offset, this.written);
        offset += n;
        this.written += n;
      }
    } catch (cause) {
      throw spillFailed(this.path, cause);
    }
  }

  private requireFd(): number {
    if (this.fd === undefined) throw new CdcError('INTERNAL', `spill file ${this.path} is closed`);
    return this.fd;
  }
}

function spillFailed(path: string, cause: unknown): CdcError {
  // A full or failing disk is the user's to fix (LOCAL_IO, like the offsets file); anything else is a bug.
  if (isLocalIoFailure(cause)) return localIoError(cause, 'cannot write the spill file', path);
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new CdcError('INTERNAL', `cannot write the spill file ${path}: ${reason}`, { cause });
}

/** One record read back. `data` is valid only until the iterator moves on. */
export interface SpillRecord {
  readonly walStart: Lsn;
  readonly data: Buffer;
}

/** Reads the records of a spill file in order, one chunk of the file in memory at a time. */
export async function* readSpill(path: string): AsyncGenerator<SpillRecord> {
  const file = await open(path, 'r');
  try {
    let chunk = Buffer.allocUnsafe(READ_CHUNK);
    let start = 0; // first unread byte in chunk
    let end = 0; // end of valid bytes in chunk
    let position = 0; // file offset of chunk[end]
    let eof = false;
    for (;;) {
      if (end - start >= RECORD_HEADER) {
        const length = chunk.readUInt32BE(start);
        if (end - start >= RECORD_HEADER + length) {
          const walStart = chunk.readDoubleBE(start + 4);
          const data = chunk.subarray(start + RECORD_HEADER, start + RECORD_HEADER + length);
          start += RECORD_HEADER + length;
          yield { walStart, data };
          continue;
        }
        // The record does not fit in what is left of the chunk: move it to the front, growing the
        // buffer for a record larger than a chunk.
        if (RECORD_HEADER + length > chunk.length) {
          const bigger = Buffer.allocUnsafe(RECORD_HEADER + length);
          chunk.copy(bigger, 0, start, end);
          chunk = bigger;
          end -= start;
          start = 0;
        }
      }
      if (eof) {
        if (end > start)
          throw new CdcError('INTERNAL', `spill file ${path} ends inside a record (${end - start} bytes left)`);
        return;
      }
      if (start > 0) {
        chunk.copy(chunk, 0, start, end);
        end -= start;
        start = 0;
      }
      const { bytesRead } = await file.read(chunk, end, chunk.length - end, position);
      if (bytesRead === 0) eof = true;
      end += bytesRead;
      position += bytesRead;
    }
  } finally {
    await file.close();
  }
}
