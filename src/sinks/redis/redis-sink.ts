/**
 * The Redis Streams sink (docs/redis.md). One stream per table (the key template, `{topic}` by
 * default); each event becomes one entry `XADD <key> [MAXLEN ~ n] * id <event id> op <op> event
 * <the event line>`. A batch's commands go to the server as one pipelined write (entries.ts builds
 * them from the batch's bytes), optionally followed by `WAIT <replicas> <timeout>`.
 *
 * Durable means: the server acknowledged every XADD of the batch and of every earlier batch (and,
 * with `wait`, that many replicas hold them). With `appendonly yes` and `appendfsync always` Redis
 * replies only after the AOF is fsynced, so an acknowledged entry survives a crash of the server;
 * with other settings it survives only in memory (say so to users: redis.md).
 *
 * At-least-once: after a restart the events since the last checkpoint are added again, with the same
 * ids; Redis cannot deduplicate them, consumers do (by the `id` field).
 *
 * Before a key is first written its type is checked (TYPE): a key holding anything but a stream stops
 * pgcdc before any command of the batch is sent. After any failure the sink refuses further writes;
 * the supervisor restarts the capture with a new sink (a new connection) from the checkpoint.
 */
import { isIP } from 'node:net';
import { checkServerIdentity, type ConnectionOptions as TlsOptions } from 'node:tls';
import { CdcError } from '../../core/errors.ts';
import { readPem, readSecret } from '../secrets.ts';
import type { Logger } from '../../core/log.ts';
import type { EventBatch, TopicRegistry } from '../batch.ts';
import type { Sink, SinkPosition } from '../contract.ts';
import { RedisConnection, type RedisConnectSettings } from './client.ts';
import { commandHead, EntryEncoder } from './entries.ts';
import { redisError, replyError, type RedisWhere } from './errors.ts';
import { describeRedis, parseRedisUrl, type RedisOptions } from './options.ts';
import { encodeCommand, replyText, RespError } from './resp.ts';

const POSITION: SinkPosition = {};

/** Per topic number of one registry: the stream key and its XADD head. */
interface TopicKeys {
  readonly keys: (string | undefined)[];
  readonly heads: (Buffer | undefined)[];
}

/** The password from sink.passwordFile or sink.passwordEnv, or undefined for none. */
function readPassword(options: RedisOptions): string | undefined {
  if (options.passwordEnv !== undefined) return readSecret({ env: options.passwordEnv }, 'sink.passwordEnv');
  if (options.passwordFile === undefined) return undefined;
  return readSecret({ file: options.passwordFile }, 'sink.passwordFile');
}

/** Connection settings from the options (the password and PEM files are read here, at each start). */
export function connectSettings(options: RedisOptions): RedisConnectSettings {
  const endpoint = parseRedisUrl(options.url);
  if (typeof endpoint === 'string') throw new CdcError('CONFIG_INVALID', `sink.url ${endpoint}`);
  let tls: TlsOptions | undefined;
  if (endpoint.tls) {
    const settings = options.tls;
    tls = { rejectUnauthorized: true };
    if (settings?.ca !== undefined) tls.ca = readPem(settings.ca, 'sink.tls.ca');
    if (settings?.cert !== undefined) tls.cert = readPem(settings.cert, 'sink.tls.cert');
    if (settings?.key !== undefined) tls.key = readPem(settings.key, 'sink.tls.key');
    const name = settings?.serverName ?? endpoint.host;
    // SNI may not be an IP address (RFC 6066); the certificate is checked against `name` either way.
    if (isIP(name) === 0) tls.servername = name;
    tls.checkServerIdentity =
      settings?.verifyHostname === false ? () => undefined : (_host, cert) => checkServerIdentity(name, cert);
  }
  return {
    host: endpoint.host,
    port: endpoint.port,
    tls,
    username: options.username ?? endpoint.username,
    password: readPassword(options),
    db: endpoint.db,
    clientName: options.clientName,
    connectTimeoutMs: options.connectTimeoutMs,
    requestTimeoutMs: options.requestTimeoutMs,
  };
}

