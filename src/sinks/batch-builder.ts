/**
 * Builds EventBatches (sinks/batch.ts): serializers write each event's line piecewise, straight into
 * one UTF-8 slab, and `take` cuts the committed events off as a batch.
 */
import { EventBatch, type TopicRegistry } from './batch.ts';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const NEWLINE = 0x0a;
/** Largest slab a builder starts a new batch with (it still grows as needed). */
const MAX_REUSED_SLAB = 32 * 1024 * 1024;

/**
 * Accumulates events. `take(n)` hands out the first n events as a batch and keeps the rest (the
 * part of a transaction that has not committed yet) for the next one.
 */
export class EventBatchBuilder {
  readonly registry: TopicRegistry;
  private slab: Buffer;
  private used = 0;
  private ends: Uint32Array;
  private topics: Uint32Array;
  private flagBytes: Uint8Array;
  private n = 0;
  private eventStart = 0;
  /** Slabs of written batches, handed back by `recycle`, for the next `take`s. */
  private readonly spares: Buffer[] = [];

  constructor(registry: TopicRegistry, initialBytes = 1 << 20, initialEvents = 4096) {
    this.registry = registry;
    this.slab = Buffer.allocUnsafe(initialBytes);
    this.ends = new Uint32Array(initialEvents);
    this.topics = new Uint32Array(initialEvents);
    this.flagBytes = new Uint8Array(initialEvents);
  }

  get count(): number {
    return this.n;
  }

  get bytes(): number {
    return this.used;
  }

  /** Appends one event: its topic number and JSON line (no newline inside). */
  add(topic: number, line: string): void {
    this.startEvent();
    this.text(line);
    this.endEvent(topic);
  }

  // Piecewise writing, for serializers that emit bytes directly (envelope/json.ts): startEvent,
  // any number of raw/ascii/text, then endEvent (or abortEvent to drop the partial event).

  startEvent(): void {
    this.eventStart = this.used;
  }

  /** Pre-encoded bytes. */
  raw(bytes: Uint8Array): void {
    const n = bytes.length;
    if (this.slab.length - this.used < n) this.growBytes(n);
    // TypedArray.set costs about the same for 3 or 300 bytes, and beats a JS byte loop for both.
    this.slab.set(bytes, this.used);
    this.used += n;
  }

