/**
 * A real nats-server with JetStream for tests (Debian's nats-server; .ci/run installs it): started on
 * a free port with its store in a temp folder (`-js -sd <dir>`), optionally with users, a token or an
 * NKey user, and optionally TLS only (the test PKI of pki.ts; with `verify` the server also requires a
 * client certificate signed by the test CA), stopped after the test file. `kill()` and `restart()`
 * keep the port and the store, for outages. Events are read back with a JetStream ordered consumer,
 * independently of any pgcdc sink.
 *
 * Callers skip with `requireOrSkip(natsAvailable(), 'nats-server')`.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { connect, nkeyAuthenticator, nkeys, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, type JsMsg } from '@nats-io/jetstream';
import { freePort } from '../../src/embedded/cluster.ts';
import type { DeliveredEvent } from './cli.ts';
import { listening } from './daemon.ts';
import { onPath } from './maven-fetch.ts';
import { makeTestPki, type TestPki } from './pki.ts';
import { assertTeardownPending, eventually, onTeardown } from './pg.ts';
import { onProcessExit } from './tmp.ts';

export function natsAvailable(): boolean {
  return onPath('nats-server');
}

export interface NatsServerOptions {
  /** Users with passwords; the first is the one `connect()` logs in as. */
  readonly users?: readonly { readonly user: string; readonly password: string }[];
  /** A token instead of users. */
  readonly token?: string;
  /** One NKey user instead (a key pair made at start: the server knows its public key, `nkeySeed` is its seed). */
  readonly nkey?: boolean;
  /**
   * TLS only (clients that do not upgrade are refused), with a certificate for 127.0.0.1 signed by the
   * test CA; `verify: true` also requires a client certificate signed by it (`NatsServer.tls.clientCert`).
   */
  readonly tls?: { readonly verify?: boolean };
}

/** The PEM files of a server started with `tls`. */
export interface NatsPki extends TestPki {
  /** A client certificate and key signed by the test CA (for `verify: true`). */
  readonly clientCert: string;
  readonly clientKey: string;
}

/** A client certificate for CN=pgcdc signed by the test CA in `dir` (makeTestPki leaves ca.key there). */
function makeClientCert(dir: string, pki: TestPki): NatsPki {
  const ssl = (...args: string[]): void => {
    execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  };
  ssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=pgcdc', '-keyout', 'client.key', '-out', 'client.csr');
  writeFileSync(path.join(dir, 'client.ext'), 'extendedKeyUsage = clientAuth\nbasicConstraints = CA:FALSE\n');
  ssl(
    'x509',
    '-req',
    '-in',
    'client.csr',
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    'client.ext',
    '-out',
    'client.crt',
  );
  return { ...pki, clientCert: path.join(dir, 'client.crt'), clientKey: path.join(dir, 'client.key') };
}

/** One message of a stream, as an ordered consumer read it. */
export interface StoredMessage {
  readonly seq: number;
  readonly subject: string;
  readonly payload: string;
  readonly headers: Readonly<Record<string, string>>;
}

export class NatsServer {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private forget: () => void = () => undefined;
  private log = '';

  private constructor(
    readonly port: number,
    readonly dir: string,
    private readonly config: string,
    readonly options: NatsServerOptions,
    /** With `tls`: the PKI's files. */
    readonly tls: NatsPki | undefined,
    /** With `nkey`: the NKey user's seed (`SU...`), the secret pgcdc reads from a file. */
    readonly nkeySeed: string | undefined,
  ) {}

