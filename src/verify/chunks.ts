/**
 * The chunked comparison of a keyed table (verify.ts): both sides reduce their rows to per-chunk
 * accumulators, a row count and a 64-bit checksum per chunk; chunks whose count and checksum are
 * equal hold the same rows; only the others are drilled into key by key (compare.ts).
 *
 * Chunks are buckets of the key hash, not ranges of key values: a key is any list of columns of
 * any type (text with collations, composite keys, numerics), and the source is read in one
 * sequential scan in no order, the sink in file order. Buckets need neither side sorted and no
 * knowledge of the key's type, and they split any table evenly. What a key range would buy, a
 * narrower re-read of the source for a drill-down, matters only when chunks differ; an equal table
 * (the common case) costs one pass per side either way.
 *
 * The checksum of a chunk: the sum, in two independent 32-bit lanes (mod 2^32), of a mix of each
 * row's key hash and row hash. A sum, not a xor, so that it is a multiset checksum. For a fixed key
 * each lane's mix is a bijection of one half of the row hash, so one row that differs always
 * changes its chunk's checksum; several differences in one chunk cancel with probability ~2^-64.
 * A row hash itself differs for different rows except with probability ~2^-53 (hash.ts).
 *
 * The sink side replays events (a key written many times leaves its last row), so it needs the
 * last row hash of every key before summing: RowHashTable, an open-addressing table of key hash ->
 * row hash in two Float64Arrays (16 bytes a slot, under 32 bytes a key) instead of a Map of key
 * strings. Two keys with the same 53-bit key hash (probability ~n^2 / 2^54 for a whole table) share
 * a slot there: their chunk then looks different and the drill-down, which compares the keys
 * themselves, finds them equal. Never the other way round.
 */
import { hashBytes } from './hash.ts';

const TWO_POW_32 = 0x1_0000_0000;
/** Keys per chunk aimed at. */
export const KEYS_PER_CHUNK = 10_000;
const MAX_CHUNKS = 1 << 16;

/** The number of chunks for a table of about `rows` rows: a power of two, 1 to 65536. */
export function chunkCountFor(rows: number): number {
  let chunks = 1;
  while (chunks < MAX_CHUNKS && chunks * KEYS_PER_CHUNK < rows) chunks *= 2;
  return chunks;
}

/** The key hash of a key's bytes (never 0: the table's empty mark). */
export function keyHashOf(data: Uint8Array, start: number, end: number): number {
  return hashBytes(data, start, end) || 1;
}

/** The chunk of a key hash among `chunks` (a power of two): its low bits. */
export function chunkOf(keyHash: number, chunks: number): number {
  return (keyHash >>> 0) & (chunks - 1);
}

function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Row counts and checksums per chunk. */
export class ChunkSums {
  readonly chunks: number;
  readonly counts: Float64Array;
  private readonly lane1: Uint32Array;
  private readonly lane2: Uint32Array;
  total = 0;

  constructor(chunks: number) {
    this.chunks = chunks;
    this.counts = new Float64Array(chunks);
    this.lane1 = new Uint32Array(chunks);
    this.lane2 = new Uint32Array(chunks);
  }

  /** Adds one row: its key hash and row hash (53-bit numbers, hash.ts). */
  add(keyHash: number, rowHash: number): void {
    const chunk = (keyHash >>> 0) & (this.chunks - 1);
    const keyLow = keyHash >>> 0;
    const keyHigh = (keyHash / TWO_POW_32) >>> 0;
    const rowLow = rowHash >>> 0;
    const rowHigh = (rowHash / TWO_POW_32) >>> 0;
    // fmix is a bijection: for one key, lane 1 determines rowLow and lane 2 rowHigh.
    this.lane1[chunk] = ((this.lane1[chunk] as number) + fmix(rowLow ^ Math.imul(keyLow, 0x9e3779b1) ^ keyHigh)) >>> 0;
    this.lane2[chunk] =
      ((this.lane2[chunk] as number) + fmix(rowHigh ^ Math.imul(keyHigh ^ 0x5bd1e995, 0x27d4eb2f) ^ fmix(keyLow))) >>>
      0;
    this.counts[chunk] = (this.counts[chunk] as number) + 1;
    this.total++;
  }

