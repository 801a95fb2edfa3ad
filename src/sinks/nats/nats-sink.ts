/**
 * The NATS JetStream sink (docs/nats.md): at-least-once, deduplicated by JetStream. Each event
 * is one message on its topic's subject (subjects.ts): the payload is the event line as every sink
 * receives it (a view of the batch's bytes, no copy), `Nats-Msg-Id` is the event id, so JetStream
 * drops an event sent again within the stream's duplicate window (after a crash or a restart), and
 * `Pgcdc-Lsn` / `Pgcdc-Topic` carry the LSN the id starts with (a change's commit LSN) and the topic.
 *
 * Publishes are asynchronous, at most `maxInFlight` awaiting their PubAck; `write` resolves when the
 * stream acknowledged every event of the batch and of every earlier one (a `duplicate` PubAck too).
 * Messages of one connection are stored in the order sent, and the sink never reconnects: after a
 * failure (a dropped connection, a timeout, a refusal) it refuses every later write, and the
 * supervisor restarts the capture from the checkpoint with a new connection. With `stream.exclusive`
 * (the default) each publish also expects the stream's last message to be the previous event
 * (`Nats-Expected-Last-Msg-Id`), so if one event is lost, none after it is stored over the gap.
 */
import { headers, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamPublishOptions } from '@nats-io/jetstream';
import { CdcError } from '../../core/errors.ts';
import type { Logger } from '../../core/log.ts';
import type { EventBatch, TopicRegistry } from '../batch.ts';
import type { Sink, SinkPosition } from '../contract.ts';
import { connectNats, natsError } from './client.ts';
import { KvCheckpoints } from './kv-checkpoints.ts';
import type { NatsOptions } from './options.ts';
import { ensureStream, requireCovered, type StreamFacts } from './stream.ts';
import { checkpointKey, defaultStreamName, defaultStreamSubjects, subjectFor } from './subjects.ts';
import { COLON, ID_START, QUOTE } from '../event-line.ts';

/** Which capture the sink serves: it names the default stream, its subjects and the checkpoint key. */
export interface NatsCapture {
  readonly slot: string;
  readonly database: string;
  readonly topicPrefix: string;
}

export const HEADER_LSN = 'Pgcdc-Lsn';
export const HEADER_TOPIC = 'Pgcdc-Topic';

/** One write's publishes: it settles when all are acknowledged, or with the sink's first failure. */
class PendingWrite {
  remaining = 0;
  issued = false;
  readonly done: Promise<void>;
  resolve!: () => void;
  reject!: (error: CdcError) => void;

  constructor() {
    this.done = new Promise<void>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    // Rejections are observed through the write's own promise; this one may be left unawaited.
    this.done.catch(() => undefined);
  }
}

/** Per topic number: the subject and the topic, as the headers need them. */
interface TopicTarget {
  readonly subject: string;
  readonly topic: string;
}

export class NatsSink implements Sink {
  readonly kind = 'nats';
  readonly checkpoints: KvCheckpoints;
  readonly streamName: string;
  private readonly streamSubjects: readonly string[] | undefined;
  /** The sink's connection, from `open` on. */
  private connection: NatsConnection | undefined;
  private js: JetStreamClient | undefined;
  private facts: StreamFacts | undefined;
  private readonly covered = new Set<string>();
  private readonly targets = new WeakMap<TopicRegistry, TopicTarget[]>();
  private issuing: Promise<void> = Promise.resolve();
  private lastWrite: Promise<unknown> = Promise.resolve();
  private readonly pending = new Set<PendingWrite>();
  private inFlight = 0;
  private wakeIssuer: (() => void) | undefined;
  private lastId: string | undefined;
  /** PubAcks with `duplicate: true` (events the stream held already), reported once. */
  private duplicates = 0;
  private duplicatesReported = false;
  private broken: CdcError | undefined;
  private opened = false;
  private closed = false;
  private closing: Promise<void> | undefined;

  constructor(
    private readonly options: NatsOptions,
    capture: NatsCapture,
    private readonly log?: Logger,
  ) {
    this.streamName = options.stream.name ?? defaultStreamName(capture.topicPrefix);
    this.streamSubjects = options.stream.subjects ?? defaultStreamSubjects(options, capture.topicPrefix);
    this.checkpoints = new KvCheckpoints(
      (step) => this.using(step),
      options,
      checkpointKey(capture.database, capture.slot),
      log,
    );
  }

