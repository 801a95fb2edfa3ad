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

/** Runs a step on a NATS connection: the sink's own once it is open, a short-lived one before. */
export type WithConnection = <T>(step: (nc: NatsConnection) => Promise<T>) => Promise<T>;

export class KvCheckpoints implements SinkCheckpoints {
  readonly where: string;
  /** The bucket as bound on a connection, reused while that connection is the one in use. */
  private bound: { readonly nc: NatsConnection; readonly kv: KV } | undefined;
  private storing: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly using: WithConnection,
    private readonly options: NatsOptions,
    private readonly key: string,
    private readonly log?: Logger,
  ) {
    this.where = `NATS KV bucket ${options.offsetsBucket} (key ${key})`;
  }

  /** Opens the bucket on `nc`, creating it when `create` and it is missing; undefined when missing. */
  private async open(nc: NatsConnection, create: boolean): Promise<KV | undefined> {
    if (this.bound?.nc === nc) return this.bound.kv;
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
    let kv: KV;
    if (exists) kv = await kvm.open(name);
    else if (!create) return undefined;
    else {
      try {
        kv = await kvm.create(name, {
          history: 1,
          storage: this.options.stream.storage === 'memory' ? 'memory' : 'file',
          replicas: this.options.stream.replicas,
        });
      } catch (error) {
        throw natsError(error, `creating ${this.where}`, this.options);
      }
      this.log?.info({ bucket: name }, 'created the NATS KV bucket for checkpoints');
    }
    this.bound = { nc, kv };
    return kv;
  }

  /** Creates the bucket when missing (at start, before anything is stored). */
  async prepare(): Promise<void> {
    await this.using((nc) => this.open(nc, true));
  }

  load(): Promise<string | undefined> {
    return this.using(async (nc) => {
      const kv = await this.open(nc, false);
      if (kv === undefined) return undefined;
      try {
        const entry = await kv.get(this.key);
        if (entry === null || entry.operation !== 'PUT') return undefined;
        return entry.string();
      } catch (error) {
        throw natsError(error, `reading the checkpoint from ${this.where}`, this.options);
      }
    });
  }

  store(text: string): Promise<void> {
    const run = this.storing.then(() =>
      this.using(async (nc) => {
        const kv = await this.open(nc, true);
        try {
          await kv?.put(this.key, text);
        } catch (error) {
          throw natsError(error, `storing the checkpoint in ${this.where}`, this.options);
        }
      }),
    );
    this.storing = run.catch(() => undefined);
    return run;
  }
}
