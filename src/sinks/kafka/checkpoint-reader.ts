/**
 * Reads the latest committed checkpoint of one capture from the offsets topic. The topic is
 * compacted and has one partition; several captures (slots) may share it, each under its own key.
 * Reading starts near the end and steps back until the capture's key is found, so a long
 * uncompacted tail costs little.
 *
 * Only committed records count: a checkpoint of an aborted transaction (a pgcdc killed before its
 * commit, its transaction aborted by the next one) would resume past events Kafka discarded. The
 * partition is read uncommitted up to its high watermark and each transactional record is decided
 * by its producer's next control marker (commit or abort), as the broker itself decides; a record
 * with no marker yet belongs to an open transaction and does not count. The client library's own
 * read_committed filter is not used: it keeps one aborted range per producer, from the last listed
 * aborted transaction to the producer's last abort marker, and an abort marker of a transaction that
 * added the partition but wrote nothing to it (pgcdc killed between the two) stretched that range over
 * committed checkpoints, which then went unseen (a stale checkpoint, refused as OFFSETS_DIVERGED).
 */
import { Admin, Consumer, FetchIsolationLevels, type RecordsBatch } from '@platformatic/kafka';
import { CdcError } from '../../core/errors.ts';
import type { KafkaConnection } from './client.ts';

const WINDOW = 1000n;
const TRANSACTIONAL = 0x10;
const CONTROL = 0x20;
const ABORT_MARKER = 0;

type Fetcher = Consumer<Buffer, Buffer, Buffer, Buffer>;

export async function readLatestCheckpoint(
  connection: KafkaConnection,
  topic: string,
  key: Buffer,
): Promise<string | undefined> {
  const admin = new Admin({ ...connection, retries: 2 });
  try {
    if (!(await admin.listTopics()).includes(topic)) return undefined;
  } finally {
    await admin.close();
  }
  const consumer: Fetcher = new Consumer({ ...connection, groupId: 'pgcdc-checkpoint-reader', retries: 2 });
  try {
    const described = (await consumer.metadata({ topics: [topic] })).topics.get(topic);
    const partition = described?.partitions[0];
    if (!described || !partition) return undefined;
    const ends = await consumer.listOffsets({
      topics: [topic],
      isolationLevel: FetchIsolationLevels.READ_UNCOMMITTED,
    });
    const end = ends.get(topic)?.[0] ?? 0n;
    const starts = await consumer.listOffsets({ topics: [topic], timestamp: -2n });
    const start = starts.get(topic)?.[0] ?? 0n;
    let from = end - WINDOW > start ? end - WINDOW : start;
    let upTo = end;
    while (upTo > start) {
      const found = await lastWithKey(consumer, described.id, partition.leader, key, { from, upTo, end });
      if (found !== undefined) return found;
      upTo = from;
      from = from - WINDOW * 4n > start ? from - WINDOW * 4n : start;
    }
    return undefined;
  } finally {
    await consumer.close();
  }
}

/**
 * The value of the last committed record with `key` at an offset in [from, upTo), or undefined. Reads
 * on to `end` (the high watermark) for the control markers that decide the transactions.
 */
async function lastWithKey(
  consumer: Fetcher,
  topicId: string,
  leader: number,
  key: Buffer,
  range: { readonly from: bigint; readonly upTo: bigint; readonly end: bigint },
): Promise<string | undefined> {
  let latest: { offset: bigint; value: string } | undefined;
  const take = (offset: bigint, value: string): void => {
    if (latest === undefined || offset > latest.offset) latest = { offset, value };
  };
  /** Per producer id, its records with `key` waiting for their transaction's marker. */
  const pending = new Map<bigint, { offset: bigint; value: string }[]>();
  let next = range.from;
  while (next < range.end) {
    const response = await consumer.fetch({
      node: leader,
      maxWaitTime: 100,
      maxBytes: 16 * 1024 * 1024,
      isolationLevel: FetchIsolationLevels.READ_UNCOMMITTED,
      topics: [
        {
          topicId,
          partitions: [
            {
              partition: 0,
              currentLeaderEpoch: -1,
              fetchOffset: next,
              lastFetchedEpoch: -1,
              partitionMaxBytes: 16 * 1024 * 1024,
            },
          ],
        },
      ],
    });
    const answer = response.responses[0]?.partitions[0];
    if (!answer) break;
    if (answer.errorCode !== 0)
      throw new CdcError('SINK_FAILED', `reading the offsets topic failed with Kafka error ${answer.errorCode}`, {
        retryable: true,
      });
    const batches = answer.records ?? [];
    if (batches.length === 0) break;
    for (const batch of batches) {
      const last = batch.firstOffset + BigInt(batch.lastOffsetDelta);
      if (last < next) continue;
      next = last + 1n;
      if (batch.attributes & CONTROL) {
        const decided = pending.get(batch.producerId);
        pending.delete(batch.producerId);
        if (decided !== undefined && !isAbortMarker(batch))
          for (const record of decided) take(record.offset, record.value);
        continue;
      }
      for (const record of batch.records) {
        const offset = batch.firstOffset + BigInt(record.offsetDelta);
        if (offset < range.from || offset >= range.upTo) continue;
        if (record.key === null || !key.equals(record.key) || record.value === null) continue;
        const value = record.value.toString('utf8');
        if (batch.attributes & TRANSACTIONAL) {
          const list = pending.get(batch.producerId);
          if (list === undefined) pending.set(batch.producerId, [{ offset, value }]);
          else list.push({ offset, value });
        } else take(offset, value);
      }
    }
  }
  return latest?.value;
}

function isAbortMarker(batch: RecordsBatch): boolean {
  const marker = batch.records[0]?.key;
  return marker !== null && marker !== undefined && marker.length >= 4 && marker.readInt16BE(2) === ABORT_MARKER;
}