export class RedisSink implements Sink {
  readonly kind = 'redis';
  private readonly where: RedisWhere;
  private readonly encoder = new EntryEncoder();
  private readonly waitCommand: Buffer | undefined;
  private connection: RedisConnection | undefined;
  /** Keys whose type was checked: absent or a stream. */
  private readonly checked = new Set<string>();
  private readonly topicKeys = new WeakMap<TopicRegistry, TopicKeys>();
  /** Settles when the previous write's commands are on the socket (or it failed before). */
  private lastSent: Promise<void> = Promise.resolve();
  /** Settles when the previous write settled. */
  private lastDone: Promise<void> = Promise.resolve();
  private broken: CdcError | undefined;
  private opened = false;
  private closed = false;

  constructor(
    private readonly options: RedisOptions,
    private readonly log?: Logger,
  ) {
    const endpoint = parseRedisUrl(options.url);
    if (typeof endpoint === 'string') throw new CdcError('CONFIG_INVALID', `sink.url ${endpoint}`);
    this.where = { server: describeRedis(endpoint), username: options.username ?? endpoint.username };
    this.waitCommand = options.wait && encodeCommand(['WAIT', options.wait.replicas, options.wait.timeoutMs]);
  }

  /** The stream key of `topic`. */
  keyOf(topic: string): string {
    return this.options.key.replaceAll('{topic}', topic);
  }

  /** Checks, with a connection of its own, that the tables' keys are absent or streams. */
  async prepareTopics(topics: readonly string[]): Promise<void> {
    const connection = await this.connect('connecting to Redis');
    try {
      await this.checkKeys(connection, [...new Set(topics.map((topic) => this.keyOf(topic)))]);
    } finally {
      await connection.close();
    }
  }

  async open(_resume: SinkPosition | undefined): Promise<void> {
    if (this.opened) throw new CdcError('INTERNAL', 'the Redis sink was opened twice');
    this.opened = true;
    try {
      this.connection = await this.connect('connecting to Redis');
    } catch (error) {
      throw this.fail(error);
    }
    this.log?.info({ server: this.where.server }, 'connected to Redis');
  }

  write(batch: EventBatch): Promise<SinkPosition> {
    if (this.closed) return Promise.reject(new CdcError('INTERNAL', 'write after close on the Redis sink'));
    const previousSent = this.lastSent;
    const previousDone = this.lastDone;
    let markSent!: () => void;
    this.lastSent = new Promise<void>((resolve) => (markSent = resolve));
    const done = (async (): Promise<SinkPosition> => {
      let replies: Promise<void>;
      try {
        await previousSent;
        this.throwIfBroken();
        replies = this.send(batch, await this.connectionFor(batch));
      } catch (error) {
        const failure = this.fail(error);
        markSent();
        throw failure;
      }
      markSent();
      try {
        await replies;
      } catch (error) {
        throw this.fail(error);
      }
      // Resolve in call order, and only when nothing before failed.
      await previousDone;
      this.throwIfBroken();
      return POSITION;
    })();
    this.lastDone = done.then(
      () => undefined,
      () => undefined,
    );
    return done;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.lastDone;
    const connection = this.connection;
    this.connection = undefined;
    if (connection) await connection.close();
  }

  /** The open connection, once every key of `batch` is checked. */
  private async connectionFor(batch: EventBatch): Promise<RedisConnection> {
    const connection = this.connection;
    if (connection === undefined) throw new CdcError('INTERNAL', 'the Redis sink was used before open');
    const keys = this.keysOf(batch.topicRegistry);
    let unchecked: string[] | undefined;
    for (let i = 0; i < batch.count; i++) {
      const n = batch.topicNumber(i);
      if (keys.heads[n] !== undefined) continue;
      const key = this.keyOf(batch.topicName(n));
      keys.keys[n] = key;
      keys.heads[n] = commandHead(key, this.options.maxLen);
      if (!this.checked.has(key)) (unchecked ??= []).push(key);
    }
    if (unchecked !== undefined) await this.checkKeys(connection, unchecked);
    return connection;
  }

