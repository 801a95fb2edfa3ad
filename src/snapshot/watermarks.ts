/**
 * Watermark methods of incremental snapshots: how a chunk's window is delimited in the stream.
 *
 * - `signal-table`: rows inserted into the signal table (it must be in the publication); the
 *   stream sees them as inserts and the capture swallows them. The rows are deleted once the
 *   window closed, so the table stays small.
 * - `message`: transactional pg_logical_emit_message with the prefix `pgcdc.watermark` (PG14+,
 *   where pgoutput forwards messages); writes WAL only, no table.
 * - `read-only`: nothing is written. The window opens when the read is started and closes when
 *   the stream has passed the WAL position the read's snapshot saw (see readWindowChunk); works
 *   on a PG16+ standby and with a user that may write nothing at all.
 *
 * Every method's `low` completes (committed) before the chunk is read, and `high` starts after.
 */
import type pg from 'pg';
import { CdcError } from '../core/errors.ts';
import { quoteQualified } from '../postgres/quote.ts';
import type { TableName } from './initial-reader.ts';
import { WATERMARK_MESSAGE_PREFIX, WINDOW_CLOSE, WINDOW_OPEN } from './signals.ts';
import type { SnapshotMethod } from '../config.ts';

export type ResolvedMethod = Exclude<SnapshotMethod, 'auto'>;

export interface WatermarkWriter {
  readonly method: ResolvedMethod;
  /** Writes (and commits) the low watermark of window `id`. */
  low(id: string): Promise<void>;
  /** Writes (and commits) the high watermark of window `id`. */
  high(id: string): Promise<void>;
  /** The window closed: remove what it left behind. */
  finished(id: string): Promise<void>;
  close(): Promise<void>;
}

/**
 * The method to use, or a one-line reason why incremental snapshots are not possible here.
 * auto: read-only on 13+ (writes nothing), else the signal table when one is configured.
 */
export function resolveMethod(
  method: SnapshotMethod,
  major: number,
  signalTable: TableName | undefined,
): ResolvedMethod | { readonly unavailable: string } {
  switch (method) {
    case 'auto':
      if (major >= 13) return 'read-only';
      if (signalTable) return 'signal-table';
      return {
        unavailable:
          `PostgreSQL ` +
          (`${major} has no pg_current_snapshot for the read-only method: configure a signal table ` +
            `(signalTable) for incremental snapshots`),
      };
    case 'read-only':
      return major >= 13
        ? 'read-only'
        : {
            unavailable:
              `snapshot.method read-only needs PostgreSQL 13 or later (the server is ` + `${major}): use signal-table`,
          };
    case 'message':
      return major >= 14
        ? 'message'
        : {
            unavailable:
              `snapshot.method message needs PostgreSQL 14 or later, where pgoutput forwards ` +
              `logical messages (the server is ${major}): use signal-table`,
          };
    case 'signal-table':
      return signalTable
        ? 'signal-table'
        : {
            unavailable:
              'snapshot.method signal-table needs signalTable (schema.table of the signal table; see ' +
              'docs/snapshots.md)',
          };
    default: {
      const never: never = method;
      throw new CdcError('INTERNAL', `unknown snapshot method ${String(never)}`);
    }
  }
}

/** A writer for `method`; `connect` opens a writable query connection (used lazily, one for all windows). */
export function watermarkWriter(
  method: ResolvedMethod,
  connect: () => Promise<pg.Client>,
  signalTable: TableName | undefined,
): WatermarkWriter {
  if (method === 'read-only') {
    const nothing = (): Promise<void> => Promise.resolve();
    return { method, low: nothing, high: nothing, finished: nothing, close: nothing };
  }
  let client: Promise<pg.Client> | undefined;
  const conn = (): Promise<pg.Client> => {
    client ??= connect().then((c) => {
      c.on('error', () => undefined);
      return c;
    });
    return client;
  };
  const run = async (sql: string, params: unknown[]): Promise<void> => {
    try {
      await (await conn()).query(sql, params);
    } catch (cause) {
      const reason = cause instanceof Error ? cause.message : String(cause);
      throw new CdcError(
        'SOURCE_QUERY_FAILED',
        `writing an incremental snapshot watermark (${method}) failed: ${reason}`,
        {
          cause,
          retryable: true,
          hint:
            method === 'signal-table'
              ? 'the user needs INSERT and DELETE on the signal table'
              : 'the message method needs a writable primary; use snapshot.method read-only on a standby',
        },
      );
    }
  };
  const close = async (): Promise<void> => {
    const c = client;
    client = undefined;
    if (c) await (await c.catch(() => undefined))?.end().catch(() => undefined);
  };
  if (method === 'message') {
    const emit = `select pg_logical_emit_message(true, '${WATERMARK_MESSAGE_PREFIX}', $1)`;
    return {
      method,
      low: (id) => run(emit, [`${id}:low`]),
      high: (id) => run(emit, [`${id}:high`]),
      finished: () => Promise.resolve(),
      close,
    };
  }
  if (!signalTable) throw new CdcError('INTERNAL', 'the signal-table method without a signal table');
  const table = quoteQualified(signalTable.schema, signalTable.table);
  const insert = `insert into ${table} (id, type, data) values ($1, $2, $3)`;
  return {
    method,
    low: (id) => run(insert, [`${id}-open`, WINDOW_OPEN, null]),
    high: (id) => run(insert, [`${id}-close`, WINDOW_CLOSE, null]),
    finished: (id) => run(`delete from ${table} where id in ($1, $2)`, [`${id}-open`, `${id}-close`]),
    close,
  };
}
