/**
 * The snapshot's serializer thread (snapshot/serializer-pool.ts starts one per reader): turns a
 * chunk of COPY text into the chunk's event lines, exactly as snapshot/initial.ts does on the main
 * thread (the same TableSerializer, cursor and builder), and hands the bytes back without a copy.
 *
 * Why a thread: serializing a narrow row costs about 0.5 µs, half of pgcdc's CPU per snapshot row;
 * on the main thread it capped the snapshot near one million rows/s however many readers ran
 * (docs/benchmarks.md). Everything here is plain data from the main thread (the setup as
 * workerData, one message per chunk), so the output is byte for byte the main thread's.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { TableSerializer } from '../envelope/json.ts';
import { TopicRegistry } from '../sinks/batch.ts';
import { EventBatchBuilder } from '../sinks/batch-builder.ts';
import { CopyRowCursor } from '../source/copy-row.ts';
import type { PgType } from '../source/values.ts';
import { backfillTableSchema } from './keys.ts';
import { tableKey } from './range-planner.ts';
import { writeChunkReads } from './chunk-reads.ts';
import type { SerializeJob, SerializedChunk, SerializerSetup } from './serializer-pool.ts';

const setup = workerData as SerializerSetup;
const types = new Map<number, PgType>(setup.types);
const registry = new TopicRegistry();
const tables = new Map<string, { serializer: TableSerializer; cursor: CopyRowCursor }>();
const builder = new EventBatchBuilder(registry, 16 << 20, 65_536);
/** Slabs the main thread handed back once it had copied their lines. */
const spares: Buffer[] = [];

function serialize(job: SerializeJob): SerializedChunk {
  const key = tableKey(job.table);
  let table = tables.get(key);
  if (table === undefined) {
    const schema = backfillTableSchema(job.table, (oid) => types.get(oid), setup.values);
    table = {
      serializer: new TableSerializer(schema, setup.naming, registry),
      cursor: new CopyRowCursor(job.table.columns.length),
    };
    tables.set(key, table);
  }
  const { serializer, cursor } = table;
  cursor.reset(Buffer.from(job.data.buffer, job.data.byteOffset, job.data.byteLength));
  writeChunkReads(builder, serializer, cursor, { ...job, lsn: setup.lsn, lsnText: setup.lsnText });
  // The slab goes to the main thread whole; the next chunk fills one it handed back (`recycle`), as
  // filling fresh memory each time cost more than the serializing (page faults on first touch).
  const lines = builder.handOverLines(spares.pop());
  return { id: job.id, data: lines.data, ends: lines.ends, rows: lines.count };
}

const port = parentPort;
if (port === null) throw new Error('snapshot/serializer-thread.ts runs as a worker thread only');
port.on('message', (job: SerializeJob | { readonly recycle: ArrayBuffer }) => {
  if ('recycle' in job) {
    if (spares.length < 4) spares.push(Buffer.from(job.recycle));
    return;
  }
  let done: SerializedChunk;
  try {
    done = serialize(job);
  } catch (error) {
    port.postMessage({ id: job.id, error: error instanceof Error ? (error.stack ?? error.message) : String(error) });
    return;
  }
  const transfer: ArrayBuffer[] = [done.ends.buffer as ArrayBuffer];
  if (done.data.byteOffset === 0) transfer.push(done.data.buffer as ArrayBuffer);
  port.postMessage(done, transfer);
});
