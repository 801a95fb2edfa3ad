/**
 * The DBLog watermark window (Andreas Andreakis and Ioannis Papapanagiotou, "DBLog: A Watermark
 * Based Change-Data-Capture Framework", 2020), as a pure class: no I/O, no clock.
 *
 * The algorithm, per chunk of one table:
 *   1. write a low watermark L into the log;
 *   2. read the chunk (the next `chunkSize` rows in key order) with an ordinary query;
 *   3. write a high watermark H into the log;
 *   4. while streaming, log events keep flowing to the sink unchanged. Between L and H, every key
 *      a log event of the chunk's table names is noted; when H arrives, the chunk rows whose key was
 *      noted are dropped and the rest (the survivors) are emitted right there, before any log
 *      event after H.
 * Why it is correct: a survivor's key had no log event between L and H, so its value did not change
 * between the read and H, and emitting it at H is as if it had been read at H. A dropped row's key
 * did change in the window, and that change (with its newer value, or the delete) is already in the
 * output; the read value is stale or would resurrect a deleted row. Changes after H follow in the
 * log. So replaying the output in order gives the table's state, which test/unit/backfill/window.test.ts
 * checks for random interleavings.
 *
 * Keys are compared exactly as strings: the caller passes the JSON text of the event key
 * (snapshot/keys.ts builds it from the same encoders for log tuples and chunk rows, and the server
 * prints the same text for both; see test/integration/backfill-query.test.ts).
 *
 * What the caller must report: for inserts and deletes the row's key; for an update the new key,
 * and the old key too when the update changed the key (pgoutput then sends the old key tuple);
 * a truncate of the table; and `unknown-key` when an event's key cannot be known (a keyless
 * table, or a key column sent as an unchanged TOAST value). A truncate drops the whole chunk (every
 * row read was deleted by it); an unknown key makes the window ask for the chunk to be read again,
 * because no row can be proven unchanged.
 */
import { CdcError } from '../core/errors.ts';

/** A log event of the window's table, between the low and the high watermark. */
export type WindowEvent =
  /** An insert, update or delete: every key it names (old and new key of a key-changing update). */
  | { readonly kind: 'change'; readonly keys: readonly string[] }
  | { readonly kind: 'truncate' }
  /** A change whose key is not known: no chunk row can be proven unchanged. */
  | { readonly kind: 'unknown-key' };

export type WindowResult<R> =
  /** Emit `survivors` (in chunk order) at the high watermark; the cursor may advance past the chunk. */
  | { readonly kind: 'emit'; readonly survivors: R[]; readonly dropped: number }
  /** Emit nothing; read the same chunk again in a new window (the cursor must not advance). */
  | { readonly kind: 'retry'; readonly reason: string };

type State = 'open' | 'closed';

/**
 * One window: open from the low watermark to the high one. Feed it the table's log events in log
 * order with `observe` and the chunk with `setChunk` (once, in any order relative to the events;
 * the chunk is read after L is written and before H is, so it is always there by H), then `close`
 * at the high watermark.
 */
export class ChunkWindow<R> {
  private readonly keyOf: (row: R) => string;
  private state: State = 'open';
  /** Keys named by log events that arrived before the chunk. */
  private readonly changedKeys = new Set<string>();
  /** The chunk rows by key, once set; log events after that delete from it directly. */
  private chunk: Map<string, R> | undefined;
  private chunkSize = 0;
  private truncated = false;
  private unknown = false;

  constructor(keyOf: (row: R) => string) {
    this.keyOf = keyOf;
  }

  get isOpen(): boolean {
    return this.state === 'open';
  }

  observe(event: WindowEvent): void {
    this.assertOpen('observe');
    switch (event.kind) {
      case 'change':
        for (const key of event.keys) {
          if (this.chunk !== undefined) this.chunk.delete(key);
          else this.changedKeys.add(key);
        }
        return;
      case 'truncate':
        this.truncated = true;
        return;
      case 'unknown-key':
        this.unknown = true;
        return;
      default: {
        const never: never = event;
        throw new CdcError('INTERNAL', `unknown window event ${JSON.stringify(never)}`);
      }
    }
  }

  /** The rows read between the watermarks, in key order. Keys must be distinct. */
  setChunk(rows: readonly R[]): void {
    this.assertOpen('setChunk');
    if (this.chunk !== undefined) throw new CdcError('INTERNAL', 'a window got its chunk twice');
    const byKey = new Map<string, R>();
    for (const row of rows) {
      const key = this.keyOf(row);
      if (byKey.has(key)) throw new CdcError('INTERNAL', `a chunk holds the key ${key} twice`);
      byKey.set(key, row);
    }
    this.chunkSize = rows.length;
    for (const key of this.changedKeys) byKey.delete(key);
    this.changedKeys.clear();
    this.chunk = byKey;
  }

  /** The high watermark arrived. Map insertion order is the chunk order, so survivors stay in key order. */
  close(): WindowResult<R> {
    this.assertOpen('close');
    this.state = 'closed';
    if (this.chunk === undefined)
      throw new CdcError('INTERNAL', 'the high watermark arrived before the chunk was read');
    if (this.unknown) return { kind: 'retry', reason: 'a change in the window had no usable key' };
    // After a truncate in the window every row the read saw was either deleted by it (read before
    // it) or inserted in the window (read after it, so its insert is in the log): none survives.
    const survivors = this.truncated ? [] : [...this.chunk.values()];
    return { kind: 'emit', survivors, dropped: this.chunkSize - survivors.length };
  }

  private assertOpen(what: string): void {
    if (this.state !== 'open') throw new CdcError('INTERNAL', `${what} on a closed window`);
  }
}

/** The window as one function: `events` in log order, all between the watermarks. */
export function reconcileChunk<R>(
  rows: readonly R[],
  keyOf: (row: R) => string,
  events: Iterable<WindowEvent>,
): WindowResult<R> {
  const window = new ChunkWindow(keyOf);
  window.setChunk(rows);
  for (const event of events) window.observe(event);
  return window.close();
}
