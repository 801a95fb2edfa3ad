/**
 * The routes of the HTTP server, each a function from a parsed request to a reply. They read the
 * run's status, the history, the latest health sample and the snapshot mailbox; the one route that
 * writes (`POST /api/snapshot`) only drops a request file the capture takes at a transaction
 * boundary, after the same checks as `pgcdc snapshot`. No SQL is executed for a request.
 */
import { z } from 'zod';
import { isCdcError, toCdcError } from '../core/errors.ts';
import { readCheckpoint } from '../offsets/file.ts';
import { checkRequestedTables, storedAsTaken } from '../snapshot/request-check.ts';
import { readCaptured, requestPending, writeRequest } from '../snapshot/requests.ts';
import type { AlertState, SlotSample } from '../health/types.ts';
import type { History, HistoryPoint } from './history.ts';
import type { ReadinessWatch } from './readiness.ts';
import type { ServerSources } from './sources.ts';

/** What a route answers: JSON, or text of its own type (the metrics). */
export type Reply =
  | { readonly kind: 'json'; readonly status: number; readonly body: unknown }
  | { readonly kind: 'text'; readonly status: number; readonly contentType: string; readonly body: string };

export const json = (status: number, body: unknown): Reply => ({ kind: 'json', status, body });

/** A JSON error reply: `{error, code?}`; `error` is one line saying what is wrong and what to do. */
export const failure = (status: number, error: string, code?: string): Reply =>
  json(status, code === undefined ? { error } : { error, code });

/** The latest health sample with its alerts, as the monitor reported them. */
export interface HealthReport {
  readonly sample: SlotSample;
  readonly alerts: readonly AlertState[];
}

export interface RouteContext {
  readonly sources: ServerSources;
  readonly history: History;
  readonly readiness: ReadinessWatch;
  readonly health: () => HealthReport | undefined;
  /** A point for this moment (not stored): the charts' last point. */
  readonly now: () => HistoryPoint;
  readonly showValues: boolean;
}

export function healthz(): Reply {
  return json(200, { status: 'alive', pid: process.pid });
}

export function readyz(context: RouteContext): Reply {
  const status = context.sources.status();
  const verdict = context.readiness.judge(status);
  return verdict.ready
    ? json(200, { status: 'ready', state: status?.state })
    : json(503, { status: 'not ready', state: status?.state ?? 'starting', reason: verdict.reason });
}

/** How far an incremental snapshot read a table, as stored with the last checkpoint. */
export interface IncrementalProgress {
  readonly table: string;
  /** Rows read so far (durable with the checkpoint). */
  readonly rows: number;
  readonly done: boolean;
  /** Removed by a stop-snapshot signal before it was done. */
  readonly stopped: boolean;
  /** The planner's estimate of the table's rows (for an ETA); undefined when unknown. */
  readonly total: number | undefined;
}

/** The incremental snapshot's tables from the stored checkpoint; null without an offsets file or snapshot. */
async function incrementalProgress(
  offsetsFile: string | undefined,
  estimates: ReadonlyMap<string, number> | undefined,
): Promise<IncrementalProgress[] | null> {
  if (offsetsFile === undefined) return null;
  const checkpoint = await readCheckpoint(offsetsFile).catch(() => undefined);
  const tables = checkpoint?.incremental?.tables;
  if (tables === undefined) return null;
  return tables.map((t) => ({
    table: `${t.schema}.${t.table}`,
    rows: t.read,
    done: t.cursor.done,
    stopped: t.stopped ?? false,
    total: estimates?.get(`${t.schema}.${t.table}`),
  }));
}

export async function status(context: RouteContext): Promise<Reply> {
  const run = context.sources.status();
  if (run === undefined) return failure(503, 'the capture has not started yet; ask again in a moment');
  const health = context.health();
  return json(200, {
    ...run,
    incremental: await incrementalProgress(context.sources.offsetsFile, context.sources.rowEstimates?.()),
    health: health === undefined ? null : { sample: health.sample, alerts: health.alerts },
    pid: process.pid,
  });
}

