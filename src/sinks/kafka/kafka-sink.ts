/**
 * The Kafka sink (docs/kafka.md). Each event becomes one record: key = the event's key JSON, value =
 * its value JSON, headers = the event id, its LSN and the line's own headers; a tombstone (null value)
 * follows each delete when `tombstones` is on. Records of one key go to one partition (murmur2 of
 * the key, as Kafka's Java producer partitions), so a row's changes stay in order.
 *
 * Delivery modes:
 * - exactly-once: a transactional producer whose id is derived from the slot. `write` sends the
 *   batch's records inside the open Kafka transaction (durable on every in-sync replica, invisible to
 *   read_committed readers); the checkpoint (`checkpoints.store`) goes to the offsets topic in the
 *   same transaction and commits it. A crash before the commit leaves nothing visible; the next
 *   start's InitProducerId aborts the open transaction and fences the old producer.
 * - at-least-once: an idempotent producer; `write` resolves once every record is acknowledged by
 *   all in-sync replicas, the checkpoint follows as a plain record. After a crash the records since
 *   the last checkpoint are sent again, with the same ids.
 *
 * All operations run one at a time in call order. After any failure the sink refuses further
 * writes; the supervisor restarts the capture with a new sink from the stored checkpoint.
 */
import { Admin, Producer, murmur2, type MessageToProduce } from '@platformatic/kafka';
import { CdcError } from '../../core/errors.ts';
import type { Logger } from '../../core/log.ts';
import { EventFlag, type EventBatch, type TopicRegistry } from '../batch.ts';
import type { Sink, SinkCheckpoints, SinkPosition } from '../contract.ts';
import { readLatestCheckpoint } from './checkpoint-reader.ts';
import { connectionOptions, kafkaError, type KafkaConnection } from './client.ts';
import type { KafkaOptions } from './options.ts';
import { kafkaTopicName, recordParts, recordSize } from './records.ts';
import { ensureTopics, offsetsTopicSpec, topicSpec } from './topics.ts';

/** Which capture the sink serves: it names the transactional id, the offsets topic and the checkpoint key. */
export interface KafkaCapture {
  readonly slot: string;
  readonly database: string;
  readonly topicPrefix: string;
}

type Message = MessageToProduce<Buffer, Buffer, Buffer, Buffer>;
type KafkaProducer = Producer<Buffer, Buffer, Buffer, Buffer>;
/** The client does not export its Transaction class. */
type Transaction = Awaited<ReturnType<KafkaProducer['beginTransaction']>>;

const NULL_VALUE = Buffer.from('null');
/** The value of an event line is JSON `null` (a flat tombstone delete, docs/notes-shaping.md). */
function isNullValue(value: Buffer): boolean {
  return value.length === NULL_VALUE.length && value.equals(NULL_VALUE);
}

/** Java's default partitioner for keyed records (murmur2, positive); round robin for null keys. */
function partitionerWith(): (message: Message, key: Buffer | undefined) => number {
  let next = 0;
  return (_message, key) => (key === undefined ? next++ & 0x7fffffff : murmur2(key) & 0x7fffffff);
}

/** The client's field holding the API versions the broker announced (`[kApis]` in its Base class). */
const API_VERSIONS_FIELD = 'plt.kafka.base.apis';

interface AnnouncedApi {
  readonly name: string;
  readonly maxVersion: number;
}

/**
 * Makes `producer` send AddPartitionsToTxn at version 3 at most. Versions 4 and later are for
 * brokers (KIP-890: they need ClusterAction), but the client picks the highest version the broker
 * announces, so a transactional producer whose user has ordinary ACLs failed with
 * CLUSTER_AUTHORIZATION_FAILED at its first write. Kafka's Java producer sends version 3 at most.
 * The client has no option for this: the broker's announced versions are clamped as the client
 * stores them (the client version is pinned in package.json; kafka-cluster.test.ts writes exactly
 * once as a user with ordinary ACLs, so a client that changes this field fails a test).
 */
function asClientOfTransactions<T extends object>(producer: T): T {
  const field = Object.getOwnPropertySymbols(producer).find((symbol) => symbol.description === API_VERSIONS_FIELD);
  if (field === undefined) return producer;
  let announced: unknown = (producer as Record<symbol, unknown>)[field];
  Object.defineProperty(producer, field, {
    configurable: true,
    enumerable: true,
    get: () => announced,
    set: (apis: unknown) => {
      announced = Array.isArray(apis)
        ? apis.map((api: AnnouncedApi) =>
            api.name === 'AddPartitionsToTxn' && api.maxVersion > 3 ? { ...api, maxVersion: 3 } : api,
          )
        : apis;
    },
  });
  return producer;
}