  /** `nats://127.0.0.1:<port>`, or `tls://...` for a server started with `tls`. */
  get url(): string {
    return `${this.tls === undefined ? 'nats' : 'tls'}://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  output(): string {
    return this.log;
  }

  static async start(options: NatsServerOptions = {}): Promise<NatsServer> {
    assertTeardownPending();
    const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-nats-'));
    const port = await freePort();
    const lines = [`listen: "127.0.0.1:${port}"`, `jetstream { store_dir: "${path.join(dir, 'store')}" }`];
    if (options.token !== undefined) lines.push(`authorization { token: "${options.token}" }`);
    if (options.users !== undefined)
      lines.push(
        `authorization { users = [ ${options.users
          .map((u) => `{user: "${u.user}", password: "${u.password}"}`)
          .join(', ')} ] }`,
      );
    let nkeySeed: string | undefined;
    if (options.nkey === true) {
      const user = nkeys.createUser();
      nkeySeed = new TextDecoder().decode(user.getSeed());
      lines.push(`authorization { users = [ {nkey: "${user.getPublicKey()}"} ] }`);
    }
    const pki = options.tls === undefined ? undefined : makeClientCert(dir, makeTestPki(dir));
    if (pki !== undefined)
      lines.push(
        `tls { cert_file: "${pki.cert}", key_file: "${pki.key}", ca_file: "${pki.ca}", ` +
          `verify: ${options.tls?.verify === true}, timeout: 5 }`,
      );
    const config = path.join(dir, 'nats.conf');
    await writeFile(config, `${lines.join('\n')}\n`);
    const server = new NatsServer(port, dir, config, options, pki, nkeySeed);
    onTeardown(async () => {
      await server.kill();
      await rm(dir, { recursive: true, force: true });
    });
    await server.restart();
    return server;
  }

  /** Starts the server again (same port, same store); resolves once JetStream answers. */
  async restart(): Promise<void> {
    if (this.child !== undefined) throw new Error('nats-server is running');
    const child = spawn('nats-server', ['-c', this.config], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    child.stdout.on('data', (c: Buffer) => (this.log += c.toString()));
    child.stderr.on('data', (c: Buffer) => (this.log += c.toString()));
    this.exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    this.forget = onProcessExit(() => child.kill('SIGKILL'));
    await eventually(
      async () => {
        if (child.exitCode !== null) throw new Error(`nats-server exited with ${child.exitCode}: ${this.log}`);
        return (await listening(this.port)) ? true : undefined;
      },
      'nats-server to listen',
      30_000,
    );
    // JetStream recovers its streams after the port opens: wait until its API answers.
    await eventually(
      async () => {
        const nc = await this.connect().catch(() => undefined);
        if (nc === undefined) return undefined;
        try {
          const jsm = await jetstreamManager(nc);
          await jsm.getAccountInfo();
          return true;
        } catch {
          return undefined;
        } finally {
          await nc.close();
        }
      },
      'JetStream to answer',
      30_000,
    );
  }

  /** SIGKILLs the server (a crash); resolves once it is gone. */
  async kill(): Promise<void> {
    const child = this.child;
    if (child === undefined) return;
    this.child = undefined;
    child.kill('SIGKILL');
    await this.exited;
    this.forget();
  }

  /** A client connection as the first user (or with the token, or the NKey), over TLS with the client certificate. */
  connect(): Promise<NatsConnection> {
    const user = this.options.users?.[0];
    const tls = this.tls;
    return connect({
      servers: this.url,
      reconnect: false,
      ...(user === undefined ? {} : { user: user.user, pass: user.password }),
      ...(this.options.token === undefined ? {} : { token: this.options.token }),
      ...(this.nkeySeed === undefined
        ? {}
        : { authenticator: nkeyAuthenticator(new TextEncoder().encode(this.nkeySeed)) }),
      ...(tls === undefined
        ? {}
        : {
            tls: {
              ca: readFileSync(tls.ca, 'utf8'),
              cert: readFileSync(tls.clientCert, 'utf8'),
              key: readFileSync(tls.clientKey, 'utf8'),
            },
          }),
    });
  }

  /** Runs `step` with a connection, closed afterwards. */
  async with<T>(step: (nc: NatsConnection) => Promise<T>): Promise<T> {
    const nc = await this.connect();
    try {
      return await step(nc);
    } finally {
      await nc.close();
    }
  }

  /** Every message of `stream`, in stream order (an ordered consumer); [] for a missing stream. */
  readStream(stream: string): Promise<StoredMessage[]> {
    return this.with(async (nc) => {
      const jsm = await jetstreamManager(nc);
      const info = await jsm.streams.info(stream).catch((error: unknown) => {
        if (error instanceof Error && error.name === 'StreamNotFoundError') return undefined;
        throw error;
      });
      if (info === undefined || info.state.messages === 0) return [];
      const last = info.state.last_seq;
      const consumer = await jetstream(nc).consumers.get(stream);
      const messages = await consumer.consume();
      const out: StoredMessage[] = [];
      for await (const m of messages) {
        out.push(stored(m));
        if (m.seq >= last) break;
      }
      await messages.close();
      return out;
    });
  }

  /** Deletes `stream` if it exists. */
  async deleteStream(stream: string): Promise<void> {
    await this.with(async (nc) => {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.delete(stream).catch(() => false);
    });
  }
}

function stored(m: JsMsg): StoredMessage {
  const headers: Record<string, string> = {};
  if (m.headers !== undefined) for (const [name, values] of m.headers) headers[name] = values[0] ?? '';
  return { seq: m.seq, subject: m.subject, payload: m.string(), headers };
}

/** One server for the test file, started on first use. */
export function natsForFile(options: NatsServerOptions = {}): () => Promise<NatsServer> {
  let server: Promise<NatsServer> | undefined;
  return () =>
    (server ??= NatsServer.start(options).catch((error: unknown) => {
      server = undefined;
      throw error;
    }));
}

/** The pgcdc events among stored messages, parsed; throws if a message's Nats-Msg-Id is not its event id. */
export function natsEvents(messages: readonly StoredMessage[]): DeliveredEvent[] {
  return messages.map((m) => {
    const event = JSON.parse(m.payload) as DeliveredEvent;
    if (m.headers['Nats-Msg-Id'] !== event.id)
      throw new Error(`message ${m.seq}: Nats-Msg-Id ${m.headers['Nats-Msg-Id']} is not the event id ${event.id}`);
    return event;
  });
}
