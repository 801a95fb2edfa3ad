/**
 * Heartbeats: what keeps an idle slot from holding WAL.
 *
 * Every `heartbeat.interval` milliseconds (the stream loop's scheduler keeps the time), with nothing in flight,
 * the capture moves its checkpoint and the confirmed LSN to the server's position as last reported by a
 * keepalive (Delivery.moveIdle). That alone
 * covers writes to uncaptured tables and to other databases: the walsender reads all of the
 * cluster's WAL, so its keepalives move on while pgoutput filters the changes out.
 *
 * The optional writes make sure there *is* WAL to move over, and a real commit for the stream:
 * - `table`: one row `(id, ts)` upserted in a table pgcdc's user may write (`pgcdc setup
 *   --heartbeat-schema` creates it with HEARTBEAT_COLUMNS). It need not be in the publication; if
 *   it is, ChangeAssembler drops its changes (they never reach the sink) and its commit still
 *   moves the checkpoint.
 * - `message`: a non-transactional pg_logical_emit_message with a prefix starting `pgcdc` (never
 *   emitted as an event). PostgreSQL 14+ forwards it through pgoutput; on 10-13 pgoutput drops it,
 *   but it is still WAL the walsender reads past, so keepalives move on exactly as with `table`.
 *
 * Heartbeat writes use their own ordinary connection: a slow or failed write never delays the
 * catalog lookups of the stream, and a failure is reported as one line (the capture stops).
 */