export async function metrics(context: RouteContext): Promise<Reply> {
  const provider = context.sources.metrics;
  if (provider === undefined) return failure(503, 'no metrics registry is wired into this pgcdc run');
  const text = await provider();
  return { kind: 'text', status: 200, contentType: text.contentType, body: text.body };
}

export function history(context: RouteContext): Reply {
  return json(200, {
    stepMs: context.history.stepMs,
    spanMs: context.history.spanMs,
    // The stored points, then this moment's, so the charts end now.
    points: [...context.history.list(), context.now()],
  });
}

/** Properties that hold row values: replaced unless `http.showValues`. */
const VALUE_FIELDS = new Set(['before', 'after', 'value', 'values', 'row', 'payload']);

/** A copy of `event` with its values replaced by "[redacted]" (see ServerSources.recentEvents). */
export function redactValues(event: unknown, depth = 0): unknown {
  if (depth > 8 || typeof event !== 'object' || event === null) return event;
  if (Array.isArray(event)) return event.map((item) => redactValues(item, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(event)) {
    out[name] = VALUE_FIELDS.has(name) && value !== null ? '[redacted]' : redactValues(value, depth + 1);
  }
  return out;
}

export function events(context: RouteContext): Reply {
  const provider = context.sources.recentEvents;
  if (provider === undefined) return json(200, { available: false, showValues: context.showValues, events: [] });
  const list = provider();
  return json(200, {
    available: true,
    showValues: context.showValues,
    events: context.showValues ? list : list.map((event) => redactValues(event)),
  });
}

export async function tables(context: RouteContext): Promise<Reply> {
  const captured = await readCaptured(context.sources.requestsBase);
  // The list counts once this process wrote it: before, it is the last run's (or there is none).
  const current = captured?.pid === process.pid;
  return json(200, { current, tables: current ? captured.tables : [] });
}

const snapshotBody = z.strictObject({
  tables: z.array(z.string().min(1).max(500)).min(1).max(1_000),
});

/** `POST /api/snapshot` with `{tables: [...]}`: 202 with the request id, 400 naming a bad table. */
export async function requestSnapshot(context: RouteContext, body: unknown): Promise<Reply> {
  const parsed = snapshotBody.safeParse(body);
  if (!parsed.success)
    return failure(
      400,
      'the body must be {"tables": ["schema.table", ...]} with one to 1000 table names',
      'CONFIG_INVALID',
    );
  const base = context.sources.requestsBase;
  try {
    const { texts, names } = await checkRequestedTables(base, parsed.data.tables, process.pid);
    const id = await writeRequest(base, texts);
    return json(202, { request: id, tables: names, state: 'pending' });
  } catch (error) {
    if (!isCdcError(error) || error.code === 'LOCAL_IO' || error.code === 'INTERNAL') throw error;
    return failure(400, error.oneLine(), error.code);
  }
}

const REQUEST_ID = /^[0-9a-z]{1,16}-[0-9a-f]{10}$/;

/** `GET /api/snapshot/<id>`: pending (waiting in the mailbox), taken (stored with a checkpoint) or gone. */
export async function snapshotRequestState(context: RouteContext, id: string): Promise<Reply> {
  if (!REQUEST_ID.test(id)) return failure(404, `no snapshot request ${JSON.stringify(id.slice(0, 40))}`);
  const { requestsBase, offsetsFile } = context.sources;
  if (await requestPending(requestsBase, id)) return json(200, { request: id, state: 'pending' });
  if (offsetsFile !== undefined && (await storedAsTaken(offsetsFile, id)))
    return json(200, { request: id, state: 'taken' });
  return json(200, {
    request: id,
    state: offsetsFile === undefined ? 'taken-or-dropped' : 'dropped',
    detail:
      offsetsFile === undefined
        ? 'the capture removed the request from its mailbox: taken, or dropped with a warning in its log'
        : 'the capture dropped the request without taking it; its log says why',
  });
}

/** The one line of an unexpected failure, for the 500 reply and the log. */
export function internalError(error: unknown): string {
  return toCdcError(error).message.split('\n')[0] ?? 'internal error';
}
