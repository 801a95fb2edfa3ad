/**
 * An in-memory sink for tests, faithful to the sink contract (src/sinks/contract.ts): exactly-once
 * like the JSONL sink, with failures and stalls a test can inject.
 *
 * What is "durable" lives in a `MemorySinkStore`, which outlives a `MemorySink` the way files outlive
 * a process: a test simulates a restart by opening a new `MemorySink` on the same store with the
 * checkpointed position, and a crash by leaving events past that position in the store (or a torn
 * tail, `store.tear`). `open` cuts the store back to the position, as the JSONL sink cuts its files.
 *
 * Position: `{ events: n }`, the number of durable events (every event ever acknowledged, in order).
 */
import { CdcError } from '../../src/core/errors.ts';
import type { EventBatch, Sink, SinkPosition } from '../../src/sinks/contract.ts';

/** One durable event: its topic, its id and its JSON line (without the newline). */
export interface MemoryEvent {
  readonly topic: string;
  readonly id: string;
  readonly line: string;
}

/** The memory sink's durable state. Share one between sink instances to simulate restarts. */
export class MemorySinkStore {
  /** Every durable event, in the order written. Includes events past the last checkpoint until `open` cuts them. */
  readonly events: MemoryEvent[] = [];
  /** Part of an event (of `topic`) left by a crash in the middle of a write; `open` removes it. */
  tornTail: { readonly topic: string; readonly partial: string } | undefined;
  private readonly waiters: { count: number; resolve: () => void }[] = [];

  /** The ids of every durable event, in order. */
  ids(): string[] {
    return this.events.map((event) => event.id);
  }

  /** The lines of one topic, in order. */
  linesOf(topic: string): string[] {
    return this.events.filter((event) => event.topic === topic).map((event) => event.line);
  }

  /** Simulates a crash in the middle of a write: a partial event of `topic` after the durable ones. */
  tear(topic: string, partial = '{"id":"torn'): void {
    this.tornTail = { topic, partial };
  }

  /** Resolves once at least `count` events are durable (await state, never sleep). */
  waitForEvents(count: number): Promise<void> {
    if (this.events.length >= count) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ count, resolve }));
  }

  /** @internal Appends events and wakes the waiters they satisfy. */
  append(events: readonly MemoryEvent[]): void {
    for (const event of events) this.events.push(event);
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      const waiter = this.waiters[i];
      if (waiter !== undefined && this.events.length >= waiter.count) {
        this.waiters.splice(i, 1);
        waiter.resolve();
      }
    }
  }

  /** @internal Cuts the store back to `count` events and removes a torn tail. */
  truncate(count: number): void {
    this.events.length = count;
    this.tornTail = undefined;
  }
}

/** How an injected failure leaves the sink. */
export type InjectedFailureMode =
  /** Nothing of the batch is kept; the sink stays usable (a failure the JSONL sink can undo). */
  | 'undone'
  /** Part of the batch is left past the position and the sink refuses every later write (a failed fsync). */
  | 'torn';

/**
 * A stall: writes wait at the point where a real sink waits for its device, until `release`.
 * `reached` resolves once a write is waiting there.
 */
export class Stall {
  private released = false;
  private readonly waiting: { resolve: () => void; reject: (error: unknown) => void }[] = [];
  private onReach: (() => void) | undefined;
  readonly reached: Promise<void>;

  constructor() {
    this.reached = new Promise((resolve) => (this.onReach = resolve));
  }

  get isReleased(): boolean {
    return this.released;
  }

  /** @internal Waits here until released (or rejected by `abort`). */
  pass(): Promise<void> {
    if (this.released) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.onReach?.();
    });
  }

  release(): void {
    this.released = true;
    for (const waiter of this.waiting.splice(0)) waiter.resolve();
  }

  /** @internal Fails every write waiting here (a sink closed while stalled). */
  abort(error: unknown): void {
    this.released = true;
    for (const waiter of this.waiting.splice(0)) waiter.reject(error);
  }
}

type State = 'new' | 'open' | 'failed' | 'closed';

/**
 * The in-memory sink.
 *
 * - `write` is serialized in call order and resolves `{ events: n }` once the batch is in the store.
 * - A rejected write leaves no acknowledged trace: the position does not move past it, and writes
 *   already queued behind it reject too (they were issued assuming it would land). A write issued
 *   after the rejection continues from the last resolved position (mode 'undone') or is refused
 *   (mode 'torn', or `failAll`).
 * - `close` is idempotent, waits for writes in flight, rejects writes held by a stall, and refuses
 *   every later write.
 */
export class MemorySink implements Sink {
  readonly kind = 'memory';
  readonly store: MemorySinkStore;
  /** Every position this sink resolved, in order. */
  readonly acknowledged: SinkPosition[] = [];
  private state: State = 'new';
  private failure: CdcError | undefined;
  private tail: Promise<unknown> = Promise.resolve();
  /** Writes rejected so far: a write issued before the latest rejection is refused (see the class comment). */
  private rejections = 0;
  private readonly injected: { error: CdcError; mode: InjectedFailureMode }[] = [];
  private stall: Stall | undefined;
  private readonly brokenTopics = new Set<string>();
  /** Whether `open(undefined)` refuses a store that already holds events. */
  private readonly refuseUnknownData: boolean;