  /** Whether chunk `i` holds the same count and checksum in both. */
  sameChunk(other: ChunkSums, i: number): boolean {
    return this.counts[i] === other.counts[i] && this.lane1[i] === other.lane1[i] && this.lane2[i] === other.lane2[i];
  }

  /** The chunks that differ from `other` (same chunk count), in chunk order. */
  differing(other: ChunkSums): number[] {
    if (other.chunks !== this.chunks) throw new Error('chunk counts differ');
    const list: number[] = [];
    for (let i = 0; i < this.chunks; i++) if (!this.sameChunk(other, i)) list.push(i);
    return list;
  }
}

const EMPTY = 0;
const DELETED = -1;

/**
 * The sink side's first pass: key hash -> last row hash, replayed in event order (set, delete,
 * clear), in typed arrays with linear probing. Deleted slots are marked and reused; the table is
 * rebuilt when marks and keys fill 5/8 of it.
 */
export class RowHashTable {
  readonly keyed = true;
  readonly hashed = true;
  private keys: Float64Array;
  private rows: Float64Array;
  private mask: number;
  private used = 0;
  size = 0;

  constructor(capacity = 1 << 16) {
    let slots = 1 << 4;
    while (slots < capacity) slots *= 2;
    this.keys = new Float64Array(slots);
    this.rows = new Float64Array(slots);
    this.mask = slots - 1;
  }

  private slotOf(keyHash: number): number {
    return (Math.imul(keyHash >>> 0, 0x9e3779b1) ^ ((keyHash / TWO_POW_32) >>> 0)) & this.mask;
  }

  set(keyHash: number, rowHash: number): void {
    const keys = this.keys;
    let i = this.slotOf(keyHash);
    let free = -1;
    for (;;) {
      const k = keys[i] as number;
      if (k === keyHash) {
        this.rows[i] = rowHash;
        return;
      }
      if (k === EMPTY) break;
      if (k === DELETED && free < 0) free = i;
      i = (i + 1) & this.mask;
    }
    if (free >= 0) i = free;
    else this.used++;
    keys[i] = keyHash;
    this.rows[i] = rowHash;
    this.size++;
    if (this.used * 8 > (this.mask + 1) * 5) this.rebuild();
  }

  delete(keyHash: number): void {
    const keys = this.keys;
    for (let i = this.slotOf(keyHash); ; i = (i + 1) & this.mask) {
      const k = keys[i] as number;
      if (k === EMPTY) return;
      if (k === keyHash) {
        keys[i] = DELETED;
        this.size--;
        return;
      }
    }
  }

  /** The row hash of a key hash, or undefined. */
  get(keyHash: number): number | undefined {
    const keys = this.keys;
    for (let i = this.slotOf(keyHash); ; i = (i + 1) & this.mask) {
      const k = keys[i] as number;
      if (k === EMPTY) return undefined;
      if (k === keyHash) return this.rows[i];
    }
  }

  clear(): void {
    this.keys.fill(EMPTY);
    this.used = 0;
    this.size = 0;
  }

  /** Twice as large when more than half is keys, else the same size without deleted marks. */
  private rebuild(): void {
    const oldKeys = this.keys;
    const oldRows = this.rows;
    const slots = this.size * 2 > this.mask + 1 ? (this.mask + 1) * 2 : this.mask + 1;
    this.keys = new Float64Array(slots);
    this.rows = new Float64Array(slots);
    this.mask = slots - 1;
    this.used = 0;
    this.size = 0;
    for (let i = 0; i < oldKeys.length; i++) {
      const k = oldKeys[i] as number;
      if (k !== EMPTY && k !== DELETED) this.set(k, oldRows[i] as number);
    }
  }

  /** The per-chunk sums of the keys held. */
  sums(chunks: number): ChunkSums {
    const sums = new ChunkSums(chunks);
    const keys = this.keys;
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i] as number;
      if (k !== EMPTY && k !== DELETED) sums.add(k, this.rows[i] as number);
    }
    return sums;
  }
}