  /**
   * Runs `step` on the sink's connection once it is open; before (checkpoints.load, prepareTopics)
   * on a short-lived one, closed again, so a start-up that stops before `open` leaves nothing open.
   */
  private async using<T>(step: (nc: NatsConnection) => Promise<T>): Promise<T> {
    if (this.connection !== undefined) return step(this.connection);
    if (this.closed) throw new CdcError('INTERNAL', 'the NATS sink is closed');
    const nc = await connectNats(this.options);
    try {
      return await step(nc);
    } finally {
      await nc.close().catch(() => undefined);
    }
  }

  private connectionClosed(error: Error | void): void {
    if (this.closed) return;
    this.fail(
      natsError(error ?? new Error('the server closed the connection'), 'the connection to NATS ended', this.options),
    );
  }

  /**
   * Creates or checks the stream and the checkpoint bucket, and that the stream takes every topic's
   * subject; called before the slot is used, so a stream that cannot take the events stops pgcdc
   * before anything is consumed.
   */
  async prepareTopics(topics: readonly string[]): Promise<void> {
    const facts = await this.stream();
    const subjects = topics.map((topic) => subjectFor(this.options.subject, topic));
    requireCovered(facts, subjects, 'CONFIG_INVALID');
    for (const subject of subjects) this.covered.add(subject);
    await this.checkpoints.prepare();
  }

  private async stream(): Promise<StreamFacts> {
    if (this.facts !== undefined) return this.facts;
    this.facts = await this.using(async (nc) => {
      let jsm;
      try {
        jsm = await jetstreamManager(nc, { timeout: this.options.connectTimeoutMs });
      } catch (error) {
        throw natsError(error, 'opening JetStream', this.options);
      }
      return ensureStream(jsm, this.options, { name: this.streamName, subjects: this.streamSubjects }, this.log);
    });
    return this.facts;
  }

  async open(_resume: SinkPosition | undefined): Promise<void> {
    if (this.opened) throw new CdcError('INTERNAL', 'the NATS sink was opened twice');
    this.opened = true;
    try {
      const nc = await connectNats(this.options);
      this.connection = nc;
      void nc.closed().then((error) => this.connectionClosed(error));
      if (this.facts === undefined) await this.prepareTopics([]);
      this.js = jetstream(nc, { timeout: this.options.publishTimeoutMs });
    } catch (error) {
      const failure = natsError(error, 'opening the NATS sink', this.options);
      // Nothing else closes a sink whose open failed: its connection would keep the process alive.
      await this.close();
      throw failure;
    }
  }

  write(batch: EventBatch): Promise<SinkPosition> {
    if (this.closed) return Promise.reject(new CdcError('INTERNAL', 'write after close on the NATS sink'));
    const pending = new PendingWrite();
    this.pending.add(pending);
    this.issuing = this.issuing
      .then(() => this.issue(batch, pending))
      .catch((error: unknown) => {
        this.fail(natsError(error, 'publishing to NATS', this.options));
      });
    const previous = this.lastWrite;
    const result = (async (): Promise<SinkPosition> => {
      await previous;
      await pending.done;
      return {};
    })();
    this.lastWrite = result;
    result.catch(() => undefined);
    return result;
  }

  close(): Promise<void> {
    if (this.closing !== undefined) return this.closing;
    this.closed = true;
    this.closing = (async () => {
      await this.issuing;
      await this.lastWrite.catch(() => undefined);
      const nc = this.connection;
      this.connection = undefined;
      if (nc !== undefined && !nc.isClosed()) await nc.close().catch(() => undefined);
    })();
    return this.closing;
  }

  /** Records the first failure and rejects every write not yet acknowledged. */
  private fail(error: CdcError): CdcError {
    this.broken ??= error;
    for (const pending of this.pending) pending.reject(this.broken);
    this.pending.clear();
    this.wakeIssuer?.();
    return error;
  }

