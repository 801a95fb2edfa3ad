/**
 * Checkpoints in a NATS KV bucket (`--offsets nats`, contract.ts SinkCheckpoints): one key per
 * capture (subjects.ts checkpointKey), its latest value the checkpoint. The NATS sink is
 * at-least-once, so the engine stores a checkpoint only after every write it covers resolved, that is
 * after the stream acknowledged each of their events. A put resolves when the bucket's stream
 * acknowledged it (stored, on every replica the bucket has), so another process reads it with `load`.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import type { Logger } from '../../core/log.ts';
import type { SinkCheckpoints } from '../contract.ts';
import { natsError } from './client.ts';
import type { NatsOptions } from './options.ts';

function isMissingBucket(error: unknown): boolean {
  return error instanceof Error && (error.name === 'StreamNotFoundError' || /stream not found/i.test(error.message));
}

export class KvCheckpoints implements SinkCheckpoints {
  readonly where: string;
  private bucket: Promise<KV | undefined> | undefined;
  private storing: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly connection: () => Promise<NatsConnection>,
    private readonly options: NatsOptions,
    private readonly key: string,
    private readonly log?: Logger,
  ) {
    this.where = `NATS KV bucket ${options.offsetsBucket} (key ${key})`;
  }

  /** Opens the bucket, creating it when `create` and it is missing; undefined when missing. */
  private async open(create: boolean): Promise<KV | undefined> {
    const nc = await this.connection();
    const name = this.options.offsetsBucket;
    const timeout = this.options.connectTimeoutMs;
    // Kvm.open binds without asking the server: whether the bucket exists is its stream's info.
    let exists: boolean;
    try {
      const jsm = await jetstreamManager(nc, { timeout });
      exists = await jsm.streams.info(`KV_${name}`).then(
        () => true,
        (error: unknown) => {
          if (isMissingBucket(error)) return false;
          throw error;
        },
      );
    } catch (error) {
      throw natsError(error, `opening ${this.where}`, this.options);
    }
    const kvm = new Kvm(jetstream(nc, { timeout }));
    if (exists) return kvm.open(name);
    if (!create) return undefined;
    try {
      const kv = await kvm.create(name, {
        history: 1,
        storage: this.options.stream.storage === 'memory' ? 'memory' : 'file',
        replicas: this.options.stream.replicas,
      });
      this.log?.info({ bucket: name }, 'created the NATS KV bucket for checkpoints');
      return kv;
    } catch (error) {
      throw natsError(error, `creating ${this.where}`, this.options);
    }
  }

  /** The bucket, created when missing (at start, before anything is stored). */
  async prepare(): Promise<void> {
    const existing = await (this.bucket ?? Promise.resolve(undefined));
    if (existing !== undefined) return;
    this.bucket = this.open(true);
    this.bucket.catch(() => (this.bucket = undefined));
    await this.bucket;
  }

  async load(): Promise<string | undefined> {
    const kv = await (this.bucket ?? this.open(false));
    if (kv === undefined) return undefined;
    try {
      const entry = await kv.get(this.key);
      if (entry === null || entry.operation !== 'PUT') return undefined;
      return entry.string();
    } catch (error) {
      throw natsError(error, `reading the checkpoint from ${this.where}`, this.options);
    }
  }

  store(text: string): Promise<void> {
    const run = this.storing.then(async () => {
      this.bucket ??= this.open(true);
      const kv = await this.bucket;
      if (kv === undefined)
        throw natsError(new Error('the bucket is missing'), `storing in ${this.where}`, this.options);
      try {
        await kv.put(this.key, text);
      } catch (error) {
        throw natsError(error, `storing the checkpoint in ${this.where}`, this.options);
      }
    });
    this.storing = run.catch(() => undefined);
    return run;
  }
}
