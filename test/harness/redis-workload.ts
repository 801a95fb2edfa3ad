/**
 * Helpers for the Redis sink's end-to-end tests: the `pgcdc run` arguments for `--sink redis`, the
 * events in the streams (XRANGE, stream order per key), and the verdict of replaying them onto an
 * empty map against the source table: lost, extra, mismatched, and the duplicates a consumer drops
 * by the entries' `id` field.
 */
import type pg from 'pg';
import { compareRows, replay, type DeliveredEvent } from './cli.ts';
import { slotOf } from './kafka-workload.ts';
import type { TestDatabase } from './pg.ts';
import { readStream, streamKeys, type RedisServer } from './redis.ts';

export { awaitStreaming, slotCaughtUp, slotConfirmed, writeRunConfig } from './kafka-workload.ts';

export interface RedisRun {
  db: TestDatabase;
  /** `--redis-url` */
  url: string;
  offsets: string;
  /** Comma-separated `--tables`. */
  tables?: string;
  config?: string;
  extra?: readonly string[];
}

export function redisRunArgs(run: RedisRun): string[] {
  // prettier-ignore
  return [
    'run', '--source', run.db.url, '--slot', slotOf(run.db), '--publication', 'it_pub',
    '--tables', run.tables ?? 'public.*', '--sink', 'redis', '--redis-url', run.url,
    '--topic-prefix', run.db.name, '--offsets', run.offsets, '--log-format', 'json',
    ...(run.config === undefined ? [] : ['--config', run.config]),
    ...(run.extra ?? []),
  ];
}

/** Every event in the streams whose keys match `pattern`, stream by stream, in stream order. */
export async function redisEvents(
  server: RedisServer,
  pattern: string,
  redisDb = 0,
): Promise<{ events: DeliveredEvent[]; mismatchedFields: number; streams: number }> {
  const admin = await server.admin(redisDb);
  try {
    const events: DeliveredEvent[] = [];
    let mismatchedFields = 0;
    const keys = await streamKeys(admin, pattern);
    for (const key of keys) {
      for (const entry of await readStream(admin, key)) {
        const event = JSON.parse(entry.fields.event ?? 'null') as DeliveredEvent;
        // The entry's id and op fields are the event's own.
        if (entry.fields.id !== event.id || entry.fields.op !== (event.value as { op?: string }).op) mismatchedFields++;
        events.push(event);
      }
    }
    return { events, mismatchedFields, streams: keys.length };
  } finally {
    await admin.close();
  }
}

export interface RedisVerdict {
  lost: number;
  extra: number;
  mismatched: number;
  /** Entries whose event id was read before (at-least-once repeats a consumer drops). */
  duplicated: number;
  /** Entries read (repeats included). */
  events: number;
  /** Entries whose id/op fields disagree with their event line. */
  mismatchedFields: number;
}

/** Replays `db`'s streams (keys `<db name>.*`) and compares them with `table`. */
export async function redisVerdict(
  server: RedisServer,
  db: TestDatabase,
  table = 'acct',
  sql: pg.Client = db.sql,
  options: { redisDb?: number; keyPrefix?: string } = {},
): Promise<RedisVerdict> {
  const prefix = options.keyPrefix ?? '';
  const { events, mismatchedFields } = await redisEvents(server, `${prefix}${db.name}.*`, options.redisDb);
  const { rows } = await sql.query<Record<string, unknown>>(`select * from ${table}`);
  const source = new Map(rows.map((r) => [JSON.stringify({ id: r.id }), r]));
  const { tables, duplicates } = replay(events);
  const compared = compareRows(tables.get(`${db.name}.public.${table}`), source);
  return { ...compared, duplicated: duplicates, events: events.length, mismatchedFields };
}
