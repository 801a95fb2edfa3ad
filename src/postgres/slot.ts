/**
 * The walsender side of the source: a `replication=database` connection that identifies the
 * system, creates the slot and streams pgoutput over CopyBoth. Commands here go through the simple
 * query protocol (the only one a walsender accepts), so every name is quoted with postgres/quote.ts.
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import type pg from 'pg';
import { both as copyBoth } from 'pg-copy-streams';
import type { Lsn } from '../protocol/messages.ts';
import { formatLsn, parseLsn } from '../protocol/lsn.ts';
import { encodeStandbyStatus, pgClockMicros } from '../protocol/replication.ts';
import { CdcError } from '../core/errors.ts';
import { isConnectionLoss } from '../core/error-policy.ts';
import { quoteIdent, quoteLiteral } from './quote.ts';
import { describeEndpoint, openConnection, type SourceEndpoint } from './connect.ts';
import { LIVENESS_DEFAULTS } from './connect-config.ts';
import { endWithin, queryWatchOf, ReceiveWatch } from './link-watch.ts';
import { sourceFailure } from './source-errors.ts';
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

/** How the receive timeout of a stream was chosen (see ReplicationSession.open). */
export interface ReceiveTimeout {
  readonly timeoutMs: number;
  /** Where it came from, for the error: `source.receiveTimeoutMs`, `twice wal_sender_timeout`... */
  readonly origin: string;
}

/**
 * One CopyBoth replication stream. Emits 'frame' (one CopyData payload, a Buffer), 'error'
 * (CdcError) and 'end'. Reading stops while paused; the walsender then blocks on its socket but
 * keeps processing our status updates, so a paused stream does not hit wal_sender_timeout as long
 * as `sendStatus` keeps being called.
 *
 * Liveness: a ReceiveWatch (link-watch.ts) fails the stream with SOURCE_TIMEOUT when nothing arrives
 * for the receive timeout while reading; after a third of it, it emits 'keepalive-wanted' and the stream loop
 * sends its next status update with reply-requested, so the walsender answers with a keepalive.
 */