  /**
   * `store`: the durable state to write to (a new one by default). `refuseUnknownData` (default
   * true): like the JSONL sink, `open(undefined)` refuses a store that already holds events.
   */
  constructor(options: { store?: MemorySinkStore; refuseUnknownData?: boolean } = {}) {
    this.store = options.store ?? new MemorySinkStore();
    this.refuseUnknownData = options.refuseUnknownData ?? true;
  }

  /** The ids of every durable event, in order (shorthand for `store.ids()`). */
  get ids(): string[] {
    return this.store.ids();
  }

  /** The next write (or the next `count` writes) rejects with `error` (SINK_FAILED by default). */
  failNext(options: { error?: CdcError; mode?: InjectedFailureMode; count?: number } = {}): void {
    const error = options.error ?? new CdcError('SINK_FAILED', 'injected sink failure', { retryable: true });
    for (let i = 0; i < (options.count ?? 1); i++) this.injected.push({ error, mode: options.mode ?? 'undone' });
  }

  /** Every later write with an event of `topic` rejects ('undone': it leaves nothing), until `healTopic`. */
  failWritesTo(topic: string): void {
    this.brokenTopics.add(topic);
  }

  healTopic(topic: string): void {
    this.brokenTopics.delete(topic);
  }

  /** Every later write rejects with `error`, as after a failure the sink cannot undo. */
  failAll(error = new CdcError('SINK_FAILED', 'injected permanent sink failure')): void {
    this.state = this.state === 'closed' ? 'closed' : 'failed';
    this.failure = error;
  }

  /** Holds every write from now on before it becomes durable, until the returned stall is released. */
  stallWrites(): Stall {
    this.stall = new Stall();
    return this.stall;
  }

  open(resume: SinkPosition | undefined): Promise<void> {
    if (this.state !== 'new') return Promise.reject(new CdcError('INTERNAL', 'MemorySink.open called twice'));
    if (resume === undefined) {
      if (this.refuseUnknownData && this.store.events.length > 0) {
        this.state = 'closed';
        return Promise.reject(
          new CdcError('CONFIG_INVALID', 'the memory sink already holds events but there is no checkpoint'),
        );
      }
      this.store.truncate(0);
    } else {
      const events = resume.events;
      if (typeof events !== 'number' || !Number.isInteger(events) || events < 0) {
        this.state = 'closed';
        return Promise.reject(new CdcError('CONFIG_INVALID', 'the checkpoint holds no memory sink position'));
      }
      if (events > this.store.events.length) {
        this.state = 'closed';
        return Promise.reject(
          new CdcError(
            'SINK_FAILED',
            `the memory sink holds ${this.store.events.length} events but the checkpoint says ${events}`,
          ),
        );
      }
      this.store.truncate(events);
    }
    this.state = 'open';
    return Promise.resolve();
  }

  write(batch: EventBatch): Promise<SinkPosition> {
    const rejectionsBefore = this.rejections;
    const run = this.tail.then(() => this.writeNow(batch, rejectionsBefore));
    // Counted before the caller sees the rejection, so a write it issues then is not refused.
    this.tail = run.catch(() => {
      this.rejections++;
    });
    return run;
  }

  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.stall?.abort(new CdcError('SINK_FAILED', 'the memory sink was closed while a write was stalled'));
    await this.tail;
  }

  private async writeNow(batch: EventBatch, rejectionsBefore: number): Promise<SinkPosition> {
    if (this.state === 'closed' || this.state === 'new')
      throw new CdcError('INTERNAL', `MemorySink.write called while ${this.state}`);
    if (this.state === 'failed') throw this.refused(this.failure);
    if (rejectionsBefore !== this.rejections) throw this.refused(this.failure);
    const events: MemoryEvent[] = [];
    for (let i = 0; i < batch.count; i++) events.push({ topic: batch.topic(i), id: batch.id(i), line: batch.line(i) });
    try {
      if (this.stall !== undefined) await this.stall.pass();
      // close() may have run while the write waited at a stall.
      if ((this.state as State) === 'closed') throw new CdcError('INTERNAL', 'MemorySink.write called while closed');
      const injected = this.injected.shift();
      if (injected !== undefined) {
        if (injected.mode === 'torn') {
          const kept = events.slice(0, Math.floor(events.length / 2));
          this.store.append(kept);
          this.store.tear(events[kept.length]?.topic ?? '');
          this.state = 'failed';
        }
        throw injected.error;
      }
      const broken = events.find((event) => this.brokenTopics.has(event.topic));
      if (broken !== undefined) {
        throw new CdcError('SINK_FAILED', `injected failure of the writes to ${broken.topic}`, { retryable: true });
      }
    } catch (error) {
      this.failure = error instanceof CdcError ? error : new CdcError('SINK_FAILED', String(error), { cause: error });
      throw this.failure;
    }
    this.store.append(events);
    const position: SinkPosition = { events: this.store.events.length };
    this.acknowledged.push(position);
    return position;
  }

  private refused(cause: unknown): CdcError {
    return new CdcError('SINK_FAILED', 'the memory sink refuses writes after an earlier write failed', { cause });
  }
}