import type pg from 'pg';
import { CdcError, toCdcError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { Config } from '../config.ts';
import { HEARTBEAT_COLUMNS, heartbeatTable, type HeartbeatTarget } from '../selection/heartbeat-table.ts';
import { openConnection, type SourceEndpoint } from '../postgres/connect.ts';
import { quoteLiteral, quoteQualified } from '../postgres/quote.ts';

/** Prefix of heartbeat messages; starts with the reserved `pgcdc` so it is never an event. */
export const HEARTBEAT_MESSAGE_PREFIX = 'pgcdc-heartbeat';
/** The SQL one heartbeat runs (empty when only idle confirmation is on). Pure, for tests. */
export function heartbeatStatements(table: HeartbeatTarget | undefined, message: boolean): string[] {
  const statements: string[] = [];
  if (table) {
    statements.push(
      `INSERT INTO ${quoteQualified(table.schema, table.table)} (id, ts) VALUES (1, now()) ON CONFLICT (id) DO ` +
        `UPDATE SET ts = excluded.ts`,
    );
  }
  if (message)
    statements.push(`SELECT pg_logical_emit_message(false, ${quoteLiteral(HEARTBEAT_MESSAGE_PREFIX)}, now()::text)`);
  return statements;
}

/** One clear line for a heartbeat write the server refused. */
function refusal(error: unknown, table: HeartbeatTarget | undefined): CdcError {
  const err = error as { code?: string; message?: string };
  const what = table ? `the heartbeat table ${table.schema}.${table.table}` : 'heartbeat messages';
  const detail = err.message ?? String(error);
  switch (err.code) {
    case '42501':
      return new CdcError('SOURCE_NOT_READY', `heartbeat: permission denied writing ${what} (${detail})`, {
        cause: error,
        hint: table
          ? `GRANT SELECT, INSERT, UPDATE ON ` +
            (`${quoteQualified(table.schema, table.table)} TO the pgcdc user (pgcdc setup --heartbeat-schema ` +
              `does), or turn heartbeat.table off`)
          : 'let the pgcdc user execute pg_logical_emit_message, or turn heartbeat.message off',
      });
    case '42P01':
    case '3F000':
      return new CdcError('SOURCE_NOT_READY', `heartbeat: ${what} does not exist (${detail})`, {
        cause: error,
        hint: `create it: pgcdc setup --heartbeat-schema <schema> (columns: ${HEARTBEAT_COLUMNS})`,
      });
    case '25006':
      return new CdcError('SOURCE_NOT_READY', `heartbeat: the source is read-only, cannot write ${what}`, {
        cause: error,
        hint: 'heartbeat writes need the primary; turn heartbeat.table and heartbeat.message off on a standby',
      });
    default:
      return new CdcError('SOURCE_QUERY_FAILED', `heartbeat: writing ${what} failed: ${detail}`, {
        cause: error,
        retryable: true,
      });
  }
}

/**
 * The heartbeat's beats; the stream loop's scheduler decides when (scheduler.ts). Contract: `confirm` is only
 * ever called from here, one at a time.
 */
export class Heartbeat {
  private readonly intervalMs: number;
  private readonly client: pg.Client | undefined;
  private readonly statements: readonly string[];
  private readonly table: HeartbeatTarget | undefined;
  private readonly log: Logger;
  private running: Promise<void> | undefined;
  private closed = false;
  /** The last write failure logged, so a lasting one is logged once. */
  private failing: string | undefined;
  /** Heartbeat writes done (for logs and tests). */
  writes = 0;

  private constructor(config: Config['heartbeat'], client: pg.Client | undefined, log: Logger) {
    this.intervalMs = config.interval;
    this.client = client;
    this.table = heartbeatTable(config);
    this.statements = heartbeatStatements(this.table, config.message);
    this.log = log;
  }

  /**
   * Opens the write connection when writes are configured and writes one heartbeat, so a missing
   * privilege or table stops the run at start with one line rather than later.
   */
  static async open(endpoint: SourceEndpoint, config: Config['heartbeat'], log: Logger): Promise<Heartbeat> {
    const table = heartbeatTable(config);
    const writes = config.interval > 0 && heartbeatStatements(table, config.message).length > 0;
    if (!writes) return new Heartbeat(config, undefined, log);
    const client = await openConnection(endpoint, 'query', 'pgcdc-heartbeat');
    client.on('error', () => undefined); // reported by the next write
    const heartbeat = new Heartbeat(config, client, log);
    try {
      await heartbeat.write();
    } catch (error) {
      await client.end().catch(() => undefined);
      throw error;
    }
    return heartbeat;
  }

  /** Milliseconds between beats; 0 when heartbeats are off. The stream loop's scheduler keeps the time. */
  get interval(): number {
    return this.closed ? 0 : this.intervalMs;
  }

  /** A beat is running. */
  get beating(): boolean {
    return this.running !== undefined;
  }

  /**
   * Starts one beat: writes (if configured), then calls `confirm`. A beat still running makes this a no-op (a
   * slow beat is skipped rather than piled up); so is a closed heartbeat.
   */
  beat(confirm: () => Promise<void>, onError: (error: CdcError) => void): void {
    if (this.running || this.closed) return;
    this.running = this.writeThenConfirm(confirm)
      .catch((error: unknown) => onError(toCdcError(error)))
      .finally(() => (this.running = undefined));
  }

  /** Waits for a beat in progress; closes the write connection. No beat starts after this. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.running;
    await this.client?.end().catch(() => undefined);
  }

  /**
   * A failed write is logged and the beat goes on (the server may be restarting; the stream will
   * say so itself); only a failed confirmation (the sink or the offsets store) stops the capture.
   */
  private async writeThenConfirm(confirm: () => Promise<void>): Promise<void> {
    try {
      await this.write();
      this.failing = undefined;
    } catch (error) {
      const line = toCdcError(error).oneLine();
      if (line !== this.failing) this.log.warn({ error: line }, 'heartbeat write failed; retrying every interval');
      this.failing = line;
    }
    await confirm();
  }

  private async write(): Promise<void> {
    if (!this.client) return;
    for (const sql of this.statements) {
      try {
        await this.client.query(sql);
      } catch (error) {
        throw refusal(error, this.table);
      }
    }
    this.writes++;
    if (this.writes === 1) this.log.debug({ statements: this.statements.length }, 'heartbeat written');
  }
}
