/**
 * Liveness of the connections to the source, at the byte level: a stalled or half-open connection
 * (a dead NAT entry, a peer gone without FIN or RST) sends nothing, and nothing else would ever
 * notice. Two watches, each one timer that polls its socket's byte counters (nothing runs per
 * message, so the hot path pays nothing):
 *
 * - QueryWatch, on every connection while it runs ordinary queries: once a request is outstanding
 *   (bytes written since the last ReadyForQuery), the server must send a byte at least every
 *   `limitMs`. Else the socket is destroyed with SOURCE_TIMEOUT, which every pending query on the
 *   connection rejects with. An idle connection is never judged (an exported snapshot's holder may
 *   stay idle for hours).
 * - ReceiveWatch, on the replication connection while it streams: no byte for `timeoutMs` while
 *   reading is SOURCE_TIMEOUT. After `askAfterMs` of silence it asks the server for a keepalive,
 *   so a quiet stream is never mistaken for a dead one. Paused reading (a slow sink, a catalog
 *   lookup) suspends it: silence is then ours, and the lookup's own QueryWatch covers the catalog.
 */
import net from 'node:net';
import type pg from 'pg';
import { CdcError } from '../core/errors.ts';

/** How often a watch looks at its socket: often enough for a timely verdict, at most once a second. */
function pollInterval(limitMs: number): number {
  return Math.max(50, Math.min(1000, Math.floor(limitMs / 10)));
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/** The client's socket (the TLS socket once upgraded), when it is a real one. */
function socketOf(client: pg.Client): net.Socket | undefined {
  const stream = client.connection.stream;
  return stream instanceof net.Socket ? stream : undefined;
}

/** How long a connection being closed may wait for the server's goodbye. */
const CLOSE_GRACE_MS = 2000;

/**
 * Ends `client` (Terminate), destroying its socket when the server has not closed it within `graceMs`:
 * on a stalled or half-open link a plain end() never resolves.
 */
export async function endWithin(client: pg.Client, graceMs = CLOSE_GRACE_MS): Promise<void> {
  const timer = setTimeout(() => client.connection.stream.destroy(), graceMs);
  try {
    await client.end();
  } catch {
    // Already broken: nothing left to end.
  } finally {
    clearTimeout(timer);
  }
}

const queryWatches = new WeakMap<pg.Client, QueryWatch>();

/** The QueryWatch attached to `client` by openConnection, if any. */
export function queryWatchOf(client: pg.Client): QueryWatch | undefined {
  return queryWatches.get(client);
}

/** See the file comment. Contract: attach after `connect()` resolved; it stops by itself when the client ends. */
export class QueryWatch {
  private readonly client: pg.Client;
  private readonly what: string;
  private limitMs: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private writtenAtReady: number;
  private lastRead: number;
  private lastReadAt: number;
  private busySince: number | undefined;

  private constructor(client: pg.Client, what: string, limitMs: number | undefined) {
    this.client = client;
    this.what = what;
    const socket = socketOf(client);
    this.writtenAtReady = socket?.bytesWritten ?? 0;
    this.lastRead = socket?.bytesRead ?? 0;
    this.lastReadAt = Date.now();
    // Before pg's own listener: it may write the next queued query at once.
    client.connection.prependListener('readyForQuery', () => {
      this.writtenAtReady = socketOf(this.client)?.bytesWritten ?? 0;
      this.busySince = undefined;
    });
    // A dead connection rejects its queries; an unheard 'error' event would end the process.
    client.on('error', () => undefined);
    client.once('end', () => this.stop());
    this.setLimit(limitMs);
  }

  /** `what` names the connection in the error (`the catalog connection (pgcdc-catalog) to user@host:5432/db`). */
  static attach(client: pg.Client, what: string, limitMs: number | undefined): QueryWatch {
    const watch = new QueryWatch(client, what, limitMs);
    queryWatches.set(client, watch);
    return watch;
  }

  /** The current silence limit (undefined: none). */
  get limit(): number | undefined {
    return this.limitMs;
  }

  /** The silence limit from now on; undefined: none (a command that may legitimately wait, such as creating a slot). */
  setLimit(limitMs: number | undefined): void {
    this.limitMs = limitMs;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (limitMs === undefined) return;
    this.lastReadAt = Date.now();
    this.busySince = undefined;
    this.timer = setInterval(() => this.poll(), pollInterval(limitMs));
    this.timer.unref();
  }

  stop(): void {
    this.setLimit(undefined);
  }

  private poll(): void {
    const socket = socketOf(this.client);
    const limit = this.limitMs;
    if (!socket || socket.destroyed || limit === undefined) return;
    const now = Date.now();
    if (socket.bytesRead !== this.lastRead) {
      this.lastRead = socket.bytesRead;
      this.lastReadAt = now;
    }
    // A connection being closed (end() sent Terminate and half-closed) gets a short grace only: on a
    // half-open link the server's FIN never comes, and end() would wait for it forever.
    const allowed = socket.writableEnded ? Math.min(limit, CLOSE_GRACE_MS) : limit;
    if (socket.bytesWritten === this.writtenAtReady && !socket.writableEnded) {
      this.busySince = undefined;
      return;
    }
    this.busySince ??= now;
    const silent = now - Math.max(this.busySince, this.lastReadAt);
    if (silent < allowed) return;
    this.stop();
    if (socket.writableEnded) {
      socket.destroy();
      return;
    }
    socket.destroy(
      new CdcError(
        'SOURCE_TIMEOUT',
        `${this.what} sent nothing for ${seconds(silent)} while a query waited for its answer ` +
          `(limit ${seconds(limit)}): the connection is stalled or half-open, so it was closed`,
        {
          retryable: true,
          hint:
            'check the network path to the server; a query that legitimately runs longer needs a higher ' +
            'source.statementTimeoutMs (snapshot.queryTimeoutMs for snapshot reads)',
        },
      ),
    );
  }
}

export interface ReceiveWatchOptions {
  /** No byte for this long while reading is a timeout. */
  readonly timeoutMs: number;
  /** After this much silence, ask the server for a keepalive (and again after as much more). */
  readonly askAfterMs: number;
  /** Names the stalled connection in the error. */
  readonly what: string;
  /** Where `timeoutMs` came from, for the error (`source.receiveTimeoutMs`, `twice wal_sender_timeout`). */
  readonly origin: string;
  readonly socket: () => net.Socket | undefined;
  /** True while the reader does not read (the silence is then not the server's). */
  readonly paused: () => boolean;
  readonly askKeepalive: () => void;
  /** Called once, with the socket already destroyed. */
  readonly expired: (error: CdcError) => void;
}

/** See the file comment. */
export class ReceiveWatch {
  private readonly options: ReceiveWatchOptions;
  private readonly timer: NodeJS.Timeout;
  private lastRead = -1;
  private lastReadAt = Date.now();
  private askedAt: number | undefined;

  constructor(options: ReceiveWatchOptions) {
    this.options = options;
    this.timer = setInterval(() => this.poll(), pollInterval(Math.min(options.timeoutMs, options.askAfterMs)));
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private poll(): void {
    const socket = this.options.socket();
    if (!socket || socket.destroyed) return;
    const now = Date.now();
    if (socket.bytesRead !== this.lastRead || this.options.paused()) {
      this.lastRead = socket.bytesRead;
      this.lastReadAt = now;
      this.askedAt = undefined;
      return;
    }
    const silent = now - this.lastReadAt;
    if (silent >= this.options.timeoutMs) {
      this.stop();
      const error = new CdcError(
        'SOURCE_TIMEOUT',
        `${this.options.what} received nothing for ${seconds(silent)}, not even a keepalive asked for ` +
          `(receive timeout ${seconds(this.options.timeoutMs)}, ${this.options.origin}): the connection is ` +
          `stalled or half-open, so it was closed`,
        {
          retryable: true,
          hint: 'check the network path to the server (and that the walsender is not stuck)',
        },
      );
      socket.destroy();
      this.options.expired(error);
      return;
    }
    if (
      silent >= this.options.askAfterMs &&
      (this.askedAt === undefined || now - this.askedAt >= this.options.askAfterMs)
    ) {
      this.askedAt = now;
      this.options.askKeepalive();
    }
  }
}
