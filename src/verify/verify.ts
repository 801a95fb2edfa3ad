/**
 * `pgcdc verify`'s engine: the source tables as of one LSN L (source-snapshot.ts) against the
 * sink's events replayed up to the same L (sink-reader.ts), table by table: keyed tables by
 * per-chunk row counts and checksums, drilled into where they differ (keyed-table.ts), keyless
 * tables as multisets of rows (compare.ts).
 *
 * Aligning the two sides. L is the consistent point of a temporary slot created now, so it is at
 * or past everything committed so far. The sink's checkpoint C (offsets file: commit end LSN of the
 * last transaction whose events are all durable) says how far the sink is complete:
 * - C >= L: the sink holds every transaction committed before L; replay its events below L.
 * - C < L and a capture runs (the offsets lock has a live owner): wait (--wait) for its checkpoint
 *   to pass L; the heartbeat moves it over idle WAL.
 * - C < L and no capture runs: the transactions between C and L are still in the capture's slot.
 *   They are counted with pg_logical_slot_peek_binary_changes (nothing consumed) up to L; none
 *   touching the verified tables means the sink is complete at L after all (idle WAL, other tables).
 * Otherwise the sink is behind: reported with how far, not compared.
 */
import { topicNaming } from '../selection/topic-naming.ts';
import type pg from 'pg';
import { setTimeout as delay } from 'node:timers/promises';
import type { Config } from '../config.ts';
import { CdcError } from '../core/errors.ts';
import type { Checkpoint } from '../offsets/store.ts';
import { openConnection, type SourceEndpoint } from '../postgres/connect.ts';
import { readPublication, readServerFacts } from '../postgres/catalog.ts';
import { loadPgTypes } from '../postgres/pg-types.ts';
import { formatLsn, parseLsn } from '../protocol/lsn.ts';
import type { Lsn } from '../protocol/messages.ts';
import { topicName } from '../envelope/topics.ts';
import { isHeartbeatTable } from '../selection/heartbeat-table.ts';
import { requireMatched, resolveSelection } from '../selection/table-selection.ts';
import { TableComparer, type TableComparison } from './compare.ts';
import type { ReplayOutcome, SinkReader } from './sink-reader.ts';
import { KeylessState } from './sink-state.ts';
import { verifyKeyedTable } from './keyed-table.ts';
import { describeSourceTable, openSourceSnapshot, streamTable } from './source-snapshot.ts';

/**
 * The statement limit of the verify's connections: one COPY reads a whole table, and the peek may
 * decode much WAL. A stalled connection is still caught by the byte-level watch (link-watch.ts).
 */
const VERIFY_STATEMENT_MS = 86_400_000;

export interface VerifyOptions {
  readonly config: Config;
  readonly endpoint: SourceEndpoint;
  /** Reads the capture's checkpoint (undefined: none stored yet). */
  readonly readCheckpoint: () => Promise<Checkpoint | undefined>;
  /** The pid of the running capture using this checkpoint, if one runs. */
  readonly captureRunning: () => Promise<number | undefined>;
  /** The sink, as of a checkpoint (its durable position). */
  readonly sinkReader: (checkpoint: Checkpoint) => SinkReader;
  readonly waitMs: number;
  readonly limit: number;
  readonly showValues: boolean;
}

export interface TableReport extends TableComparison {
  /** Whether the sink holds the table at all (`absent`: no file/topic: every source row is missing). */
  readonly sink: 'present' | 'absent';
  readonly detail: string | undefined;
  readonly events: number;
  readonly malformed: number;
  /** Why the table could not be replayed (a keyless table's update without its old row). */
  readonly unreplayable: string | undefined;
}

export interface VerifyReport {
  readonly outcome: 'equal' | 'different' | 'behind';
  /** L: the source snapshot's LSN. */
  readonly lsn: string;
  /** C: the sink's checkpoint LSN used. */
  readonly sinkLsn: string;
  readonly sink: string;
  readonly tables: readonly TableReport[];
  /** Set when the outcome is `behind`. */
  readonly behind?: { readonly reason: string; readonly walBytes: number; readonly changes?: number };
  readonly seconds: number;
}

export function tableDifferent(t: TableReport): boolean {
  return (
    t.missing + t.extra + t.different + t.malformed > 0 ||
    t.unreplayable !== undefined ||
    (t.sink === 'absent' && t.sourceRows > 0)
  );
}

