/**
 * Request bodies straight from a batch's slab, without parsing events: ndjson is the lines as they
 * are (a view of the slab when the events are contiguous), json-array the same bytes with each
 * line's newline turned into ',' and the last into ']' after a leading '['. And the lane of each
 * event for `ordering: { lanes: N }`: a hash of its topic and its key's JSON bytes, so one row's
 * changes always take the same lane (and stay in order).
 *
 * An event line is laid out by envelope/ as `{"id":"<id>","topic":"<topic>","key":<key>,...`.
 */
import type { EventBatch, TopicRegistry } from '../batch.ts';
import type { HttpFormat } from './options.ts';
import {
  COMMA,
  CLOSE_BRACKET,
  ID_START,
  KEY_MEMBER,
  OPEN_BRACKET,
  QUOTE,
  skipString,
  skipValue,
  TOPIC_MEMBER,
} from '../event-line.ts';

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

function fnv(data: Uint8Array, start: number, end: number, seed: number): number {
  let hash = seed;
  for (let i = start; i < end; i++) hash = Math.imul(hash ^ (data[i] as number), FNV_PRIME);
  return hash >>> 0;
}

/** The FNV-1a hash of each topic name, per topic number of a registry (a hash seed per topic). */
export class TopicHashes {
  private readonly byRegistry = new WeakMap<TopicRegistry, number[]>();

  of(batch: EventBatch, topicNumber: number): number {
    let hashes = this.byRegistry.get(batch.topicRegistry);
    if (hashes === undefined) this.byRegistry.set(batch.topicRegistry, (hashes = []));
    let hash = hashes[topicNumber];
    if (hash === undefined) {
      const name = Buffer.from(batch.topicName(topicNumber), 'utf8');
      hashes[topicNumber] = hash = fnv(name, 0, name.length, FNV_OFFSET);
    }
    return hash;
  }
}

/**
 * The lane (0..lanes-1) of each event of `batch`: FNV-1a over the topic, then the key's JSON bytes
 * (`null` for keyless events, which so share one lane per topic and keep their order).
 */
export function lanesOf(batch: EventBatch, lanes: number, topics: TopicHashes): Uint8Array {
  const out = new Uint8Array(batch.count);
  const data = batch.data;
  for (let i = 0; i < batch.count; i++) {
    const start = batch.start(i);
    const end = batch.end(i) - 1;
    const seed = topics.of(batch, batch.topicNumber(i));
    const idEnd = data.indexOf(QUOTE, start + ID_START);
    const topicEnd = skipString(data, idEnd + TOPIC_MEMBER, end);
    let hash = seed;
    if (data.compare(KEY_MEMBER, 0, KEY_MEMBER.length, topicEnd, topicEnd + KEY_MEMBER.length) === 0) {
      const keyStart = topicEnd + KEY_MEMBER.length;
      hash = fnv(data, keyStart, skipValue(data, keyStart, end), seed);
    }
    out[i] = hash % lanes;
  }
  return out;
}

/** Per lane, its events in batch order (counted first, so each lane's list is allocated once). */
export function eventsByLane(laneOfEvent: Uint8Array, lanes: number): Uint32Array[] {
  const counts = new Uint32Array(lanes);
  for (let i = 0; i < laneOfEvent.length; i++) {
    const lane = laneOfEvent[i] as number;
    counts[lane] = (counts[lane] as number) + 1;
  }
  const out = Array.from(counts, (n) => new Uint32Array(n));
  const at = new Uint32Array(lanes);
  for (let i = 0; i < laneOfEvent.length; i++) {
    const lane = laneOfEvent[i] as number;
    const slot = at[lane] as number;
    (out[lane] as Uint32Array)[slot] = i;
    at[lane] = slot + 1;
  }
  return out;
}

/** Every event of a batch, in order (strict ordering: one lane). */
export function allEvents(count: number): Uint32Array {
  const all = new Uint32Array(count);
  for (let i = 0; i < count; i++) all[i] = i;
  return all;
}

/**
 * Where the request starting at `events[from]` ends (exclusive): at most `maxEvents` events and
 * `maxBytes` bytes of lines, and at least one event.
 */
export function requestEnd(
  batch: EventBatch,
  events: Uint32Array,
  from: number,
  maxEvents: number,
  maxBytes: number,
): number {
  const last = Math.min(events.length, from + maxEvents);
  let bytes = 0;
  let to = from;
  while (to < last) {
    const i = events[to] as number;
    bytes += batch.end(i) - batch.start(i);
    if (bytes > maxBytes && to > from) break;
    to++;
  }
  return to;
}

/** The body of the request carrying `events[from, to)` of `batch`. */
export function requestBody(
  batch: EventBatch,
  events: Uint32Array,
  from: number,
  to: number,
  format: HttpFormat,
): Buffer {
  const data = batch.data;
  const first = events[from] as number;
  const last = events[to - 1] as number;
  const contiguous = last - first === to - from - 1;
  const arrayBody = format === 'json-array';
  let body: Buffer;
  let offset = arrayBody ? 1 : 0;
  if (contiguous) {
    const start = batch.start(first);
    const end = batch.end(last);
    if (!arrayBody) return data.subarray(start, end);
    body = Buffer.allocUnsafe(end - start + 1);
    data.copy(body, 1, start, end);
    // Each line's newline becomes the separator: event i's newline is at end(i) - 1 in the slab.
    offset = 1 - start;
    for (let k = first; k <= last; k++) body[batch.end(k) - 1 + offset] = COMMA;
  } else {
    let size = arrayBody ? 1 : 0;
    for (let k = from; k < to; k++) {
      const i = events[k] as number;
      size += batch.end(i) - batch.start(i);
    }
    body = Buffer.allocUnsafe(size);
    let at = offset;
    for (let k = from; k < to; k++) {
      const i = events[k] as number;
      at += data.copy(body, at, batch.start(i), batch.end(i));
      if (arrayBody) body[at - 1] = COMMA;
    }
  }
  if (arrayBody) {
    body[0] = OPEN_BRACKET;
    body[body.length - 1] = CLOSE_BRACKET;
  }
  return body;
}
