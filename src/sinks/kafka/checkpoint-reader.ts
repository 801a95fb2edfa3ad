/**
 * Reads the latest committed checkpoint of one capture from the offsets topic. The topic is
 * compacted and has one partition; several captures (slots) may share it, each under its own key.
 * Reading starts near the end and steps back until the capture's key is found, so a long
 * uncompacted tail costs little.
 *
 * Only committed records count: a checkpoint of an aborted transaction (a pgcdc killed before its
 * commit, its transaction aborted by the next one) would resume past events Kafka discarded. The
 * fetch asks for read_committed and this module applies the aborted-transaction ranges the broker
 * returns itself, as Kafka's Java consumer does: the client library's own filter keeps only the last
 * aborted range per producer, and pgcdc's producer keeps its id across restarts.
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
    const ends = await consumer.listOffsets({ topics: [topic], isolationLevel: FetchIsolationLevels.READ_COMMITTED });
    const end = ends.get(topic)?.[0] ?? 0n;
    const starts = await consumer.listOffsets({ topics: [topic], timestamp: -2n });
    const start = starts.get(topic)?.[0] ?? 0n;
    let from = end - WINDOW > start ? end - WINDOW : start;
    let upTo = end;
    while (upTo > start) {
      const found = await lastWithKey(consumer, described.id, partition.leader, key, from, upTo);
      if (found !== undefined) return found;
      upTo = from;
      from = from - WINDOW * 4n > start ? from - WINDOW * 4n : start;
    }
    return undefined;
  } finally {
    await consumer.close();
  }
}

/** The value of the last committed record with `key` in [from, upTo), or undefined. */
async function lastWithKey(
  consumer: Fetcher,
  topicId: string,
  leader: number,
  key: Buffer,
  from: bigint,
  upTo: bigint,
): Promise<string | undefined> {
  let latest: string | undefined;
  let next = from;
  while (next < upTo) {
    const response = await consumer.fetch({
      node: leader,
      maxWaitTime: 100,
      maxBytes: 16 * 1024 * 1024,
      isolationLevel: FetchIsolationLevels.READ_COMMITTED,
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
    const aborted = [...answer.abortedTransactions].sort((a, b) => (a.firstOffset < b.firstOffset ? -1 : 1));
    const abortedProducers = new Set<bigint>();
    for (const batch of batches) {
      const last = batch.firstOffset + BigInt(batch.lastOffsetDelta);
      while (aborted.length > 0 && (aborted[0]?.firstOffset ?? last + 1n) <= last)
        abortedProducers.add((aborted.shift() as { producerId: bigint }).producerId);
      next = last + 1n;
      if (batch.firstOffset < from) continue;
      if (batch.attributes & CONTROL) {
        if (isAbortMarker(batch)) abortedProducers.delete(batch.producerId);
        continue;
      }
      if (batch.attributes & TRANSACTIONAL && abortedProducers.has(batch.producerId)) continue;
      for (const record of batch.records) {
        const offset = batch.firstOffset + BigInt(record.offsetDelta);
        if (offset >= upTo) break;
        if (record.key !== null && key.equals(record.key) && record.value !== null)
          latest = record.value.toString('utf8');
      }
    }
  }
  return latest;
}

function isAbortMarker(batch: RecordsBatch): boolean {
  const marker = batch.records[0]?.key;
  return marker !== null && marker !== undefined && marker.length >= 4 && marker.readInt16BE(2) === ABORT_MARKER;
}