/** The planner's row estimate of a table (0 when never analyzed): only sizes the chunks. */
async function rowEstimate(client: pg.Client, oid: number): Promise<number> {
  const { rows } = await client.query<{ n: number }>(
    'select greatest(reltuples, 0)::float8 as n from pg_class where oid = $1',
    [oid],
  );
  return rows[0]?.n ?? 0;
}

/** Changes of `oids` the capture's slot holds between its confirmed position and `upTo`, or why unknown. */
async function pendingChanges(
  client: pg.Client,
  checkpoint: Checkpoint,
  upTo: Lsn,
  oids: readonly number[],
): Promise<number | string> {
  try {
    const { rows } = await client.query<{ n: string }>(
      `select count(*)::text as n from pg_logical_slot_peek_binary_changes($1, $2::pg_lsn, null,
         'proto_version', '1', 'publication_names', $3)
       where get_byte(data, 0) = 84
          or (get_byte(data, 0) in (73, 85, 68)
              and ((get_byte(data, 1)::bigint << 24) | (get_byte(data, 2) << 16) | (get_byte(data, 3) << 8)
                   | get_byte(data, 4)) = any($4::bigint[]))`,
      [checkpoint.slot, formatLsn(upTo), checkpoint.publication, oids],
    );
    return Number(rows[0]?.n ?? 0);
  } catch (cause) {
    return cause instanceof Error ? cause.message : String(cause);
  }
}

function behindBy(reason: string, checkpoint: Checkpoint, upTo: Lsn, changes?: number): VerifyReport['behind'] {
  const walBytes = Math.max(0, upTo - parseLsn(checkpoint.lsn));
  return changes === undefined ? { reason, walBytes } : { reason, walBytes, changes };
}

/**
 * Brings the sink's checkpoint to `upTo` (L), or says why it is behind (see the header). A running
 * capture is nudged once with a non-transactional logical message (prefix `pgcdc`, never an event):
 * WAL past L that its keepalives report, so its idle checkpoint moves past L at its next heartbeat
 * interval even when nothing else is written.
 */
async function alignSink(
  options: VerifyOptions,
  first: Checkpoint,
  upTo: Lsn,
  oids: readonly number[],
): Promise<{ checkpoint: Checkpoint; behind: VerifyReport['behind'] }> {
  let checkpoint = first;
  const complete = (c: Checkpoint): boolean => parseLsn(c.lsn) >= upTo && c.snapshot?.state !== 'running';
  const deadline = Date.now() + options.waitMs;
  let nudged = false;
  while (!complete(checkpoint)) {
    const running = await options.captureRunning();
    const client = await openConnection(options.endpoint, 'query', 'pgcdc-verify', {
      statementTimeoutMs: VERIFY_STATEMENT_MS,
    });
    client.on('error', () => undefined);
    try {
      if (running === undefined) {
        if (checkpoint.snapshot?.state === 'running')
          return {
            checkpoint,
            behind: behindBy(
              "the capture's initial snapshot is not finished and no capture is running",
              checkpoint,
              upTo,
            ),
          };
        const pending = await pendingChanges(client, checkpoint, upTo, oids);
        if (pending === 0) return { checkpoint, behind: undefined };
        const reason =
          typeof pending === 'number'
            ? `no capture is running and ${pending} change${pending === 1 ? '' : 's'} of the verified tables ` +
              `committed after the sink's checkpoint wait in slot ${checkpoint.slot}`
            : `no capture is running and the sink's checkpoint is behind; slot ${checkpoint.slot} cannot be read ` +
              `(${pending})`;
        return {
          checkpoint,
          behind: behindBy(reason, checkpoint, upTo, typeof pending === 'number' ? pending : undefined),
        };
      }
      if (!nudged) {
        nudged = true;
        await client.query(`select pg_logical_emit_message(false, 'pgcdc-verify', '')`).catch(() => undefined);
      }
    } finally {
      await client.end().catch(() => undefined);
    }
    if (Date.now() >= deadline) {
      const reason =
        `the running capture (pid ${running}) did not store a checkpoint past ${formatLsn(upTo)} within ` +
        `${options.waitMs / 1000}s`;
      return { checkpoint, behind: behindBy(reason, checkpoint, upTo) };
    }
    await delay(200);
    checkpoint = (await options.readCheckpoint()) ?? checkpoint;
  }
  return { checkpoint, behind: undefined };
}

