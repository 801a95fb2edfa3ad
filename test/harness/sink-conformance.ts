/**
 * The sink conformance suite: the rules of the sink contract (src/sinks/contract.ts) checked
 * against a real destination. Every sink kind runs it (test/unit/sinks/*-conformance.test.ts):
 *
 *   sinkConformance({ name: 'jsonl', delivery: 'exactly-once', setup: async () => fixture });
 *
 * registers one `describe` of node:test tests: order, durable before resolve (and across a
 * SIGKILL right after the resolve, when the kind can run in a child process), resume position
 * (after close and reopen, and after a crash with a torn tail), a failure is never acknowledged,
 * and close. A fixture hook a kind cannot provide is left out and the tests needing it are
 * skipped, saying why.
 *
 * Events are lines in the envelope layout every sink receives (envelope/, sinks/kafka/records.ts):
 * `{"id":"0/1:<n>","topic":"<topic>","key":{"n":<n>},"value":{"n":<n>}}`; a fixture reads them
 * back per topic, in order, independently of any sink instance (a fixture whose destination keeps
 * parts, such as Kafka's key, value and headers, puts the line together again in that layout).
 *
 * Where events become visible: a sink with `checkpoints` (contract.ts SinkCheckpoints) is given a
 * checkpoint through `checkpoints.store` where the engine would store one, after a write resolved
 * and before the suite reads the destination. For most kinds that changes nothing. A kind whose
 * writes are transactional (`visibleOnCheckpoint`: Kafka exactly-once) makes events visible to
 * readers only then; its rules read "a resolved write is durable, and visible once checkpointed; a
 * resolved write never checkpointed is discarded".
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CdcError } from '../../src/core/errors.ts';
import { EventBatch, TopicRegistry } from '../../src/sinks/batch.ts';
import type { Sink, SinkPosition } from '../../src/sinks/contract.ts';

/** Per topic, the event lines in order; a torn partial line (no newline) is included as read. */
export type DurableEvents = ReadonlyMap<string, readonly string[]>;

/** One destination (a directory, a pipe, a store) for one test. */
export interface SinkFixture {
  /** A new, unopened sink on this destination: the first call is the first run, a later one a restart. */
  makeSink(): Sink;
  /**
   * What is durable at the destination, read by an independent reader (reopening the files,
   * draining the pipe). For a stream, the events of every run so far, run after run.
   */
  readDurable(): Promise<DurableEvents>;
  /** Leaves a torn partial event at the end of `topic`'s data, as a crash in mid-write does. */
  tear?(topic: string): Promise<void>;
  /**
   * Makes writes with an event of `topic` (a topic not written before) fail from now on, the way
   * the destination fails (a kind may fail every write: stdout once its reader is gone). Resolves
   * with a function that removes the cause again (before a restart).
   */
  injectFailure?(topic: string): Promise<() => Promise<void>>;
  /**
   * Runs a sink on this destination in a child process, opens it (no checkpoint), writes `batches`
   * one after the other and SIGKILLs the child right after the last write resolved. Resolves with
   * that write's position once the child is dead.
   */
  writeThenKill?(batches: readonly EventBatch[]): Promise<SinkPosition>;
  /** Removes the destination and stops anything the fixture started. */
  dispose(): Promise<void>;
}

export interface SinkConformanceTarget {
  /** The kind's name, for the test names. */
  readonly name: string;
  /**
   * exactly-once: `open(position)` restores exactly the state at `position` (later events and torn
   * tails are cut). at-least-once: events after the position may be delivered again.
   */
  readonly delivery: 'exactly-once' | 'at-least-once';
  /**
   * Writes are transactional: a resolved write is durable but visible to readers only once the
   * checkpoint after it is stored (`checkpoints.store` commits the transaction); a crash or close
   * before that discards it. Needs `checkpoints` on the sink.
   */
  readonly visibleOnCheckpoint?: boolean;
  /**
   * Rules that do not apply to this kind, each with the reason printed as the skip message.
   * `unknownDestination`: refusing, without a checkpoint, a destination that holds events.
   */
  readonly notApplicable?: { readonly unknownDestination?: string };
  /** A fresh destination for one test. */
  setup(): Promise<SinkFixture>;
}

const ORDERS = 'shop.public.orders';
const ITEMS = 'shop.public.items';
const USERS = 'shop.public.users';
const BROKEN = 'shop.public.broken';

