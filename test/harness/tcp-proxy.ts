/**
 * A loopback TCP proxy in front of a PostgreSQL port, for network-fault tests. It listens on
 * 127.0.0.1 (an ephemeral port) and forwards every connection to the server, byte for byte, while
 * it can misbehave on demand the way networks do:
 *
 * - `cut(kind?)`: both sides of every (matching) connection are reset at once (RST), as a crashed
 *   middlebox or a restarted load balancer does.
 * - `stall(ms)`: nothing is forwarded, either way, on any connection for `ms`, and new connections
 *   are held unanswered; then everything resumes and no byte is lost (a congested or flapping link).
 * - `halfOpen(kind)`: matching connections stop forwarding for good, without closing either side: no
 *   FIN, no RST, no byte, as when a NAT entry or the peer vanished. TCP keepalives are still
 *   answered (by this machine's kernel), so only an application-level timeout notices.
 *
 * Each connection is classified from its PostgreSQL startup packet: `replication` when it carries a
 * `replication` parameter other than false/off/no/0, else `regular`. An SSLRequest (or GSSENCRequest)
 * first is forwarded and the packet after it parsed; a connection that goes on to TLS cannot be read
 * and stays `unknown` (the tests use sslmode=disable on loopback).
 */
import net from 'node:net';

export type ProxiedKind = 'replication' | 'regular' | 'unknown';

const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;
const PROTOCOL_3 = 196608;
/** A startup packet is small; anything claiming more is not one (TLS, garbage). */
const MAX_STARTUP_BYTES = 10_000;

/** One proxied connection: the client's socket and ours to the server. */
class Pair {
  kind: ProxiedKind = 'unknown';
  /** Classification finished (the startup packet was read, or cannot be). */
  classified = false;
  /** Forwarding stopped for good (halfOpen). */
  dead = false;
  private startup = Buffer.alloc(0);

  constructor(
    readonly client: net.Socket,
    readonly server: net.Socket,
    readonly openedAt: number,
  ) {}

  /** Reads the startup packet (after any SSL/GSSENC requests) from the client's first bytes. */
  inspect(chunk: Buffer): void {
    if (this.classified) return;
    this.startup = Buffer.concat([this.startup, chunk]);
    for (;;) {
      if (this.startup.length < 8) return;
      const length = this.startup.readInt32BE(0);
      const code = this.startup.readInt32BE(4);
      if (length < 8 || length > MAX_STARTUP_BYTES) return this.done('unknown');
      if (this.startup.length < length) return;
      if (code === SSL_REQUEST || code === GSSENC_REQUEST) {
        // Forwarded as is; the server answers it. After 'N' the startup packet follows in plain.
        this.startup = this.startup.subarray(length);
        continue;
      }
      if (code !== PROTOCOL_3) return this.done('unknown');
      return this.done(replicationParameter(this.startup.subarray(8, length)) ? 'replication' : 'regular');
    }
  }

  private done(kind: ProxiedKind): void {
    this.kind = kind;
    this.classified = true;
    this.startup = Buffer.alloc(0);
  }

  get open(): boolean {
    return !this.client.destroyed && !this.server.destroyed;
  }
}

/** True when the startup parameters ask for a replication connection. */
function replicationParameter(params: Buffer): boolean {
  const fields = params.toString('utf8').split('\0');
  for (let i = 0; i + 1 < fields.length; i += 2) {
    if (fields[i] === 'replication') return !['false', 'off', 'no', '0'].includes((fields[i + 1] ?? '').toLowerCase());
  }
  return false;
}

export class TcpProxy {
  private readonly server: net.Server;
  private readonly target: { host: string; port: number };
  private readonly pairs = new Set<Pair>();
  /** Connections accepted while stalled: they start forwarding when the stall ends. */
  private readonly waiting: (() => void)[] = [];
  private stalled = false;
  private closed = false;
  /** Connections accepted so far, by kind (for tests that wait for a reconnect). */
  readonly accepted: Record<ProxiedKind, number> = { replication: 0, regular: 0, unknown: 0 };
  readonly port: number;

  private constructor(server: net.Server, target: { host: string; port: number }, port: number) {
    this.server = server;
    this.target = target;
    this.port = port;
  }