/** Runs the verify. Throws CdcError for bad input and failures; differences are the report's. */
export async function runVerify(options: VerifyOptions): Promise<VerifyReport> {
  const started = Date.now();
  const { config, endpoint } = options;
  const query = await openConnection(endpoint, 'query', 'pgcdc-verify', { statementTimeoutMs: VERIFY_STATEMENT_MS });
  query.on('error', () => undefined);
  try {
    const facts = await readServerFacts(query);
    const selection = await resolveSelection(query, config);
    requireMatched(selection);
    // The selection as the capture resolves it (config.tables / --tables, else the publication's).
    const tables = selection.tables.filter((t) => !isHeartbeatTable(config.heartbeat, t));
    const publication = await readPublication(query, config.publication);
    const types = await loadPgTypes(query);
    const naming = topicNaming(config, endpoint.database);
    const first = await options.readCheckpoint();
    if (first === undefined)
      throw new CdcError('CONFIG_INVALID', 'the offsets file holds no checkpoint: nothing was delivered to verify', {
        hint: "run pgcdc with this config first, or point --offsets (or the config) at the capture's offsets file",
      });

    const replication = await openConnection(endpoint, 'replication', 'pgcdc-verify');
    replication.on('error', () => undefined);
    const snapshot = await openSourceSnapshot(query, replication, tables);
    // L: the snapshot holds exactly the transactions whose commit record lies before it.
    const L = snapshot.lsn;

    const { checkpoint, behind } = await alignSink(
      options,
      first,
      L,
      tables.map((t) => t.oid),
    );
    const reader = options.sinkReader(checkpoint);
    const head = { lsn: formatLsn(L), sinkLsn: checkpoint.lsn, sink: reader.kind };
    if (behind !== undefined)
      return { outcome: 'behind', ...head, tables: [], behind, seconds: (Date.now() - started) / 1000 };

    const reports: TableReport[] = [];
    for (const ref of tables) {
      const name = `${ref.schema}.${ref.table}`;
      const source = await describeSourceTable(
        snapshot,
        ref,
        facts.major,
        publication.exists ? publication.generatedColumns : facts.major >= 18 ? 'stored' : 'none',
        (oid) => types.get(oid),
        config.values,
        naming,
      );
      const settings = naming.envelope;
      const replay = {
        name,
        topic: topicName(naming, ref),
        format: { withSchema: settings?.format === 'json-with-schema', flat: settings?.type === 'flat' },
        placeholderJson: Buffer.from(JSON.stringify(config.toast.placeholder), 'utf8'),
      };
      let comparison: TableComparison;
      let outcome: ReplayOutcome;
      let unreplayable: string | undefined;
      if (source.keyed) {
        const estimate = await rowEstimate(query, ref.oid);
        ({ comparison, outcome } = await verifyKeyedTable({
          name,
          source,
          streamSource: (onRows) => streamTable(snapshot, source, onRows),
          reader,
          replay,
          upTo: L,
          estimate,
          limit: options.limit,
          showValues: options.showValues,
        }));
      } else {
        const state = new KeylessState();
        outcome = await reader.replayTable(replay, L, state);
        const comparer = new TableComparer(name, source, state, options.limit, options.showValues);
        await streamTable(snapshot, source, (rows) => comparer.add(rows));
        comparison = comparer.finish();
        unreplayable = state.unreplayable;
      }
      reports.push({
        ...comparison,
        sink: outcome.kind === 'absent' ? 'absent' : 'present',
        detail: outcome.kind === 'absent' ? outcome.detail : outcome.damage,
        events: outcome.kind === 'absent' ? 0 : outcome.events,
        malformed: outcome.kind === 'absent' ? 0 : outcome.malformed,
        unreplayable,
      });
    }
    await query.query('COMMIT').catch(() => undefined);
    const outcome = reports.some(tableDifferent) ? 'different' : 'equal';
    return { outcome, ...head, tables: reports, seconds: (Date.now() - started) / 1000 };
  } finally {
    await query.end().catch(() => undefined);
  }
}
