/**
 * The SinkReader of the JSONL sink (sinks/jsonl/): one append-only file per topic in a directory.
 * The durable bytes of every file are the checkpoint's sink position (`{ files: { topic: bytes } }`,
 * stored after the sink fsynced them): lines past that length are a torn tail or a batch whose
 * checkpoint was not stored (the sink cuts them at its next start), so they are never read.
 */
import { open } from 'node:fs/promises';
import path from 'node:path';
import type { Lsn } from '../protocol/messages.ts';
import { emptyScan, scanEventLine } from './event-scan.ts';
import { applyEvent, type ReplayOutcome, type ReplayTable, type SinkReader } from './sink-reader.ts';
import type { TableState } from './sink-state.ts';

const READ_BYTES = 8 * 1024 * 1024;
const NEWLINE = 0x0a;

export interface JsonlReaderOptions {
  /** The sink's directory (`sink.out`). */
  readonly dir: string;
  /** Durable length of each topic's file, from the checkpoint's sink position. */
  readonly durable: ReadonlyMap<string, number>;
  /** The file name of a topic (sinks/jsonl jsonlFileName), passed in: only the CLI picks sink kinds. */
  readonly fileName: (topic: string) => string;
}

export class JsonlSinkReader implements SinkReader {
  readonly kind = 'jsonl';
  private readonly options: JsonlReaderOptions;

  constructor(options: JsonlReaderOptions) {
    this.options = options;
  }

  async replayTable(table: ReplayTable, upTo: Lsn, state: TableState): Promise<ReplayOutcome> {
    const durable = this.options.durable.get(table.topic);
    const file = path.join(this.options.dir, this.options.fileName(table.topic));
    if (durable === undefined)
      return { kind: 'absent', detail: `the checkpoint lists no file for topic ${table.topic}` };
    let handle;
    try {
      handle = await open(file, 'r');
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code === 'ENOENT')
        return { kind: 'absent', detail: `${file} does not exist (the checkpoint lists ${durable} bytes)` };
      throw cause;
    }
    const counters = { events: 0, later: 0, malformed: 0 };
    let damage: string | undefined;
    try {
      const size = (await handle.stat()).size;
      const limit = Math.min(size, durable);
      if (size < durable) damage = `${file} holds ${size} bytes, its checkpoint ${durable}`;
      const scan = emptyScan();
      let carry: Buffer | undefined;
      let position = 0;
      const buffer = Buffer.allocUnsafe(READ_BYTES);
      while (position < limit) {
        const { bytesRead } = await handle.read(buffer, 0, Math.min(READ_BYTES, limit - position), position);
        if (bytesRead === 0) break;
        position += bytesRead;
        let data = buffer.subarray(0, bytesRead);
        if (carry !== undefined) {
          data = Buffer.concat([carry, data]);
          carry = undefined;
        }
        let start = 0;
        for (let nl = data.indexOf(NEWLINE, start); nl >= 0; nl = data.indexOf(NEWLINE, start)) {
          if (nl > start) {
            if (!scanEventLine(data, start, nl, table.format, scan)) counters.malformed++;
            else if (scan.lsn >= upTo) counters.later++;
            else {
              counters.events++;
              applyEvent(table, state, data, scan);
            }
          }
          start = nl + 1;
        }
        if (start < data.length) carry = Buffer.from(data.subarray(start));
      }
      // The sink stores whole lines: a durable length never ends inside one.
      if (carry !== undefined && carry.length > 0) counters.malformed++;
    } finally {
      await handle.close();
    }
    return { kind: 'replayed', ...counters, damage };
  }
}