/** A test event of `topic` numbered `n`. */
export function conformanceLine(topic: string, n: number): string {
  return `{"id":"0/1:${n}","topic":"${topic}","key":{"n":${n}},"value":{"n":${n}}}`;
}

/**
 * Stores a checkpoint at `position` through the sink's own checkpoints, as the engine does after a
 * write resolved; nothing for a sink without them.
 */
async function checkpointed(sink: Sink, position: SinkPosition): Promise<void> {
  await sink.checkpoints?.store(JSON.stringify({ lsn: '0/1', sink: position }));
}

type Spec = readonly (readonly [topic: string, n: number])[];

function batchOf(spec: Spec, topics: TopicRegistry): EventBatch {
  return EventBatch.of(
    spec.map(([topic, n]) => ({ topic, line: conformanceLine(topic, n) })),
    topics,
  );
}

/** `count` events from `first` on, event n on `topics[n % topics.length]`. */
function spread(first: number, count: number, topics: readonly string[] = [ORDERS, ITEMS, USERS]): Spec {
  return Array.from({ length: count }, (_, i) => [topics[(first + i) % topics.length] ?? ORDERS, first + i] as const);
}

function expected(...specs: Spec[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const spec of specs) for (const [topic, n] of spec) (out[topic] ??= []).push(conformanceLine(topic, n));
  return out;
}

/** Durable events as a plain object, topics with no events left out, for deepEqual. */
function plain(durable: DurableEvents): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const topic of [...durable.keys()].sort()) {
    const lines = durable.get(topic) ?? [];
    if (lines.length > 0) out[topic] = [...lines];
  }
  return out;
}

function sorted(record: Record<string, string[]>): Record<string, string[]> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** Each topic's lines with repeats removed (at-least-once: a restart may deliver an event again). */
function deduplicated(record: Record<string, string[]>): Record<string, string[]> {
  return Object.fromEntries(Object.entries(record).map(([topic, lines]) => [topic, [...new Set(lines)]]));
}

async function rejection(promise: Promise<unknown>): Promise<CdcError> {
  let caught: unknown;
  await promise.then(
    () => assert.fail('expected the write to reject'),
    (error: unknown) => (caught = error),
  );
  assert.ok(caught instanceof CdcError, `a sink rejects with a CdcError, not ${String(caught)}`);
  return caught;
}