/**
 * Delay before the client's retry `attempt` (1-based) of `operation`. The first AddPartitionsToTxn of
 * a transaction usually meets CONCURRENT_TRANSACTIONS while the broker still writes the previous
 * commit's markers (a few ms): retried after 5, 15, 45, 135, 405 ms, then 1 s, rather than after 30,
 * 90, ... ms, which cost ~30 ms per exactly-once batch. Everything else: 30, 90, 270, 810 ms, then 1 s.
 */
function retryDelayMs(operation: string, attempt: number): number {
  if (operation === 'addPartitionsToTransaction') return Math.min(5 * 3 ** (attempt - 1), 1000);
  return Math.min(10 * 3 ** attempt, 1000);
}

export class KafkaSink implements Sink {
  readonly kind = 'kafka';
  readonly checkpoints: SinkCheckpoints;
  readonly transactionalId: string;
  readonly offsetsTopic: string;
  private readonly connection: KafkaConnection;
  private readonly checkpointKey: Buffer;
  private producer: KafkaProducer | undefined;
  private transaction: Transaction | undefined;
  private tail: Promise<unknown> = Promise.resolve();
  private broken: CdcError | undefined;
  private closed = false;
  private opened = false;
  /** Kafka topic per topic number of the batches (sanitized names). */
  private readonly topicsOf = new WeakMap<TopicRegistry, string[]>();
  private readonly ensured = new Set<string>();
  private readonly keylessWarned = new Set<string>();
  private readonly limit: number;

  constructor(
    private readonly options: KafkaOptions,
    capture: KafkaCapture,
    private readonly log?: Logger,
  ) {
    this.connection = connectionOptions(options);
    this.transactionalId = options.transactionalId ?? `pgcdc-${capture.database}-${capture.slot}`;
    this.offsetsTopic = kafkaTopicName(options.offsetsTopic ?? `${capture.topicPrefix}.pgcdc-offsets`);
    this.checkpointKey = Buffer.from(JSON.stringify({ database: capture.database, slot: capture.slot }));
    this.limit = Math.min(options.batchBytes, options.messageMaxBytes);
    this.checkpoints = {
      where: `Kafka topic ${this.offsetsTopic}`,
      load: () => this.loadCheckpoint(),
      store: (text) => this.serial(() => this.storeCheckpoint(text)),
    };
  }

  get exactlyOnce(): boolean {
    return this.options.delivery === 'exactly-once';
  }

  /** Checks (or creates) the topics the captured tables write to; called before the slot is used. */
  async prepareTopics(topics: readonly string[]): Promise<void> {
    const names = [...new Set([...topics.map(kafkaTopicName), this.offsetsTopic])];
    // One listing of the cluster's topics for all of them; the offsets topic gets its own settings.
    await this.withAdmin('checking the Kafka topics', (admin) =>
      ensureTopics(admin, this.options, names, (topic) =>
        topic === this.offsetsTopic ? offsetsTopicSpec(this.options, topic) : topicSpec(this.options, topic),
      ),
    );
    for (const name of names) this.ensured.add(name);
  }

  async open(_resume: SinkPosition | undefined): Promise<void> {
    if (this.opened) throw new CdcError('INTERNAL', 'the Kafka sink was opened twice');
    this.opened = true;
    if (!this.ensured.has(this.offsetsTopic)) await this.prepareTopics([]);
    this.producer = this.newProducer();
    if (this.exactlyOnce) {
      try {
        // InitProducerId: aborts what a previous pgcdc on this slot left open and fences it.
        this.transaction = await this.producer.beginTransaction();
      } catch (error) {
        const failure = this.fail(
          kafkaError(error, 'starting a Kafka transaction', this.options, this.transactionalId),
        );
        // Nothing else closes a sink whose open failed: its connections would keep the process alive.
        await this.close();
        throw failure;
      }
    }
  }

