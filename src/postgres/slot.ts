/**
 * The walsender side of the source: a `replication=database` connection that identifies the
 * system, creates the slot and streams pgoutput over CopyBoth. Commands here go through the simple
 * query protocol (the only one a walsender accepts), so every name is quoted with postgres/quote.ts.
 */
import { EventEmitter } from 'node:events';
import type pg from 'pg';
import { both as copyBoth } from 'pg-copy-streams';
import type { Lsn } from '../protocol/messages.ts';
import { formatLsn, parseLsn } from '../protocol/lsn.ts';
import { encodeStandbyStatus, pgClockMicros } from '../protocol/replication.ts';
import { CdcError, sourceError } from '../core/errors.ts';
import { isConnectionLoss } from '../core/error-policy.ts';
import { quoteIdent, quoteLiteral } from './quote.ts';
import { openConnection, type SourceEndpoint } from './connect.ts';
import { createSlotWithSnapshot, type ExportedSlot } from './exported-snapshot.ts';

export interface SystemIdentity {
  /** Decimal text: a u64 that does not fit a double. */
  readonly systemId: string;
  readonly timeline: number;
  readonly xlogPos: Lsn;
  readonly database: string | null;
}

export interface StartOptions {
  readonly slot: string;
  readonly startLsn: Lsn;
  readonly publication: string;
  readonly protoVersion: 1 | 2 | 3 | 4;
  /** pgoutput `messages` (PostgreSQL 14+): logical decoding messages in the stream. */
  readonly messages: boolean;
  /** pgoutput `streaming` (PostgreSQL 14+, proto_version 2+): large transactions sent in progress. */
  readonly streaming?: boolean;
  /** pgoutput `origin` (PostgreSQL 16+): 'none' skips changes that carry a replication origin. */
  readonly origin?: 'any' | 'none';
}

/**
 * One CopyBoth replication stream. Emits 'frame' (one CopyData payload, a Buffer), 'error'
 * (CdcError) and 'end'. Reading stops while paused; the walsender then blocks on its socket but
 * keeps processing our status updates, so a paused stream does not hit wal_sender_timeout as long
 * as `sendStatus` keeps being called.
 */
export class ReplicationStream extends EventEmitter<{ frame: [Buffer]; error: [CdcError]; end: [] }> {
  private readonly duplex: ReturnType<typeof copyBoth>;
  private ended = false;

  constructor(duplex: ReturnType<typeof copyBoth>) {
    super();
    this.duplex = duplex;
    duplex.on('data', (frame: Buffer) => this.emit('frame', frame));
    duplex.on('error', (error: Error) => {
      if (this.ended) return;
      this.ended = true;
      // A terminated walsender (57P01), a restarting server or a reset link is CONNECTION_LOST; an
      // error with another SQLSTATE (a missing publication, say) is not retried (core/error-policy.ts).
      this.emit(
        'error',
        isConnectionLoss(error)
          ? new CdcError('CONNECTION_LOST', `the replication connection was lost: ${error.message}`, { cause: error })
          : new CdcError('REPLICATION_STREAM_FAILED', `replication stream failed: ${error.message}`, {
              cause: error,
              retryable: true,
            }),
      );
    });
    duplex.on('end', () => {
      if (this.ended) return;
      this.ended = true;
      this.emit('end');
    });
  }

  pause(): void {
    this.duplex.pause();
  }

  resume(): void {
    this.duplex.resume();
  }

  get isPaused(): boolean {
    return this.duplex.isPaused();
  }

  /**
   * Sends a standby status update. `flush` is what PostgreSQL may forget: only ever an LSN whose
   * changes are durable in the sink with their checkpoint stored (see ARCHITECTURE.md (the acknowledgement rule)).
   */
  sendStatus(received: Lsn, flush: Lsn, replyRequested = false): void {
    if (this.ended) return;
    this.duplex.write(
      encodeStandbyStatus({ write: received, flush, apply: flush, clock: pgClockMicros(), replyRequested }),
    );
  }

  /** Ends streaming with CopyDone and waits (bounded) for the server to finish the exchange. */
  async stop(timeoutMs = 10_000): Promise<void> {
    if (this.ended) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.duplex.once('finish', () => {
        clearTimeout(timer);
        resolve();
      });
      this.duplex.once('error', () => {
        clearTimeout(timer);
        resolve();
      });
      // Frames still in flight after CopyDone are read and dropped by the caller.
      this.duplex.resume();
      this.duplex.end();
    });
    this.ended = true;
  }
}