  /** Starts a proxy to `target` (a PostgreSQL host and port). */
  static async start(target: { host: string; port: number }): Promise<TcpProxy> {
    const server = net.createServer({ pauseOnConnect: true });
    const port = await new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const address = server.address();
        resolve(typeof address === 'object' && address !== null ? address.port : 0);
      });
    });
    const proxy = new TcpProxy(server, target, port);
    server.on('connection', (socket) => proxy.accept(socket));
    return proxy;
  }

  /** `url` (a postgres:// URL) pointed at this proxy instead of its own host and port. */
  url(url: string): string {
    const u = new URL(url);
    u.hostname = '127.0.0.1';
    u.port = String(this.port);
    return u.toString();
  }

  /** Open connections, of `kind` when given. */
  connections(kind?: ProxiedKind): number {
    let n = 0;
    for (const pair of this.pairs) if (pair.open && (kind === undefined || pair.kind === kind)) n++;
    return n;
  }

  /** Resets both sides of every open connection (of `kind` when given); returns how many. */
  cut(kind?: ProxiedKind): number {
    let n = 0;
    for (const pair of [...this.pairs]) {
      if (kind !== undefined && pair.kind !== kind) continue;
      n++;
      this.reset(pair);
    }
    return n;
  }

  /**
   * Stops forwarding on every connection, both ways, and holds new ones, for `ms`; then resumes.
   * Nothing is lost: unread bytes wait in the sockets' buffers. Connections made half-open stay so.
   */
  async stall(ms: number): Promise<void> {
    this.stalled = true;
    for (const pair of this.pairs) this.hold(pair);
    await new Promise((resolve) => setTimeout(resolve, ms));
    this.stalled = false;
    for (const pair of this.pairs) if (!pair.dead) this.release(pair);
    for (const start of this.waiting.splice(0)) start();
  }

  /** Stops forwarding for good on the open connections of `kind`, closing nothing; returns how many. */
  halfOpen(kind: ProxiedKind): number {
    let n = 0;
    for (const pair of this.pairs) {
      if (pair.kind !== kind || !pair.open || pair.dead) continue;
      pair.dead = true;
      this.hold(pair);
      n++;
    }
    return n;
  }

  /** Closes every connection and the listener. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.waiting.length = 0;
    for (const pair of [...this.pairs]) this.reset(pair);
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: net.Socket): void {
    if (this.closed) {
      client.destroy();
      return;
    }
    const start = (): void => {
      if (this.closed || client.destroyed) {
        client.destroy();
        return;
      }
      const server = net.connect(this.target.port, this.target.host);
      const pair = new Pair(client, server, Date.now());
      this.pairs.add(pair);
      // A FIN is passed on once everything before it is; an error resets the other side too.
      const fail = (): void => this.reset(pair);
      client.on('error', fail);
      server.on('error', fail);
      client.on('end', () => server.end());
      server.on('end', () => client.end());
      const closed = (): void => {
        if (client.destroyed && server.destroyed) this.pairs.delete(pair);
      };
      client.on('close', closed);
      server.on('close', closed);
      client.on('data', (chunk: Buffer) => {
        const known = pair.classified;
        pair.inspect(chunk);
        if (!known && pair.classified) this.accepted[pair.kind]++;
        this.forward(pair, server, client, chunk);
      });
      server.on('data', (chunk: Buffer) => this.forward(pair, client, server, chunk));
      server.once('connect', () => {
        if (!this.stalled && !pair.dead) client.resume();
      });
    };
    if (this.stalled) this.waiting.push(start);
    else start();
  }

  /** Writes `chunk` to `to`, pausing `from` while `to` is full (resumed on drain unless held). */
  private forward(pair: Pair, to: net.Socket, from: net.Socket, chunk: Buffer): void {
    if (to.write(chunk)) return;
    from.pause();
    to.once('drain', () => {
      if (!this.stalled && !pair.dead) from.resume();
    });
  }

  private hold(pair: Pair): void {
    pair.client.pause();
    pair.server.pause();
  }

  private release(pair: Pair): void {
    pair.client.resume();
    pair.server.resume();
  }

  private reset(pair: Pair): void {
    this.pairs.delete(pair);
    for (const socket of [pair.client, pair.server]) {
      if (socket.destroyed) continue;
      // An abrupt end (RST) where the socket is connected; destroy() otherwise.
      if (socket.readyState === 'open') socket.resetAndDestroy();
      else socket.destroy();
    }
  }
}