  private newProducer(): KafkaProducer {
    return asClientOfTransactions(
      new Producer<Buffer, Buffer, Buffer, Buffer>({
        ...this.connection,
        // The client uses `timeout` as the transaction timeout too.
        timeout: this.exactlyOnce ? this.options.transactionTimeoutMs : this.options.requestTimeoutMs,
        // Quick first retries (CONCURRENT_TRANSACTIONS right after a commit is normal), then up to a
        // second apart: about 10 s in all, so a coordinator still loading (a fresh or restarted cluster)
        // or a leader moving is ridden through before the supervisor restarts the capture.
        retries: 14,
        retryDelay: (_client, operation, attempt) => retryDelayMs(operation, attempt),
        idempotent: true,
        acks: -1,
        compression: this.options.compression,
        partitioner: partitionerWith(),
        // A new producer must ask for a fresh id with -1/-1; the client would send 0/0 (an existing
        // producer's id) and be refused as fenced by any transactional id that has been used before.
        producerId: -1n,
        producerEpoch: -1,
        ...(this.exactlyOnce ? { transactionalId: this.transactionalId } : {}),
      }),
    );
  }

  /**
   * Exactly-once: takes the transactional id over (InitProducerId) with a short-lived producer, so
   * that a previous pgcdc on this slot (a zombie, or one still running) can commit nothing more and
   * its open transaction is aborted. The checkpoint read after this is final. Without it a second
   * pgcdc would wait for the slot forever while the first kept it (the slot check comes before
   * `open`), and a checkpoint read before the takeover could be overtaken by the first one's next
   * commit. The producer is closed again: a start-up that fails before `open` leaks nothing.
   */
  private async takeOver(): Promise<void> {
    const fencer = this.newProducer();
    try {
      await fencer.beginTransaction();
    } catch (error) {
      throw kafkaError(error, 'taking over the Kafka transactional id', this.options, this.transactionalId);
    } finally {
      await fencer.close().catch(() => undefined);
    }
  }

  write(batch: EventBatch): Promise<SinkPosition> {
    if (this.closed) return Promise.reject(new CdcError('INTERNAL', 'write after close on the Kafka sink'));
    return this.serial(async () => {
      await this.writeNow(batch);
      return {};
    });
  }

  close(): Promise<void> {
    if (this.closed) return this.tail.then(() => undefined);
    this.closed = true;
    // Not `serial`: a failed sink must still release its connections.
    const closing = this.tail.then(async () => {
      const producer = this.producer;
      this.producer = undefined;
      // An open transaction is left to Kafka: the next pgcdc's InitProducerId aborts it (or the
      // transaction timeout does). Nothing in it was acknowledged.
      this.transaction = undefined;
      if (producer) await producer.close().catch(() => undefined);
    });
    this.tail = closing;
    return closing;
  }

  /** Runs `step` after every earlier operation; a failed sink refuses every later one. */
  private serial<T>(step: () => Promise<T>): Promise<T> {
    const run = this.tail.then(() => {
      if (this.broken) throw this.broken;
      return step();
    });
    this.tail = run.catch(() => undefined);
    return run;
  }

  private fail(error: CdcError): CdcError {
    this.broken ??= error;
    return error;
  }

  private async writeNow(batch: EventBatch): Promise<void> {
    if (batch.count === 0) return;
    const topicOf = await this.ensureBatchTopics(batch);
    const data = batch.data;
    let messages: Message[] = [];
    let bytes = 0;
    for (let i = 0; i < batch.count; i++) {
      const topic = topicOf[batch.topicNumber(i)] as string;
      let parts;
      try {
        parts = recordParts(data, batch.start(i), batch.end(i) - 1);
      } catch (error) {
        throw this.fail(
          new CdcError('INTERNAL', `event ${batch.id(i)} is not a well-formed event line`, { cause: error }),
        );
      }
      const size = recordSize(parts);
      if (size > this.options.messageMaxBytes) throw this.fail(this.tooLarge(batch, i, size, parts.key));
      if (bytes + size > this.limit && messages.length > 0) {
        await this.send(messages);
        messages = [];
        bytes = 0;
      }
      if (parts.key === undefined) this.warnKeyless(topic);
      // A flat delete with `envelope.deletes: tombstone` is itself the tombstone (its value is null).
      const tombstone = isNullValue(parts.value);
      if (tombstone) messages.push({ topic, key: parts.key, headers: parts.headers });
      else messages.push({ topic, key: parts.key, value: parts.value, headers: parts.headers });
      bytes += size;
      if (!tombstone && parts.key !== undefined && this.options.tombstones && batch.flags(i) & EventFlag.DELETE) {
        messages.push({ topic, key: parts.key });
        bytes += 24 + parts.key.length;
      }
    }
    if (messages.length > 0) await this.send(messages);
  }