  /** Sends the batch's XADDs (and WAIT) in one write; resolves once every reply is in and none failed. */
  private async send(batch: EventBatch, connection: RedisConnection): Promise<void> {
    if (batch.count === 0) return;
    const keys = this.keysOf(batch.topicRegistry);
    let bytes: Buffer;
    try {
      bytes = this.encoder.encode(batch, (n) => keys.heads[n] as Buffer);
    } catch (error) {
      throw new CdcError('INTERNAL', `a batch with an event line pgcdc cannot read (${(error as Error).message})`, {
        cause: error,
      });
    }
    const wait = this.waitCommand;
    const outcome = await connection
      .pipeline(wait ? [bytes, wait] : bytes, batch.count + (wait ? 1 : 0), wait !== undefined)
      .catch((error: unknown) => {
        throw redisError(error, 'writing to Redis', this.where);
      });
    const failed = outcome.firstError;
    if (failed !== undefined) {
      if (failed.index >= batch.count) throw replyError(failed.error, 'WAIT after a batch', undefined, this.where);
      const key = keys.keys[batch.topicNumber(failed.index)];
      throw replyError(failed.error, `adding event ${batch.id(failed.index)}`, key, this.where);
    }
    if (wait && this.options.wait) {
      const replicas = typeof outcome.last === 'number' ? outcome.last : -1;
      if (replicas < this.options.wait.replicas)
        throw new CdcError(
          'SINK_FAILED',
          `WAIT: ${Math.max(replicas, 0)} of the ${this.options.wait.replicas} replicas sink.wait asks for ` +
            `acknowledged the batch within ${this.options.wait.timeoutMs} ms (Redis at ${this.where.server})`,
          {
            retryable: true,
            hint: 'check the replicas (INFO replication); pgcdc retries, nothing of the batch was acknowledged',
          },
        );
    }
  }

  private keysOf(registry: TopicRegistry): TopicKeys {
    let keys = this.topicKeys.get(registry);
    if (keys === undefined) this.topicKeys.set(registry, (keys = { keys: [], heads: [] }));
    return keys;
  }

  /** TYPE of each key, pipelined: every one must be absent or a stream. */
  private async checkKeys(connection: RedisConnection, keys: readonly string[]): Promise<void> {
    const types = await Promise.allSettled(keys.map((key) => connection.command(['TYPE', key])));
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i] as string;
      const outcome = types[i];
      if (outcome === undefined) continue;
      if (outcome.status === 'rejected') {
        const reason: unknown = outcome.reason;
        throw reason instanceof RespError
          ? replyError(reason, 'checking the type of the key', key, this.where)
          : redisError(reason, 'checking the stream keys', this.where);
      }
      const type = replyText(outcome.value);
      if (type !== 'none' && type !== 'stream')
        throw new CdcError(
          'SINK_FAILED',
          `Redis key ${key} at ${this.where.server} holds a ${type ?? 'value'}, not a stream: pgcdc appends ` +
            `the table's events to a stream there`,
          {
            hint:
              'delete or rename that key, or point sink.key elsewhere; nothing after the last checkpoint was ' +
              'acknowledged',
          },
        );
      this.checked.add(key);
    }
  }

  private async connect(doing: string): Promise<RedisConnection> {
    const settings = connectSettings(this.options);
    try {
      return await RedisConnection.connect(settings);
    } catch (error) {
      throw redisError(error, doing, this.where);
    }
  }

  /** A failed sink refuses every later write with the first failure. */
  private throwIfBroken(): void {
    if (this.broken !== undefined) throw this.broken;
  }

  private fail(error: unknown): CdcError {
    const failure = error instanceof CdcError ? error : redisError(error, 'writing to Redis', this.where);
    this.broken ??= failure;
    return failure;
  }
}