export class ReplicationStream extends EventEmitter<{
  frame: [Buffer];
  error: [CdcError];
  end: [];
  'keepalive-wanted': [];
}> {
  private readonly duplex: ReturnType<typeof copyBoth>;
  private readonly watch: ReceiveWatch;
  private ended = false;
  private paused = false;

  constructor(
    duplex: ReturnType<typeof copyBoth>,
    socket: () => net.Socket | undefined,
    receive: ReceiveTimeout,
    what: string,
  ) {
    super();
    this.duplex = duplex;
    duplex.on('data', (frame: Buffer) => this.emit('frame', frame));
    duplex.on('error', (error: Error) => this.failWith(streamError(error)));
    duplex.on('end', () => {
      this.watch.stop();
      if (this.ended) return;
      this.ended = true;
      this.emit('end');
    });
    this.watch = new ReceiveWatch({
      timeoutMs: receive.timeoutMs,
      askAfterMs: Math.max(100, Math.floor(receive.timeoutMs / 3)),
      what,
      origin: receive.origin,
      socket,
      paused: () => this.paused,
      // The loop sends it (status updates leave from one place: the stream loop's sendStatus).
      askKeepalive: () => this.emit('keepalive-wanted'),
      expired: (error) => this.failWith(error),
    });
  }

  private failWith(error: CdcError): void {
    this.watch.stop();
    if (this.ended) return;
    this.ended = true;
    this.emit('error', error);
  }

  pause(): void {
    this.paused = true;
    this.duplex.pause();
  }

  resume(): void {
    this.paused = false;
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
    this.writeStatus(received, flush, replyRequested);
  }

  private writeStatus(write: Lsn, flush: Lsn, replyRequested: boolean): void {
    if (this.ended) return;
    this.duplex.write(encodeStandbyStatus({ write, flush, apply: flush, clock: pgClockMicros(), replyRequested }));
  }

  /** Ends streaming with CopyDone and waits (bounded) for the server to finish the exchange. */
  async stop(timeoutMs = 10_000): Promise<void> {
    this.watch.stop();
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
  /** The receive timeout of the stream `start` opens. */
  readonly receiveTimeout: ReceiveTimeout;
  private readonly describe: string;

  private constructor(client: pg.Client, backendPid: number, receiveTimeout: ReceiveTimeout, describe: string) {
    this.client = client;
    this.backendPid = backendPid;
    this.receiveTimeout = receiveTimeout;
    this.describe = describe;
    // An error after connect (server gone) must not crash the process; the stream reports it.
    client.on('error', () => undefined);
  }

  static async open(endpoint: SourceEndpoint): Promise<ReplicationSession> {
    const client = await openConnection(endpoint, 'replication', 'pgcdc');
    let row: { pid: number; wst: string | null } | undefined;
    try {
      // SQL is accepted on a replication=database connection (PostgreSQL 10+). Asked here, not
      // taken from BackendKeyData, which a pooler in between may make up.
      const result = await client.query<{ pid: number; wst: string | null }>(
        `SELECT pg_backend_pid() AS pid, (SELECT setting FROM pg_settings WHERE name = 'wal_sender_timeout') AS wst`,
      );
      row = result.rows[0];
    } catch (cause) {
      await client.end().catch(() => undefined);
      throw sourceFailure(cause, 'reading the backend pid of the replication connection');
    }
    const receive = receiveTimeoutFor(endpoint.receiveTimeoutMs, Number(row?.wst ?? 0));
    return new ReplicationSession(client, Number(row?.pid), receive, describeEndpoint(endpoint));
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

  /**
   * Creates a permanent pgoutput slot and returns its consistent point. `failover` (PostgreSQL 17+ only)
   * makes it a failover slot, which standbys with sync_replication_slots copy.
   */
  async createSlot(slot: string, failover = false): Promise<{ consistentPoint: Lsn }> {
    // The pre-15 grammar is still accepted by every supported major (10 to 18); FAILOVER needs the new one.
    const sql = failover
      ? `CREATE_REPLICATION_SLOT ${quoteIdent(slot)} LOGICAL pgoutput (SNAPSHOT 'nothing', FAILOVER true)`
      : `CREATE_REPLICATION_SLOT ${quoteIdent(slot)} LOGICAL pgoutput NOEXPORT_SNAPSHOT`;
    const result = await this.unwatched(() => this.run<{ consistent_point: string }>(sql));
    const row = result.rows[0];
    if (!row) throw new CdcError('SOURCE_QUERY_FAILED', `CREATE_REPLICATION_SLOT ${slot} returned no row`);
    return { consistentPoint: parseLsn(row.consistent_point) };
  }

  /**
   * Creates a permanent pgoutput slot and exports the snapshot of its consistent point. The
   * snapshot lives only while this connection stays idle: every reader must import it (see
   * snapshot/initial-reader.ts `onImported`) before the next command on this session.
   */
  async createSlotExportingSnapshot(slot: string, failover = false): Promise<ExportedSlot> {
    return this.unwatched(() => createSlotWithSnapshot(this.client, slot, failover));
  }

  /** Makes an existing slot a failover slot, or not (PostgreSQL 17+; the slot must not be in use). */
  async alterSlotFailover(slot: string, failover: boolean): Promise<void> {
    await this.run(`ALTER_REPLICATION_SLOT ${quoteIdent(slot)} (FAILOVER ${failover ? 'true' : 'false'})`);
  }

  /**
   * The history file of `timeline` (TIMELINE_HISTORY; timeline 1 has none): the text of
   * `<timeline>.history`, one ancestor timeline and its switch point a line.
   */
  async timelineHistory(timeline: number): Promise<string> {
    const result = await this.run<{ filename: string; content: Buffer | string }>(
      `TIMELINE_HISTORY ${Math.trunc(timeline)}`,
    );
    const content = result.rows[0]?.content;
    if (content === undefined)
      throw new CdcError('SOURCE_QUERY_FAILED', `TIMELINE_HISTORY ${timeline} returned no row`);
    return typeof content === 'string' ? content : content.toString('utf8');
  }

  /**
   * Runs `command` without the connection's silence limit: creating a slot waits, silently, for every
   * transaction running at that moment to end, which may legitimately take long (TCP keepalives still
   * notice a dead peer).
   */
  private async unwatched<T>(command: () => Promise<T>): Promise<T> {
    const watch = queryWatchOf(this.client);
    const limit = watch?.limit;
    watch?.setLimit(undefined);
    try {
      return await command();
    } finally {
      watch?.setLimit(limit);
    }
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
    // While streaming, the stream's receive timeout watches this connection instead.
    queryWatchOf(this.client)?.stop();
    const duplex = this.client.query(copyBoth(sql, { alignOnCopyDataFrame: true }));
    const stream = this.client.connection.stream;
    return new ReplicationStream(
      duplex,
      () => (stream instanceof net.Socket ? stream : undefined),
      this.receiveTimeout,
      `the replication connection (slot ${options.slot}) to ${this.describe}`,
    );
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await endWithin(this.client);
  }

  private async run<R extends pg.QueryResultRow>(sql: string): Promise<pg.QueryResult<R>> {
    try {
      return await this.client.query<R>(sql);
    } catch (cause) {
      throw sourceFailure(cause, sql.split(' ')[0] ?? sql);
    }
  }
}

/**
 * The receive timeout: the configured one, else twice wal_sender_timeout (the server's own patience
 * with us, doubled), else, with wal_sender_timeout 0, LIVENESS_DEFAULTS: never infinite.
 */
export function receiveTimeoutFor(configuredMs: number | undefined, walSenderTimeoutMs: number): ReceiveTimeout {
  if (configuredMs !== undefined) return { timeoutMs: configuredMs, origin: 'source.receiveTimeoutMs' };
  if (walSenderTimeoutMs > 0)
    return {
      timeoutMs: Math.max(1000, 2 * walSenderTimeoutMs),
      origin:
        `twice the server's wal_sender_timeout of ${walSenderTimeoutMs} ms; ` + 'set source.receiveTimeoutMs to change',
    };
  return {
    timeoutMs: LIVENESS_DEFAULTS.receiveTimeoutWithoutServerTimeoutMs,
    origin: "the default while the server's wal_sender_timeout is 0; set source.receiveTimeoutMs to change",
  };
}

/** A replication stream's failure: a lost connection says so (CONNECTION_LOST), anything else is the stream's. */
function streamError(error: Error): CdcError {
  if (error instanceof CdcError) return error;
  if (isConnectionLoss(error)) {
    return new CdcError('CONNECTION_LOST', `the replication connection was lost: ${error.message}`, {
      cause: error,
      retryable: true,
    });
  }
  return new CdcError('REPLICATION_STREAM_FAILED', `replication stream failed: ${error.message}`, {
    cause: error,
    retryable: true,
  });
}