  private async send(messages: Message[]): Promise<void> {
    const producer = this.producer;
    if (!producer) throw this.fail(new CdcError('INTERNAL', 'the Kafka sink was used before open'));
    try {
      if (this.exactlyOnce) {
        this.transaction ??= await producer.beginTransaction();
        await this.transaction.send({ messages });
      } else await producer.send({ messages });
    } catch (error) {
      throw this.fail(kafkaError(error, 'writing to Kafka', this.options, this.transactionalId));
    }
  }

  private async storeCheckpoint(text: string): Promise<void> {
    const message: Message = { topic: this.offsetsTopic, key: this.checkpointKey, value: Buffer.from(text) };
    if (!this.producer) throw this.fail(new CdcError('INTERNAL', 'the Kafka sink stored a checkpoint before open'));
    await this.send([message]);
    if (!this.exactlyOnce) return;
    const transaction = this.transaction;
    this.transaction = undefined;
    try {
      await transaction?.commit();
    } catch (error) {
      throw this.fail(kafkaError(error, 'committing the Kafka transaction', this.options, this.transactionalId));
    }
  }

  private async loadCheckpoint(): Promise<string | undefined> {
    if (this.exactlyOnce) await this.takeOver();
    try {
      return await readLatestCheckpoint(this.connection, this.offsetsTopic, this.checkpointKey);
    } catch (error) {
      throw kafkaError(error, `reading the checkpoint from Kafka topic ${this.offsetsTopic}`, this.options);
    }
  }

  /** The Kafka topic per topic number of `batch`'s registry, every one of them checked (or created). */
  private async ensureBatchTopics(batch: EventBatch): Promise<readonly (string | undefined)[]> {
    let topicOf = this.topicsOf.get(batch.topicRegistry);
    if (topicOf === undefined) this.topicsOf.set(batch.topicRegistry, (topicOf = []));
    const missing = new Set<string>();
    for (let i = 0; i < batch.count; i++) {
      const n = batch.topicNumber(i);
      if (topicOf[n] !== undefined) continue;
      const name = kafkaTopicName(batch.topicName(n));
      topicOf[n] = name;
      if (!this.ensured.has(name)) missing.add(name);
    }
    if (missing.size === 0) return topicOf;
    try {
      await this.withAdmin('checking the Kafka topics', (admin) =>
        ensureTopics(admin, this.options, [...missing], (topic) => topicSpec(this.options, topic)),
      );
    } catch (error) {
      throw this.fail(kafkaError(error, 'checking the Kafka topics', this.options));
    }
    for (const name of missing) this.ensured.add(name);
    return topicOf;
  }

  private async withAdmin<T>(doing: string, step: (admin: Admin) => Promise<T>): Promise<T> {
    const admin = new Admin({ ...this.connection, retries: 2, retryDelay: 250 });
    try {
      return await step(admin);
    } catch (error) {
      throw kafkaError(error, doing, this.options);
    } finally {
      await admin.close().catch(() => undefined);
    }
  }

  private tooLarge(batch: EventBatch, i: number, size: number, key: Buffer | undefined): CdcError {
    const keyText = key === undefined ? 'null' : key.toString('utf8', 0, Math.min(key.length, 200));
    return new CdcError(
      'SINK_FAILED',
      `event ${batch.id(i)} of ${batch.topic(i)} (key ${keyText}) is ${size} bytes, over sink.messageMaxBytes ` +
        `(${this.options.messageMaxBytes})`,
      {
        hint:
          "raise sink.messageMaxBytes together with the topic's max.message.bytes (and the broker's " +
          'message.max.bytes); nothing after the previous checkpoint was acknowledged',
      },
    );
  }

  private warnKeyless(topic: string): void {
    if (this.keylessWarned.has(topic)) return;
    this.keylessWarned.add(topic);
    this.log?.warn(
      { topic },
      'events without a key (a table without primary key or replica identity index, or messages) go to the ' +
        "topic's partitions in turn: their order is kept only within each partition",
    );
  }
}
