/**
 * A batch of serialized events in columnar form: every line UTF-8 encoded into one slab in commit
 * order, with per-event end offsets and topic numbers in typed arrays.
 *
 * Why not an array of event objects with string lines: a pipeline holding tens of thousands of
 * strings between serialisation and the sink write spent most of its time in the garbage
 * collector. Encoding each line the moment it is built lets the string die young, keeps the
 * buffered events off the JS heap, and hands the sink bytes it can write as they are.
 */

/**
 * Per-event flags a sink may act on without parsing the line (sinks/kafka writes a tombstone after
 * each delete). Set by whoever ends the event (`endEvent(topic, flags)`).
 */
export const EventFlag = {
  /** A delete (op d): its key's row is gone. */
  DELETE: 1,
} as const;

/** Topic numbers are stable for the life of a process: one registry is shared by all batches. */
export class TopicRegistry {
  private readonly names: string[] = [];
  private readonly numbers = new Map<string, number>();

  number(topic: string): number {
    let n = this.numbers.get(topic);
    if (n === undefined) {
      n = this.names.length;
      this.names.push(topic);
      this.numbers.set(topic, n);
    }
    return n;
  }

  name(n: number): string {
    const topic = this.names[n];
    if (topic === undefined) throw new RangeError(`unknown topic number ${n}`);
    return topic;
  }
}

const ID_PREFIX = Buffer.from('{"id":"');
const QUOTE = 0x22;

/** An immutable batch. Event i's line (with its trailing newline) is `data[start(i), end(i))`. */
export class EventBatch {
  readonly count: number;
  /** Every event's JSON line followed by '\n', in commit order. */
  readonly data: Buffer;
  private readonly ends: Uint32Array;
  private readonly topics: Uint32Array;
  private readonly flagBytes: Uint8Array;
  private readonly registry: TopicRegistry;

  constructor(
    data: Buffer,
    ends: Uint32Array,
    topics: Uint32Array,
    count: number,
    registry: TopicRegistry,
    flags: Uint8Array = new Uint8Array(count),
  ) {
    this.data = data;
    this.ends = ends;
    this.topics = topics;
    this.count = count;
    this.registry = registry;
    this.flagBytes = flags;
  }

  /** A batch from plain lines (tests, small tools): lines must not contain newlines. */
  static of(events: readonly { topic: string; line: string }[], registry = new TopicRegistry()): EventBatch {
    const data = Buffer.from(events.map((e) => `${e.line}\n`).join(''), 'utf8');
    const ends = new Uint32Array(events.length);
    const topics = new Uint32Array(events.length);
    let at = 0;
    events.forEach((e, i) => {
      at += Buffer.byteLength(e.line, 'utf8') + 1;
      ends[i] = at;
      topics[i] = registry.number(e.topic);
    });
    return new EventBatch(data, ends, topics, events.length, registry);
  }

  start(i: number): number {
    return i === 0 ? 0 : (this.ends[i - 1] as number);
  }

  end(i: number): number {
    return this.ends[i] as number;
  }

  topicNumber(i: number): number {
    return this.topics[i] as number;
  }

  /** Event i's EventFlag bits. */
  flags(i: number): number {
    return this.flagBytes[i] as number;
  }

  topic(i: number): string {
    return this.registry.name(this.topics[i] as number);
  }

  topicName(topicNumber: number): string {
    return this.registry.name(topicNumber);
  }

  /**
   * The registry that numbers this batch's topics. Numbers are stable per registry, not across
   * registries (the initial snapshot numbers its topics apart from the stream): a sink that caches
   * something per topic number keys the cache by this too.
   */
  get topicRegistry(): TopicRegistry {
    return this.registry;
  }

  /** Event i's line, without the newline. */
  line(i: number): string {
    return this.data.toString('utf8', this.start(i), this.end(i) - 1);
  }

  /** Event i's id, read from the line's leading `{"id":"...` (every pgcdc event starts so). */
  id(i: number): string {
    const start = this.start(i) + ID_PREFIX.length;
    const close = this.data.indexOf(QUOTE, start);
    return this.data.toString('latin1', start, close);
  }

  /**
   * Per topic number, the bytes of that topic's lines in order. A topic whose events are contiguous
   * gets a view of `data` (no copy); interleaved topics are gathered run by run.
   */
  byTopic(): Map<number, Buffer> {
    const runs = new Map<number, number[]>();
    let i = 0;
    while (i < this.count) {
      const topic = this.topics[i] as number;
      const runStart = this.start(i);
      while (i + 1 < this.count && this.topics[i + 1] === topic) i++;
      const list = runs.get(topic);
      if (list === undefined) runs.set(topic, [runStart, this.end(i)]);
      else list.push(runStart, this.end(i));
      i++;
    }
    const out = new Map<number, Buffer>();
    for (const [topic, list] of runs) {
      if (list.length === 2) {
        out.set(topic, this.data.subarray(list[0], list[1]));
        continue;
      }
      let size = 0;
      for (let r = 0; r < list.length; r += 2) size += (list[r + 1] as number) - (list[r] as number);
      const gathered = Buffer.allocUnsafe(size);
      let at = 0;
      for (let r = 0; r < list.length; r += 2) at += this.data.copy(gathered, at, list[r], list[r + 1]);
      out.set(topic, gathered);
    }
    return out;
  }
}