  /** Publishes `batch`'s events, waiting while `maxInFlight` publishes await their PubAck. */
  private async issue(batch: EventBatch, pending: PendingWrite): Promise<void> {
    if (this.broken) return pending.reject(this.broken);
    const js = this.js;
    if (js === undefined) throw new CdcError('INTERNAL', 'the NATS sink was used before open');
    const targets = await this.targetsOf(batch);
    const data = batch.data;
    const max = this.options.maxInFlight;
    for (let i = 0; i < batch.count; i++) {
      while (this.inFlight >= max && this.broken === undefined)
        await new Promise<void>((wake) => (this.wakeIssuer = wake));
      if (this.broken !== undefined) return;
      const target = targets[batch.topicNumber(i)] as TopicTarget;
      const start = batch.start(i);
      const idStart = start + ID_START;
      const idEnd = data.indexOf(QUOTE, idStart);
      const id = data.toString('latin1', idStart, idEnd);
      const colon = data.indexOf(COLON, idStart);
      const h = headers();
      if (colon !== -1 && colon < idEnd) h.set(HEADER_LSN, data.toString('latin1', idStart, colon));
      h.set(HEADER_TOPIC, target.topic);
      const publish: Partial<JetStreamPublishOptions> = { msgID: id, headers: h };
      if (this.options.stream.exclusive && this.lastId !== undefined) publish.expect = { lastMsgID: this.lastId };
      this.lastId = id;
      pending.remaining++;
      this.inFlight++;
      // The payload is the line without its newline: a view of the batch's slab (it is never reused).
      js.publish(target.subject, data.subarray(start, batch.end(i) - 1), publish).then(
        (ack) => this.acknowledged(pending, ack.duplicate),
        (error: unknown) => {
          this.inFlight--;
          this.fail(natsError(error, `publishing event ${id} to NATS subject ${target.subject}`, this.options));
        },
      );
    }
    pending.issued = true;
    if (pending.remaining === 0) this.settle(pending);
  }

  private acknowledged(pending: PendingWrite, duplicate: boolean): void {
    this.inFlight--;
    if (duplicate) this.duplicates++;
    else if (this.duplicates > 0 && !this.duplicatesReported) {
      // After a restart the events since the checkpoint are sent again; the stream held these already.
      this.duplicatesReported = true;
      this.log?.info(
        { stream: this.streamName, duplicates: this.duplicates },
        'JetStream dropped the events sent again since the checkpoint as duplicates (same Nats-Msg-Id)',
      );
    }
    if (this.inFlight < this.options.maxInFlight && this.wakeIssuer !== undefined) {
      const wake = this.wakeIssuer;
      this.wakeIssuer = undefined;
      wake();
    }
    pending.remaining--;
    if (pending.remaining === 0 && pending.issued) this.settle(pending);
  }

  private settle(pending: PendingWrite): void {
    if (!this.pending.delete(pending)) return;
    pending.resolve();
  }

  /** The subject per topic number of `batch`'s registry; a subject seen first is checked against the stream. */
  private async targetsOf(batch: EventBatch): Promise<readonly (TopicTarget | undefined)[]> {
    let targets = this.targets.get(batch.topicRegistry);
    if (targets === undefined) this.targets.set(batch.topicRegistry, (targets = []));
    const fresh: string[] = [];
    for (let i = 0; i < batch.count; i++) {
      const n = batch.topicNumber(i);
      if (targets[n] !== undefined) continue;
      const topic = batch.topicName(n);
      const subject = subjectFor(this.options.subject, topic);
      targets[n] = { subject, topic };
      if (!this.covered.has(subject)) fresh.push(subject);
    }
    if (fresh.length > 0) {
      // A topic not named at start (a table added later, a transaction or message topic): the
      // stream must take it before anything of this batch is published.
      try {
        try {
          requireCovered(await this.stream(), fresh, 'SINK_FAILED');
        } catch {
          // The stream may have been changed since it was read: read it again before refusing.
          this.facts = undefined;
          requireCovered(await this.stream(), fresh, 'SINK_FAILED');
        }
      } catch (error) {
        // Checked again on the next sink's first write (the stream may have been fixed meanwhile).
        for (const subject of fresh) this.covered.delete(subject);
        this.targets.delete(batch.topicRegistry);
        throw error;
      }
      for (const subject of fresh) this.covered.add(subject);
    }
    return targets;
  }
}