  /** A string, UTF-8 encoded. ASCII (the usual case for JSON made here) is copied char by char. */
  text(s: string): void {
    const n = s.length;
    if (this.slab.length - this.used < n * 3) this.growBytes(n * 3);
    const slab = this.slab;
    const start = this.used;
    if (n > 96) {
      this.used = start + slab.write(s, start);
      return;
    }
    let at = start;
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) {
        this.used = start + slab.write(s, start);
        return;
      }
      slab[at++] = c;
    }
    this.used = at;
  }

  /**
   * `s` as a JSON string, byte for byte what JSON.stringify gives. A short one of printable ASCII
   * without quotes or backslashes (most values) is quoted in place, a long one encoded in place
   * (longJsonString); anything else goes through JSON.stringify, which escapes it correctly.
   */
  jsonString(s: string): void {
    const n = s.length;
    if (n > 96) {
      this.longJsonString(s);
      return;
    }
    if (this.slab.length - this.used < n + 2) this.growBytes(n + 2);
    const slab = this.slab;
    const start = this.used;
    let at = start;
    slab[at++] = QUOTE;
    let i = 0;
    for (; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c < 0x20 || c === QUOTE || c === BACKSLASH || c >= 0x7f) break;
      slab[at++] = c;
    }
    if (i === n) {
      slab[at++] = QUOTE;
      this.used = at;
      return;
    }
    this.text(JSON.stringify(s));
  }

  /**
   * A long string (TOASTed text, documents): UTF-8 encoded straight into the slab between quotes, then
   * its bytes checked for anything JSON.stringify would escape. The usual case costs one encode and one
   * byte scan, where JSON.stringify then encoding cost an extra copy of the string and its garbage (the
   * TOAST workload's profile, docs/benchmarks.md). Escapes are control characters, quote and backslash;
   * a lone surrogate encodes as U+FFFD (EF BF BD), so that sequence is also left to JSON.stringify.
   */
  private longJsonString(s: string): void {
    const n = s.length;
    if (this.slab.length - this.used < n * 3 + 2) this.growBytes(n * 3 + 2);
    const slab = this.slab;
    const start = this.used;
    slab[start] = QUOTE;
    const end = start + 1 + slab.write(s, start + 1);
    for (let at = start + 1; at < end; at++) {
      const c = slab[at] as number;
      if (
        c < 0x20 ||
        c === QUOTE ||
        c === BACKSLASH ||
        (c === 0xef && slab[at + 1] === 0xbf && slab[at + 2] === 0xbd)
      ) {
        this.text(JSON.stringify(s));
        return;
      }
    }
    slab[end] = QUOTE;
    this.used = end + 1;
  }

  /**
   * Direct writing, for byte-level serializers (envelope/copy-values.ts): makes room for `bytes` more
   * bytes and returns the slab to write them into from `offset`; `advance(to)` then marks the bytes
   * up to `to` written. Nothing past `offset` counts until `advance`, so a writer may give up midway.
   */
  room(bytes: number): Buffer {
    if (this.slab.length - this.used < bytes) this.growBytes(bytes);
    return this.slab;
  }

  /** Where the next byte goes in the slab `room` returned. */
  get offset(): number {
    return this.used;
  }

  /** Marks the slab written up to `to` (see `room`). */
  advance(to: number): void {
    this.used = to;
  }

  /** A non-negative integer below 2^53 in decimal, without allocating a string. */
  uint(value: number): void {
    let digits = 1;
    for (let rest = value; rest >= 10; rest = Math.floor(rest / 10)) digits++;
    if (this.slab.length - this.used < digits) this.growBytes(digits);
    const slab = this.slab;
    let at = this.used + digits;
    this.used = at;
    let rest = value;
    do {
      const next = Math.floor(rest / 10);
      slab[--at] = 0x30 + (rest - next * 10);
      rest = next;
    } while (rest > 0);
  }

  /** Ends the event begun by `startEvent` under `topic`, with its EventFlag bits. */
  endEvent(topic: number, flags = 0): void {
    if (this.slab.length - this.used < 1) this.growBytes(1);
    if (this.n === this.ends.length) this.growEvents();
    this.slab[this.used++] = NEWLINE;
    this.ends[this.n] = this.used;
    this.topics[this.n] = topic;
    this.flagBytes[this.n] = flags;
    this.n++;
  }

  /**
   * Hands over every event's bytes and line ends without copying, and starts again empty in
   * `next` (or a new slab as large as the old one). For a builder whose lines go elsewhere whole
   * (snapshot/serializer-thread.ts), with no event begun and not ended.
   */
  handOverLines(next: Buffer | undefined): { data: Buffer; ends: Uint32Array; count: number } {
    const out = { data: this.slab.subarray(0, this.used), ends: this.ends.slice(0, this.n), count: this.n };
    this.slab = next ?? Buffer.allocUnsafe(this.slab.length);
    this.used = 0;
    this.n = 0;
    return out;
  }

  abortEvent(): void {
    this.used = this.eventStart;
  }

  /** Removes and returns the first `count` events; the rest stay, in order. */
  take(count: number): EventBatch {
    const cut = count === 0 ? 0 : (this.ends[count - 1] as number);
    const batch = new EventBatch(
      this.slab.subarray(0, cut),
      this.ends.slice(0, count),
      this.topics.slice(0, count),
      count,
      this.registry,
      this.flagBytes.slice(0, count),
    );
    const restEvents = this.n - count;
    const restBytes = this.used - cut;
    // The batch keeps the old slab alive until it is written: do not also keep a huge new one.
    const size = Math.max(Math.min(this.slab.length, MAX_REUSED_SLAB), restBytes + 1, 1 << 16);
    const spare = this.spares.pop();
    const slab = spare !== undefined && spare.length >= size ? spare : Buffer.allocUnsafe(size);
    this.slab.copy(slab, 0, cut, this.used);
    const ends = new Uint32Array(this.ends.length);
    for (let i = 0; i < restEvents; i++) ends[i] = (this.ends[count + i] as number) - cut;
    const topics = new Uint32Array(this.topics.length);
    topics.set(this.topics.subarray(count, this.n));
    const flags = new Uint8Array(this.flagBytes.length);
    flags.set(this.flagBytes.subarray(count, this.n));
    this.slab = slab;
    this.ends = ends;
    this.topics = topics;
    this.flagBytes = flags;
    this.used = restBytes;
    this.n = restEvents;
    return batch;
  }

  /**
   * Hands back the bytes of a batch this builder made whose write resolved, to a sink that keeps no
   * reference to them (Sink.releasesBatches): the next `take` fills them again instead of allocating
   * a new slab. A batch of megabytes allocated per write kept the garbage collector busy (the
   * initial snapshot's profile, docs/benchmarks.md). The batch must not be read afterwards.
   */
  recycle(batch: EventBatch): void {
    const data = batch.data;
    // Only a slab of its own (large allocations are never pooled), whole.
    if (data.byteOffset !== 0 || data.buffer.byteLength < 1 << 20 || this.spares.length >= 2) return;
    this.spares.push(Buffer.from(data.buffer, 0, data.buffer.byteLength));
  }

  private growBytes(need: number): void {
    const grown = Buffer.allocUnsafe(Math.max(this.slab.length * 2, this.used + need));
    this.slab.copy(grown, 0, 0, this.used);
    this.slab = grown;
  }

  private growEvents(): void {
    const ends = new Uint32Array(this.ends.length * 2);
    ends.set(this.ends);
    const topics = new Uint32Array(this.topics.length * 2);
    topics.set(this.topics);
    const flags = new Uint8Array(this.flagBytes.length * 2);
    flags.set(this.flagBytes);
    this.ends = ends;
    this.topics = topics;
    this.flagBytes = flags;
  }
}