export class ReplicationSession {
  private readonly client: pg.Client;
  private closed = false;
  /** This walsender's backend pid: pg_replication_slots.active_pid of the slot it streams. */
  readonly backendPid: number;

  private constructor(client: pg.Client, backendPid: number) {
    this.client = client;
    this.backendPid = backendPid;
    // An error after connect (server gone) must not crash the process; the stream reports it.
    client.on('error', () => undefined);
  }

  static async open(endpoint: SourceEndpoint): Promise<ReplicationSession> {
    const client = await openConnection(endpoint, 'replication', 'pgcdc');
    try {
      // SQL is accepted on a replication=database connection (PostgreSQL 10+). Asked here, not
      // taken from BackendKeyData, which a pooler in between may make up.
      const result = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      return new ReplicationSession(client, Number(result.rows[0]?.pid));
    } catch (cause) {
      await client.end().catch(() => undefined);
      throw sourceError(
        'SOURCE_QUERY_FAILED',
        `cannot read the backend pid of the replication connection: ` +
          `${cause instanceof Error ? cause.message : String(cause)}`,
        { cause },
      );
    }
  }

  async identifySystem(): Promise<SystemIdentity> {
    const result = await this.run<{
      systemid: string;
      timeline: string | number;
      xlogpos: string;
      dbname: string | null;
    }>('IDENTIFY_SYSTEM');
    const row = result.rows[0];
    if (!row) throw new CdcError('SOURCE_QUERY_FAILED', 'IDENTIFY_SYSTEM returned no row');
    return {
      systemId: String(row.systemid),
      timeline: Number(row.timeline),
      xlogPos: parseLsn(row.xlogpos),
      database: row.dbname,
    };
  }

  /** Creates a permanent pgoutput slot and returns its consistent point. */
  async createSlot(slot: string): Promise<{ consistentPoint: Lsn }> {
    // The pre-15 grammar is still accepted by every supported major (10 to 18).
    const result = await this.run<{ consistent_point: string }>(
      `CREATE_REPLICATION_SLOT ${quoteIdent(slot)} LOGICAL pgoutput NOEXPORT_SNAPSHOT`,
    );
    const row = result.rows[0];
    if (!row) throw new CdcError('SOURCE_QUERY_FAILED', `CREATE_REPLICATION_SLOT ${slot} returned no row`);
    return { consistentPoint: parseLsn(row.consistent_point) };
  }

  /**
   * Creates a permanent pgoutput slot and exports the snapshot of its consistent point. The
   * snapshot lives only while this connection stays idle: every reader must import it (see
   * snapshot/initial-reader.ts `onImported`) before the next command on this session.
   */
  async createSlotExportingSnapshot(slot: string): Promise<ExportedSlot> {
    return createSlotWithSnapshot(this.client, slot);
  }

  async dropSlot(slot: string): Promise<void> {
    await this.run(`DROP_REPLICATION_SLOT ${quoteIdent(slot)}`);
  }

  start(options: StartOptions): ReplicationStream {
    const pluginOptions = [
      `proto_version ${quoteLiteral(String(options.protoVersion))}`,
      // publication_names is itself a comma-separated list of (optionally quoted) identifiers.
      `publication_names ${quoteLiteral(quoteIdent(options.publication))}`,
    ];
    if (options.messages) pluginOptions.push(`messages 'true'`);
    if (options.streaming) pluginOptions.push(`streaming 'on'`);
    if (options.origin === 'none') pluginOptions.push(`origin ${quoteLiteral('none')}`);
    const sql =
      `START_REPLICATION SLOT ` +
      `${quoteIdent(options.slot)} LOGICAL ${formatLsn(options.startLsn)} (${pluginOptions.join(', ')})`;
    const duplex = this.client.query(copyBoth(sql, { alignOnCopyDataFrame: true }));
    return new ReplicationStream(duplex);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.client.end().catch(() => undefined);
  }

  private async run<R extends pg.QueryResultRow>(sql: string): Promise<pg.QueryResult<R>> {
    try {
      return await this.client.query<R>(sql);
    } catch (cause) {
      const message = cause instanceof Error ? cause.message : String(cause);
      throw sourceError('SOURCE_QUERY_FAILED', `${sql.split(' ')[0] ?? sql} failed: ${message}`, { cause });
    }
  }
}
