/**
 * A minimal Redis client over node:net / node:tls speaking RESP2 (resp.ts): one connection,
 * commands pipelined in the order they are written, replies matched to requests first in, first
 * out. `connect` authenticates (AUTH [user] password), selects the database and names the
 * connection before it resolves.
 *
 * Failures are plain errors for the sink to classify (errors.ts): a `RespError` for an error reply,
 * a `RedisConnectionError` (with the socket's errno `code` when there is one) for a connection that
 * could not be made, broke, or stopped answering. Once the connection is gone every pending and
 * later request rejects with the same error: the client never reconnects by itself (the sink is
 * replaced, and the capture restarted from its checkpoint, by the supervisor).
 */
import net from 'node:net';
import tls from 'node:tls';
import { encodeCommand, INCOMPLETE, ReplyReader, RespError, SKIPPED, type RespValue } from './resp.ts';

export interface RedisConnectSettings {
  readonly host: string;
  readonly port: number;
  /** TLS options (rediss://); `servername` and `checkServerIdentity` already decided by the caller. */
  readonly tls?: tls.ConnectionOptions | undefined;
  readonly username?: string | undefined;
  readonly password?: string | undefined;
  readonly db: number;
  readonly clientName?: string | undefined;
  readonly connectTimeoutMs: number;
  /** Requests pending and nothing received for this long: the connection is dropped as failed. */
  readonly requestTimeoutMs: number;
}

/** The connection could not be made, broke, or timed out. `code` is the errno when there is one. */
export class RedisConnectionError extends Error {
  readonly code: string | undefined;
  constructor(message: string, code: string | undefined, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'RedisConnectionError';
    this.code = code;
  }
}

/** What the handshake's AUTH, SELECT or PING was refused with. */
export class RedisHandshakeError extends Error {
  readonly step: 'AUTH' | 'SELECT' | 'PING';
  readonly reply: RespError;
  constructor(step: 'AUTH' | 'SELECT' | 'PING', reply: RespError) {
    super(`${step}: ${reply.message}`, { cause: reply });
    this.name = 'RedisHandshakeError';
    this.step = step;
    this.reply = reply;
  }
}

/** The outcome of a pipeline: its first error reply (with its index) and its last reply. */
export interface PipelineOutcome {
  readonly firstError: { readonly index: number; readonly error: RespError } | undefined;
  /** The last reply, materialised when asked for (`keepLast`), else undefined. */
  readonly last: RespValue | undefined;
}

interface Waiter {
  remaining: number;
  index: number;
  readonly keepAll: boolean;
  readonly keepLast: boolean;
  firstError: { index: number; error: RespError } | undefined;
  last: RespValue | undefined;
  resolve(outcome: PipelineOutcome): void;
  reject(error: Error): void;
}

export class RedisConnection {
  private readonly socket: net.Socket;
  private readonly reader = new ReplyReader();
  private readonly waiters: Waiter[] = [];
  private gone: RedisConnectionError | undefined;
  private readonly closed: Promise<void>;

