/**
 * A real redis-server for tests (Debian's redis-server; .ci/run installs it): on a free port, in a
 * temp dir, with `appendonly yes`, `appendfsync always` and no RDB snapshots, so an entry Redis
 * acknowledged survives a SIGKILL of the server. Stopped and deleted after the test file; `kill` and
 * `start` crash and restart it on the same port and AOF dir.
 *
 * Callers skip with `requireOrSkip(redisAvailable(), 'redis-server')`. The streams are read back
 * with XRANGE through pgcdc's own RESP client (src/sinks/redis/client.ts) on a separate connection.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from '../../src/embedded/cluster.ts';
import { RedisConnection } from '../../src/sinks/redis/client.ts';
import type { RespValue } from '../../src/sinks/redis/resp.ts';
import { listening } from './daemon.ts';
import { onPath } from './maven-fetch.ts';
import { assertTeardownPending, eventually, onTeardown } from './pg.ts';
import { makeTestPki, type TestPki } from './pki.ts';
import { onProcessExit } from './tmp.ts';

export function redisAvailable(): boolean {
  return onPath('redis-server');
}

export interface RedisServerOptions {
  /** `requirepass`: the default user's password. */
  password?: string;
  /** ACL rules, one user each (`writer on >secret ~t_* +xadd +type +ping`). */
  users?: readonly string[];
  /** Also listen with TLS on `tlsPort`, with a certificate for 127.0.0.1 and localhost (pki.ts). */
  tls?: boolean;
  /** Replicate this server (a replica for sink.wait). */
  replicaOf?: RedisServer;
}

export class RedisServer {
  readonly port: number;
  readonly tlsPort: number | undefined;
  readonly dir: string;
  readonly pki: TestPki | undefined;
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private forget: () => void = () => undefined;
  private output = '';

  private constructor(
    port: number,
    tlsPort: number | undefined,
    dir: string,
    pki: TestPki | undefined,
    private readonly options: RedisServerOptions,
  ) {
    this.port = port;
    this.tlsPort = tlsPort;
    this.dir = dir;
    this.pki = pki;
  }

  static async start(options: RedisServerOptions = {}): Promise<RedisServer> {
    assertTeardownPending();
    const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-redis-'));
    const pki = options.tls ? makeTestPki(dir) : undefined;
    const server = new RedisServer(await freePort(), options.tls ? await freePort() : undefined, dir, pki, options);
    onTeardown(async () => {
      await server.stop();
      await rm(dir, { recursive: true, force: true });
    });
    await server.start();
    return server;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** `redis://127.0.0.1:<port>/<db>` (no credentials). */
  url(db = 0): string {
    return `redis://127.0.0.1:${this.port}/${db}`;
  }

  /** What the server logged. */
  log(): string {
    return this.output;
  }

  /** Starts the server (again, on the same port and AOF dir) and waits until it answers PING. */
  async start(): Promise<void> {
    if (this.running) return;
    const { options } = this;
    const args = [
      '--port',
      String(this.port),
      '--bind',
      '127.0.0.1',
      '--dir',
      this.dir,
      '--appendonly',
      'yes',
      '--appendfsync',
      'always',
      '--save',
      '',
      '--daemonize',
      'no',
      '--protected-mode',
      'no',
      '--logfile',
      '',
      '--loglevel',
      'warning',
    ];
    if (options.password !== undefined) args.push('--requirepass', options.password);
    for (const user of options.users ?? []) args.push('--user', ...user.split(' '));
    if (this.pki && this.tlsPort !== undefined)
      args.push(
        '--tls-port',
        String(this.tlsPort),
        '--tls-cert-file',
        this.pki.cert,
        '--tls-key-file',
        this.pki.key,
        '--tls-ca-cert-file',
        this.pki.ca,
        '--tls-auth-clients',
        'no',
      );
    if (options.replicaOf) args.push('--replicaof', '127.0.0.1', String(options.replicaOf.port));
    if (options.replicaOf && options.password !== undefined) args.push('--masterauth', options.password);
    const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    child.stdout?.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    this.exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    this.forget = onProcessExit(() => child.kill('SIGKILL'));
    void this.exited.then(() => this.forget());
    await eventually(
      async () => {
        if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode}: ${this.output}`);
        if (!(await listening(this.port))) return undefined;
        // Answering PING (not LOADING): the AOF is loaded.
        const admin = await this.admin();
        try {
          return (await admin.command(['PING'])) === 'PONG' ? true : undefined;
        } finally {
          await admin.close();
        }
      },
      'redis-server to answer',
      30_000,
    );
  }

  /** SIGKILLs the server (a crash: only what the AOF holds survives). */
  async kill(): Promise<void> {
    if (!this.running) return;
    this.child?.kill('SIGKILL');
    await this.exited;
  }

  /** Stops the server (SIGTERM) and waits for it. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.child?.kill('SIGTERM');
    await this.exited;
  }

  /** A connection with full rights (the default user, with its password when set). */
  admin(db = 0): Promise<RedisConnection> {
    return RedisConnection.connect({
      host: '127.0.0.1',
      port: this.port,
      password: this.options.password,
      db,
      connectTimeoutMs: 5000,
      requestTimeoutMs: 30_000,
    });
  }

  /** Runs one command as the default user. */
  async command(args: readonly (string | Buffer | number)[], db = 0): Promise<RespValue> {
    const admin = await this.admin(db);
    try {
      return await admin.command(args);
    } finally {
      await admin.close();
    }
  }
}

/** The server of a test file's tests: started by the first call, stopped and deleted after the file. */
export function redisForFile(options: RedisServerOptions = {}): () => Promise<RedisServer> {
  let server: Promise<RedisServer> | undefined;
  return () =>
    (server ??= RedisServer.start(options).catch((error: unknown) => {
      server = undefined;
      throw error;
    }));
}

/** One stream entry: its Redis id and its fields as text. */
export interface StreamEntry {
  readonly entryId: string;
  readonly fields: Readonly<Record<string, string>>;
}

function text(value: RespValue | undefined): string {
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  if (typeof value === 'string') return value;
  throw new Error(`expected a string in an XRANGE reply, not ${String(value)}`);
}

/** Every entry of stream `key`, in order (XRANGE in pages of 1000). */
export async function readStream(connection: RedisConnection, key: string): Promise<StreamEntry[]> {
  const entries: StreamEntry[] = [];
  let from = '-';
  for (;;) {
    const page = (await connection.command(['XRANGE', key, from, '+', 'COUNT', 1000])) as RespValue[];
    for (const item of page) {
      const [id, pairs] = item as [RespValue, RespValue[]];
      const fields: Record<string, string> = {};
      for (let i = 0; i + 1 < pairs.length; i += 2) fields[text(pairs[i])] = text(pairs[i + 1]);
      entries.push({ entryId: text(id), fields });
    }
    if (page.length < 1000) return entries;
    from = `(${entries.at(-1)?.entryId ?? '0-0'}`;
  }
}

/** The stream keys matching a glob (KEYS: test databases are small), sorted. */
export async function streamKeys(connection: RedisConnection, pattern: string): Promise<string[]> {
  const keys = ((await connection.command(['KEYS', pattern])) as RespValue[]).map((k) => text(k));
  const streams: string[] = [];
  for (const key of keys) if ((await connection.command(['TYPE', key])) === 'stream') streams.push(key);
  return streams.sort();
}
