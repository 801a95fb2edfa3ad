/**
 * A snapshot chunk's rows as read events (op 'r'), written straight from its COPY bytes: the one loop
 * the main thread (initial.ts) and the serializer threads (serializer-thread.ts) both run, so their
 * output is the same bytes.
 */
import { readIdHead, type TableSerializer } from '../envelope/json.ts';
import type { EventBatchBuilder } from '../sinks/batch-builder.ts';
import type { CopyRowCursor } from '../source/copy-row.ts';

/** Where a chunk's events stand: its table's position in the snapshot and its first row's ordinal (the event ids). */
export interface ChunkReads {
  readonly tableIndex: number;
  readonly firstOrdinal: number;
  readonly rowCount: number;
  /** The chunk's last row is the snapshot's last: its source.snapshot is "last". */
  readonly last: boolean;
  /** The position read events stand at (the slot's consistent point) and its text. */
  readonly lsn: number;
  readonly lsnText: string;
}

/** Writes one read event per row of `rows` (reset to the chunk) into `builder`. */
export function writeChunkReads(
  builder: EventBatchBuilder,
  serializer: TableSerializer,
  rows: CopyRowCursor,
  chunk: ChunkReads,
): void {
  const now = Date.now();
  const idHead = readIdHead(`${chunk.lsnText}:r:${chunk.tableIndex}:`);
  const tail = serializer.readTail('true', chunk.lsn, chunk.lsnText, now);
  const lastTail = chunk.last ? serializer.readTail('last', chunk.lsn, chunk.lsnText, now) : tail;
  const n = chunk.rowCount;
  for (let i = 0; rows.next(); i++) {
    builder.startEvent();
    serializer.writeRead(builder, rows, idHead, chunk.firstOrdinal + i, i === n - 1 ? lastTail : tail);
    builder.endEvent(serializer.topicNumber);
  }
}