  private constructor(socket: net.Socket, requestTimeoutMs: number) {
    this.socket = socket;
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 10_000);
    socket.setTimeout(requestTimeoutMs);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('timeout', () => {
      if (this.waiters.length > 0)
        this.fail(new RedisConnectionError(`no reply from the server for ${requestTimeoutMs} ms`, 'ETIMEDOUT'), true);
    });
    socket.on('error', (error: NodeJS.ErrnoException) =>
      this.fail(new RedisConnectionError(error.message, error.code, error), true),
    );
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.once('close', () => this.fail(new RedisConnectionError('the server closed the connection', 'ECONNRESET')));
  }

  /**
   * Connects, authenticates, selects `db` and names the connection. Rejects with a
   * RedisConnectionError (unreachable, TLS refused, timed out) or a RedisHandshakeError (a refused
   * AUTH or SELECT, or NOAUTH: the server wants a password).
   */
  static async connect(settings: RedisConnectSettings): Promise<RedisConnection> {
    const socket = await openSocket(settings);
    const connection = new RedisConnection(socket, settings.requestTimeoutMs);
    try {
      await connection.handshake(settings);
    } catch (error) {
      connection.destroy();
      throw error;
    }
    return connection;
  }

  private async handshake(settings: RedisConnectSettings): Promise<void> {
    // Pipelined: one round trip. The replies are read in order; the first refusal says what failed.
    const steps: { step: 'AUTH' | 'SELECT' | 'PING' | 'SETNAME'; reply: Promise<RespValue> }[] = [];
    if (settings.password !== undefined) {
      const args = settings.username === undefined ? [settings.password] : [settings.username, settings.password];
      steps.push({ step: 'AUTH', reply: this.command(['AUTH', ...args]) });
    }
    if (settings.db !== 0) steps.push({ step: 'SELECT', reply: this.command(['SELECT', settings.db]) });
    // A restricted ACL user may not be allowed CLIENT SETNAME: its refusal is ignored.
    if (settings.clientName !== undefined)
      steps.push({ step: 'SETNAME', reply: this.command(['CLIENT', 'SETNAME', settings.clientName]) });
    steps.push({ step: 'PING', reply: this.command(['PING']) });
    const settled = await Promise.allSettled(steps.map((s) => s.reply));
    for (let i = 0; i < steps.length; i++) {
      const outcome = settled[i];
      const step = steps[i]?.step;
      if (outcome?.status !== 'rejected' || step === undefined) continue;
      const reason: unknown = outcome.reason;
      if (reason instanceof RespError) {
        if (step === 'SETNAME' && reason.prefix === 'NOPERM') continue;
        throw new RedisHandshakeError(step === 'SETNAME' ? 'PING' : step, reason);
      }
      throw reason;
    }
  }

  /** Whether the connection is still usable. */
  get usable(): boolean {
    return this.gone === undefined;
  }

  /** One command; its reply materialised. Rejects with the RespError of an error reply. */
  async command(args: readonly (string | Buffer | number)[]): Promise<RespValue> {
    const outcome = await this.enqueue(encodeCommand(args), 1, true, true);
    if (outcome.firstError) throw outcome.firstError.error;
    return outcome.last ?? null;
  }

  /**
   * Writes `parts` (exactly `replies` commands in all) in one socket write and resolves once every
   * reply arrived: the replies are counted, not materialised, except errors and (`keepLast`) the last.
   */
  pipeline(parts: Buffer | readonly Buffer[], replies: number, keepLast = false): Promise<PipelineOutcome> {
    return this.enqueue(parts, replies, false, keepLast);
  }

  private enqueue(
    parts: Buffer | readonly Buffer[],
    replies: number,
    keepAll: boolean,
    keepLast: boolean,
  ): Promise<PipelineOutcome> {
    if (this.gone) return Promise.reject(this.gone);
    if (replies === 0) return Promise.resolve({ firstError: undefined, last: undefined });
    return new Promise<PipelineOutcome>((resolve, reject) => {
      this.waiters.push({
        remaining: replies,
        index: 0,
        keepAll,
        keepLast,
        firstError: undefined,
        last: undefined,
        resolve,
        reject,
      });
      if (Buffer.isBuffer(parts)) this.socket.write(parts);
      else {
        // Corked: the parts leave in one writev, without being copied together first.
        this.socket.cork();
        for (const part of parts) this.socket.write(part);
        this.socket.uncork();
      }
    });
  }

  private onData(chunk: Buffer): void {
    this.reader.push(chunk);
    try {
      for (;;) {
        const waiter = this.waiters[0];
        if (waiter === undefined) {
          if (this.reader.buffered > 0) throw new Error('a reply nobody asked for');
          return;
        }
        const value = this.reader.next(waiter.keepAll || (waiter.keepLast && waiter.remaining === 1));
        if (value === INCOMPLETE) return;
        if (value instanceof RespError && waiter.firstError === undefined)
          waiter.firstError = { index: waiter.index, error: value };
        waiter.index++;
        if (--waiter.remaining > 0) continue;
        waiter.last = value === SKIPPED ? undefined : value;
        this.waiters.shift();
        waiter.resolve({ firstError: waiter.firstError, last: waiter.last });
      }
    } catch (error) {
      this.fail(
        new RedisConnectionError(`the server's reply cannot be read (${(error as Error).message})`, 'EPROTO', error),
        true,
      );
    }
  }

  /** Marks the connection gone: every pending request rejects, later ones too. */
  private fail(error: RedisConnectionError, destroy = false): void {
    this.gone ??= error;
    for (const waiter of this.waiters.splice(0)) waiter.reject(this.gone);
    if (destroy) this.socket.destroy();
  }

  private destroy(): void {
    this.fail(new RedisConnectionError('the connection was closed by pgcdc', undefined), true);
  }

  /** Closes the connection once the pending replies arrived (QUIT), or at once if it is broken. */
  async close(): Promise<void> {
    if (this.gone === undefined) {
      const quit = this.command(['QUIT']).catch(() => undefined);
      this.gone = new RedisConnectionError('the connection was closed by pgcdc', undefined);
      await quit;
      this.socket.end();
    }
    this.socket.destroy();
    await this.closed;
  }
}

/** A TCP (or TLS) connection to the server, within the connect timeout. */
function openSocket(settings: RedisConnectSettings): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = settings.tls
      ? tls.connect({ ...settings.tls, host: settings.host, port: settings.port })
      : net.connect({ host: settings.host, port: settings.port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new RedisConnectionError(`connecting took longer than ${settings.connectTimeoutMs} ms`, 'ETIMEDOUT'));
    }, settings.connectTimeoutMs);
    const onError = (error: NodeJS.ErrnoException): void => {
      clearTimeout(timer);
      socket.destroy();
      reject(new RedisConnectionError(error.message, error.code, error));
    };
    socket.once('error', onError);
    socket.once(settings.tls ? 'secureConnect' : 'connect', () => {
      clearTimeout(timer);
      socket.off('error', onError);
      resolve(socket);
    });
  });
}
