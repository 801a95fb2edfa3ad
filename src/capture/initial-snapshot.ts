/**
 * The initial snapshot: every row that exists at the slot's consistent point, read through the
 * snapshot the slot exported, delivered as op 'r' events before streaming starts from that same
 * point. Nothing is lost or delivered twice across the hand-off: the snapshot shows exactly the
 * transactions committed before the consistent point, and the slot streams exactly those after it.
 *
 * Not resumable yet at chunk level: the exported snapshot dies with its connection, so a crash in
 * the middle restarts the snapshot on a fresh slot (see Capture). Chunk-level resume comes with
 * the incremental (watermark) method.
 */
import { readSnapshot, type SnapshotChunk } from '../backfill/snapshot.ts';
import { backfillTableSchema } from '../backfill/keys.ts';
import type { ExportedSlot } from '../backfill/export.ts';
import type { Config } from '../config.ts';
import type { Logger } from '../log.ts';
import { formatLsn } from '../protocol/lsn.ts';
import { openConnection, type SourceEndpoint } from '../postgres/connect.ts';
import type { TableRef } from '../postgres/catalog.ts';
import { TableSerializer, type TopicNaming } from '../envelope/json.ts';
import { EventBatchBuilder, TopicRegistry } from '../sinks/batch.ts';
import type { Sink, SinkPosition } from '../sinks/sink.ts';
import type { PgType } from '../source/values.ts';
import type { TupleData } from '../protocol/messages.ts';

export interface InitialSnapshotInput {
  readonly exported: ExportedSlot;
  readonly tables: readonly TableRef[];
  readonly config: Config;
  readonly endpoint: SourceEndpoint;
  readonly major: number;
  readonly types: ReadonlyMap<number, PgType>;
  readonly naming: TopicNaming;
  readonly sink: Sink;
  readonly log: Logger;
}

/** Reads and delivers the snapshot; resolves with the sink position after its last event. */
export async function takeInitialSnapshot(input: InitialSnapshotInput): Promise<SinkPosition | undefined> {
  const { exported, config, log } = input;
  const lsn = exported.consistentPoint;
  const lsnText = formatLsn(lsn);
  const registry = new TopicRegistry();
  const serializers = new Map<string, { serializer: TableSerializer; index: number }>();
  const tableIndex = new Map(input.tables.map((t, i) => [`${t.schema}.${t.table}`, i]));
  let position: SinkPosition | undefined;
  let total = 0;
  const started = Date.now();

  const serializerFor = (chunk: SnapshotChunk): { serializer: TableSerializer; index: number } => {
    const key = `${chunk.table.schema}.${chunk.table.table}`;
    let found = serializers.get(key);
    if (!found) {
      const schema = backfillTableSchema(chunk.table, (oid) => input.types.get(oid), config.values);
      found = { serializer: new TableSerializer(schema, input.naming, registry), index: tableIndex.get(key) ?? serializers.size };
      serializers.set(key, found);
    }
    return found;
  };

  // The snapshot's final row is marked "last", but the last chunk may well be empty: so the most
  // recent row is always held back and written with the next chunk, or at the end as "last".
  let held: { serializer: TableSerializer; row: TupleData; id: string } | undefined;
  const writeRow = (builder: EventBatchBuilder, serializer: TableSerializer, row: TupleData, id: string, marker: 'true' | 'last', now: number): void => {
    builder.startEvent();
    serializer.writeRead(builder, row, id, marker, lsn, lsnText, now);
    builder.endEvent(serializer.topicNumber);
  };

  const onChunk = async (chunk: SnapshotChunk): Promise<void> => {
    const { serializer, index } = serializerFor(chunk);
    const builder = new EventBatchBuilder(registry);
    const first = chunk.tableRows - chunk.rows.length;
    const now = Date.now();
    chunk.rows.forEach((row, i) => {
      if (held) writeRow(builder, held.serializer, held.row, held.id, 'true', now);
      held = { serializer, row, id: `${lsnText}:r:${index}:${first + i}` };
    });
    if (builder.count > 0) position = await input.sink.write(builder.take(builder.count));
    total += chunk.rows.length;
    if (chunk.cursor.done) {
      log.info({ table: `${chunk.table.schema}.${chunk.table.table}`, rows: chunk.tableRows }, 'snapshot: table read');
    }
  };

  log.info({ tables: input.tables.length, at: lsnText, parallelism: config.snapshot.parallelism }, 'snapshot: reading the existing rows');
  await readSnapshot({
    snapshotName: exported.snapshotName,
    tables: input.tables.map((t) => ({ schema: t.schema, table: t.table })),
    major: input.major,
    connect: () => openConnection(input.endpoint, 'query', 'pgcdc-snapshot'),
    chunkRows: config.snapshot.chunkSize,
    parallelism: config.snapshot.parallelism,
    onChunk,
  });
  if (held) {
    const builder = new EventBatchBuilder(registry);
    writeRow(builder, held.serializer, held.row, held.id, 'last', Date.now());
    position = await input.sink.write(builder.take(builder.count));
  }
  const seconds = Math.max(0.001, (Date.now() - started) / 1000);
  log.info({ rows: total, seconds: Number(seconds.toFixed(2)), rowsPerSecond: Math.round(total / seconds) }, 'snapshot: done, streaming from its consistent point');
  return position;
}
