/**
 * `COPY ... TO STDOUT` read into one buffer: the transport of the initial snapshot's fast path.
 *
 * The server sends a CopyData message per row. pg-copy-streams makes a Buffer view of each one and
 * a stream chunk of each socket read; at a million rows a second those views were the snapshot's
 * main garbage (docs/benchmarks.md, the profile). This reader frames the messages itself, straight
 * in the socket's chunks, and copies each row's bytes into one growing buffer: nothing is allocated
 * per row.
 *
 * It is a pg "submittable" and takes over the connection's socket as pg-copy-streams does: on
 * submit it detaches pg's data listener and reads the socket itself until CopyDone (or anything but
 * CopyOutResponse, CopyData and the asynchronous messages), then gives pg back its listener and the
 * unread bytes, so pg handles CommandComplete, ReadyForQuery and errors as for any query. An
 * ErrorResponse is handed to pg at once; pg reports it through `handleError`.
 */
import type { Readable } from 'node:stream';
import type pg from 'pg';

const COPY_DATA = 0x64; // d
const COPY_OUT_RESPONSE = 0x48; // H
const ERROR_RESPONSE = 0x45; // E
const PARAMETER_STATUS = 0x53; // S
const NOTICE_RESPONSE = 0x4e; // N
const NOTIFICATION_RESPONSE = 0x41; // A

/** What the reader needs of pg's Connection (not in pg's types). */
interface PgConnection {
  readonly stream: Readable;
  query(text: string): void;
}

type DataHandler = (chunk: Buffer) => void;

class CopyOutQuery {
  readonly text: string;
  readonly done: Promise<Buffer>;
  private resolve!: (data: Buffer) => void;
  private reject!: (error: Error) => void;
  private settled = false;
  private failed = false;
  private connection: PgConnection | undefined;
  private pgHandler: DataHandler | undefined;
  private readonly onReadable = (): void => this.drain();
  /** The rows so far: out[0, used). */
  private out = Buffer.allocUnsafe(1 << 16);
  private used = 0;
  /** A message header (type and length) split across socket chunks. */
  private header = Buffer.alloc(5);
  private headerBytes = 0;
  /** The current message: its type and the bytes of it still to come. */
  private type = 0;
  private remaining = 0;

  constructor(text: string) {
    this.text = text;
    this.done = new Promise<Buffer>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }

  /** Called by pg when the query's turn comes. */
  submit(connection: PgConnection): void {
    this.connection = connection;
    const stream = connection.stream;
    const handlers = stream.listeners('data') as DataHandler[];
    this.pgHandler = handlers[0];
    if (this.pgHandler !== undefined) stream.removeListener('data', this.pgHandler);
    stream.pause();
    stream.on('readable', this.onReadable);
    connection.query(this.text);
    this.drain();
  }

  handleError(error: Error): void {
    this.failed = true;
    this.settle(error);
  }

  handleCommandComplete(): void {}

  handleReadyForQuery(): void {
    this.settle(undefined);
  }

  private settle(error: Error | undefined): void {
    if (this.settled) return;
    this.settled = true;
    if (error !== undefined || this.failed) this.reject(error ?? new Error('COPY failed'));
    else this.resolve(this.out.subarray(0, this.used));
  }

  private drain(): void {
    const stream = this.connection?.stream;
    if (stream === undefined || this.pgHandler === undefined) return;
    let chunk: Buffer | null;
    while ((chunk = stream.read() as Buffer | null) !== null) {
      const rest = this.parse(chunk);
      if (rest !== undefined) {
        this.detach(stream, rest);
        return;
      }
    }
  }

  /** Consumes `chunk`; returns the bytes from the first message that ends the copy (pg's to handle), if any. */
  private parse(chunk: Buffer): Buffer | undefined {
    let at = 0;
    const length = chunk.length;
    while (at < length) {
      if (this.remaining === 0) {
        // A new message: its type byte and length, maybe split across chunks.
        if (this.headerBytes === 0 && at + 5 <= length) {
          this.type = chunk[at] as number;
          if (!this.continuesCopy(this.type)) return chunk.subarray(at);
          this.remaining = chunk.readUInt32BE(at + 1) - 4;
          at += 5;
        } else {
          if (this.headerBytes === 0 && !this.continuesCopy(chunk[at] as number)) return chunk.subarray(at);
          while (this.headerBytes < 5 && at < length) this.header[this.headerBytes++] = chunk[at++] as number;
          if (this.headerBytes < 5) return undefined;
          this.headerBytes = 0;
          this.type = this.header[0] as number;
          this.remaining = this.header.readUInt32BE(1) - 4;
        }
        continue;
      }
      const n = Math.min(this.remaining, length - at);
      if (this.type === COPY_DATA) this.append(chunk, at, at + n);
      at += n;
      this.remaining -= n;
    }
    return undefined;
  }

  /** CopyOutResponse, CopyData and the messages that may come at any time; anything else ends the copy. */
  private continuesCopy(type: number): boolean {
    return (
      type === COPY_DATA ||
      type === COPY_OUT_RESPONSE ||
      type === PARAMETER_STATUS ||
      type === NOTICE_RESPONSE ||
      type === NOTIFICATION_RESPONSE
    );
  }

  private append(chunk: Buffer, start: number, end: number): void {
    const n = end - start;
    if (this.out.length - this.used < n) {
      const grown = Buffer.allocUnsafe(Math.max(this.out.length * 2, this.used + n));
      this.out.copy(grown, 0, 0, this.used);
      this.out = grown;
    }
    const out = this.out;
    let used = this.used;
    // A row is a few dozen bytes: a loop beats a native copy call for those.
    if (n < 64) for (let i = start; i < end; i++) out[used++] = chunk[i] as number;
    else used += chunk.copy(out, used, start, end);
    this.used = used;
  }

  /** Gives the socket back to pg with the bytes it must parse (CopyDone onwards, or an error). */
  private detach(stream: Readable, rest: Buffer): void {
    const handler = this.pgHandler as DataHandler;
    this.pgHandler = undefined;
    stream.removeListener('readable', this.onReadable);
    stream.on('data', handler);
    if (rest[0] === ERROR_RESPONSE) this.failed = true;
    handler(rest);
    // Reading resumes after pg's handler returned (as pg-copy-streams does).
    process.nextTick(() => stream.resume());
  }
}

/**
 * Runs `sql` (a `COPY ... TO STDOUT`) on `client` and resolves with every row's bytes, in order,
 * as one buffer; rejects with the server's error (a pg DatabaseError) as `client.query` would.
 */
export function copyOut(client: pg.ClientBase, sql: string): Promise<Buffer> {
  const query = new CopyOutQuery(sql);
  // pg runs any object with `submit` as a query (its "submittable" interface).
  void client.query(query as unknown as pg.QueryConfig);
  return query.done;
}