/** Registers the conformance tests for one sink kind. */
export function sinkConformance(target: SinkConformanceTarget): void {
  const exactlyOnce = target.delivery === 'exactly-once';
  const transactional = target.visibleOnCheckpoint === true;

  /** Runs `body` with a fresh fixture, disposed of whatever happens. */
  const withFixture = async (body: (fixture: SinkFixture, topics: TopicRegistry) => Promise<void>): Promise<void> => {
    const fixture = await target.setup();
    try {
      await body(fixture, new TopicRegistry());
    } finally {
      await fixture.dispose();
    }
  };

  /** What a restart must leave: exactly the events (exactly-once) or each at least once, in order. */
  const assertResumed = async (fixture: SinkFixture, ...specs: Spec[]): Promise<void> => {
    const durable = sorted(plain(await fixture.readDurable()));
    const want = sorted(expected(...specs));
    if (exactlyOnce) assert.deepEqual(durable, want, 'exactly the written events, none lost or repeated');
    else assert.deepEqual(deduplicated(durable), want, 'every written event, in order (repeats allowed)');
  };

  void describe(`sink conformance: ${target.name}`, () => {
    void it('order: batches and their events come out in the order written, overlapping writes too', async () => {
      await withFixture(async (fixture, topics) => {
        const sink = fixture.makeSink();
        await sink.open(undefined);
        const first = spread(0, 7);
        await sink.write(batchOf(first, topics));
        // Issued without waiting, as a pipeline may: they must land, and resolve, in call order.
        const overlapping = [spread(7, 5), spread(12, 1), [] as Spec, spread(13, 9, [USERS, ORDERS])];
        const resolved: number[] = [];
        const positions = await Promise.all(
          overlapping.map((spec, i) =>
            sink.write(batchOf(spec, topics)).then((position) => {
              resolved.push(i);
              return position;
            }),
          ),
        );
        assert.deepEqual(resolved, [0, 1, 2, 3], 'writes resolve in call order');
        assert.deepEqual(positions[2], positions[1], 'an empty batch resolves the current position');
        await checkpointed(sink, positions[3] ?? {});
        await sink.close();
        assert.deepEqual(plain(await fixture.readDurable()), sorted(expected(first, ...overlapping)));
      });
    });

    void it('durable before resolve: a resolved batch is readable by an independent reader', async () => {
      await withFixture(async (fixture, topics) => {
        const sink = fixture.makeSink();
        await sink.open(undefined);
        const written: Spec[] = [];
        for (let b = 0; b < 4; b++) {
          const spec = spread(b * 10, b + 1);
          await checkpointed(sink, await sink.write(batchOf(spec, topics)));
          written.push(spec);
          // Read before close: the sink's own buffers must not be needed.
          assert.deepEqual(plain(await fixture.readDurable()), sorted(expected(...written)), `after batch ${b}`);
        }
        await sink.close();
      });
    });

    void it('durable before resolve: kept when the writing process is SIGKILLed right after the resolve', async (t) => {
      const fixture = await target.setup();
      try {
        if (fixture.writeThenKill === undefined) {
          t.skip(`the ${target.name} fixture does not run its sink in a child process`);
          return;
        }
        const topics = new TopicRegistry();
        const specs = [spread(0, 3), spread(3, 40), spread(43, 1)];
        const position = await fixture.writeThenKill(specs.map((spec) => batchOf(spec, topics)));
        assert.deepEqual(plain(await fixture.readDurable()), sorted(expected(...specs)));
        // The position the dead process was given restores exactly what it wrote.
        const sink = fixture.makeSink();
        await sink.open(position);
        await sink.write(batchOf(spread(44, 2), topics));
        await sink.close();
        await assertResumed(fixture, ...specs, spread(44, 2));
      } finally {
        await fixture.dispose();
      }
    });

    void it('resume: after close and reopen at a position, writing on neither loses nor repeats', async () => {
      await withFixture(async (fixture, topics) => {
        const first = fixture.makeSink();
        await first.open(undefined);
        await first.write(batchOf(spread(0, 4), topics));
        const checkpoint = await first.write(batchOf(spread(4, 3), topics));
        await checkpointed(first, checkpoint);
        await first.close();

        const second = fixture.makeSink();
        await second.open(checkpoint);
        assert.deepEqual(
          await second.write(batchOf([], topics)),
          checkpoint,
          'after reopening, the sink is at the position it was opened with',
        );
        await checkpointed(second, await second.write(batchOf(spread(7, 5), topics)));
        await second.close();
        await assertResumed(fixture, spread(0, 4), spread(4, 3), spread(7, 5));
      });
    });

    void it('resume: after a crash (a torn tail, an open transaction), the checkpoint is the position', async (t) => {
      if (!exactlyOnce) {
        t.skip(`${target.name} is at-least-once: it has no position to cut back to`);
        return;
      }
      await withFixture(async (fixture, topics) => {
        if (fixture.tear === undefined && !transactional) {
          t.skip(`the ${target.name} fixture cannot tear a write`);
          return;
        }
        const first = fixture.makeSink();
        await first.open(undefined);
        const checkpoint = await first.write(batchOf(spread(0, 6), topics));
        await checkpointed(first, checkpoint);
        // Written but never checkpointed, then a crash in the middle of the next write (a transactional
        // sink: its transaction is left open, as a crash before the commit leaves it).
        await first.write(batchOf(spread(6, 4), topics));
        await first.close();
        if (fixture.tear !== undefined) {
          await fixture.tear(ORDERS);
          assert.notDeepEqual(plain(await fixture.readDurable()), sorted(expected(spread(0, 6))));
        } else {
          assert.deepEqual(
            plain(await fixture.readDurable()),
            sorted(expected(spread(0, 6))),
            'a write never checkpointed is not visible',
          );
        }

        const second = fixture.makeSink();
        await second.open(checkpoint);
        assert.deepEqual(
          plain(await fixture.readDurable()),
          sorted(expected(spread(0, 6))),
          'cut back to the position',
        );
        assert.deepEqual(await second.write(batchOf([], topics)), checkpoint, 'and reports that position');
        // The capture sends the lost batch again from the checkpoint: each event appears once.
        await second.write(batchOf(spread(6, 4), topics));
        await checkpointed(second, await second.write(batchOf(spread(10, 2), topics)));
        await second.close();
        assert.deepEqual(plain(await fixture.readDurable()), sorted(expected(spread(0, 12))));
      });
    });

    void it('resume: without a checkpoint, a destination that holds events is refused', async (t) => {
      if (!exactlyOnce) {
        t.skip(`${target.name} is at-least-once: it cannot tell what a destination holds`);
        return;
      }
      if (target.notApplicable?.unknownDestination !== undefined) {
        t.skip(target.notApplicable.unknownDestination);
        return;
      }
      await withFixture(async (fixture, topics) => {
        const first = fixture.makeSink();
        await first.open(undefined);
        await checkpointed(first, await first.write(batchOf(spread(0, 2), topics)));
        await first.close();
        const error = await rejection(fixture.makeSink().open(undefined));
        assert.equal(error.code, 'CONFIG_INVALID');
        assert.deepEqual(plain(await fixture.readDurable()), sorted(expected(spread(0, 2))), 'nothing was removed');
      });
    });

    void it('a failure is never acknowledged: it rejects, and nothing later lands over the gap', async (t) => {
      await withFixture(async (fixture, topics) => {
        if (fixture.injectFailure === undefined) {
          t.skip(`the ${target.name} fixture cannot inject a failure`);
          return;
        }
        const sink = fixture.makeSink();
        await sink.open(undefined);
        const before = spread(0, 5);
        const position = await sink.write(batchOf(before, topics));
        await checkpointed(sink, position);
        const heal = await fixture.injectFailure(BROKEN);

        const failing: Spec = [...spread(5, 3), [BROKEN, 8]];
        const failed = sink.write(batchOf(failing, topics));
        const queued = sink.write(batchOf(spread(9, 2), topics)); // issued expecting `failing` to land
        const error = await rejection(failed);
        assert.ok(['SINK_FAILED', 'LOCAL_IO'].includes(error.code), `${error.code}: ${error.message}`);
        await rejection(queued);
        assert.deepEqual(
          plain(await fixture.readDurable()),
          sorted(expected(before)),
          'no event of the failed batch, nor of the one queued behind it, is at the destination',
        );

        // Issued after the rejection: continues from the last resolved position, or is refused.
        const after = spread(20, 2, [ORDERS, ITEMS]);
        const outcome = await sink.write(batchOf(after, topics)).then(
          async (resolved) => {
            await checkpointed(sink, resolved);
            return { resolved };
          },
          (refused: unknown) => ({ refused }),
        );
        await sink.close();
        await heal();
        if ('refused' in outcome) {
          assert.ok(outcome.refused instanceof CdcError);
          assert.deepEqual(plain(await fixture.readDurable()), sorted(expected(before)));
          return;
        }
        assert.deepEqual(plain(await fixture.readDurable()), sorted(expected(before, after)));
        if (exactlyOnce) {
          // Reopening at the position before the failure forgets what followed it.
          const again = fixture.makeSink();
          await again.open(position);
          await again.close();
          assert.deepEqual(plain(await fixture.readDurable()), sorted(expected(before)));
        }
      });
    });

    void it('close: idempotent, settles writes in flight, refuses writes after it', async () => {
      await withFixture(async (fixture, topics) => {
        const sink = fixture.makeSink();
        await sink.open(undefined);
        await checkpointed(sink, await sink.write(batchOf(spread(0, 3), topics)));
        let settled: 'resolved' | 'rejected' | undefined;
        const inFlight = sink.write(batchOf(spread(3, 3), topics)).then(
          () => (settled = 'resolved'),
          () => (settled = 'rejected'),
        );
        await Promise.all([sink.close(), sink.close()]);
        assert.notEqual(settled, undefined, 'close waited for the write issued before it');
        await inFlight;
        await sink.close();
        await rejection(sink.write(batchOf(spread(6, 1), topics)));
        const durable = plain(await fixture.readDurable());
        // A transactional sink's last write was never checkpointed: closing discards it.
        const landed = settled === 'resolved' && !transactional ? [spread(0, 3), spread(3, 3)] : [spread(0, 3)];
        assert.deepEqual(
          durable,
          sorted(expected(...landed)),
          transactional
            ? 'a checkpointed write is visible, a write never checkpointed is not'
            : 'a resolved write is durable, a rejected one absent',
        );
      });
    });
  });
}
