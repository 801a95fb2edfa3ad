/**
 * The report of `pgcdc status` (and of a `/status` route): what the offsets file, the lock, the
 * run-state file and the server say, judged by the alert thresholds. `buildStatusReport` is pure;
 * the CLI gathers its inputs (cli/status-command.ts). The JSON field names are stable
 * (docs/operations.md, "Monitoring"); absent values are null, never missing.
 */
import type { AlertLevel, AlertState, SlotSample } from './types.ts';
import { worstLevel } from './evaluate.ts';
import { formatBytes, formatDuration } from './bytes.ts';
import type { RunState } from './run-file.ts';

/** ok, warning, critical by the thresholds; unknown when the server could not be checked. */
export type StatusLevel = AlertLevel | 'unknown';

/** The exit code of each level (the Nagios convention: 3 is unknown). */
export const STATUS_EXIT_CODES: Readonly<Record<StatusLevel, number>> = { ok: 0, warning: 1, critical: 2, unknown: 3 };

type Nullable<T> = { [K in keyof T]-?: undefined extends T[K] ? Exclude<T[K], undefined> | null : T[K] };

export interface ProcessInfo {
  readonly running: boolean;
  readonly pid: number | null;
  readonly host: string | null;
  readonly startedAt: string | null;
  readonly uptimeSeconds: number | null;
  /** The engine's state from the run file, when it belongs to the running process. */
  readonly state: string | null;
  /** How it was found: the offsets file's lock, or the run file's pid (checkpoints kept in the sink). */
  readonly foundBy: 'lock' | 'run-file' | null;
}

export interface CheckpointInfo {
  /** The offsets file, or `the <kind> sink` when the checkpoints are kept there only. */
  readonly location: string;
  readonly present: boolean;
  /** Why it could not be read (a corrupt file): a critical problem, as the capture cannot start. */
  readonly error: string | null;
  readonly lsn: string | null;
  readonly updatedAt: string | null;
  readonly sink: Readonly<Record<string, unknown>> | null;
  readonly lastCommitLsn: string | null;
  readonly snapshot: { readonly state: string; readonly tables: readonly TableProgress[] } | null;
  readonly incremental: { readonly id: string; readonly tables: readonly TableProgress[] } | null;
}

export interface TableProgress {
  readonly table: string;
  readonly rows: number;
  readonly total: number | null;
  readonly done: boolean;
}

export interface RunFileInfo {
  readonly file: string;
  readonly present: boolean;
  /** Why its content was not used (corrupt, edited, another slot's): reported, never fatal. */
  readonly error: string | null;
  /** Its content, when valid. */
  readonly content: RunState | null;
  /** Whether it belongs to the process running now (false: a past run's last words). */
  readonly current: boolean;
}

export interface StatusInputs {
  readonly checkedAt: string;
  readonly slot: string;
  readonly endpoint: string;
  readonly sample: SlotSample | undefined;
  readonly serverError: string | undefined;
  readonly alerts: readonly AlertState[];
  readonly process: ProcessInfo;
  readonly checkpoint: CheckpointInfo;
  readonly run: RunFileInfo;
}

export interface StatusReport {
  readonly level: StatusLevel;
  readonly exitCode: number;
  readonly checkedAt: string;
  readonly slot: string;
  readonly server: { readonly endpoint: string; readonly reachable: boolean; readonly error: string | null };
  readonly sample: Nullable<SlotSample> | null;
  readonly alerts: readonly Nullable<AlertState>[];
  readonly process: ProcessInfo;
  readonly checkpoint: CheckpointInfo;
  readonly run: RunFileInfo;
  /** Per table: the running capture's live progress (run file), else the checkpoint's. */
  readonly snapshot: readonly TableProgress[];
  readonly lastCommitAt: string | null;
  readonly eventsDelivered: number | null;
}

function nulls<T extends object>(value: T): Nullable<T> {
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, v === undefined ? null : v])) as Nullable<T>;
}

export function buildStatusReport(input: StatusInputs): StatusReport {
  const local: AlertLevel = input.checkpoint.error !== null ? 'critical' : 'ok';
  const judged = worstLevel([local, ...input.alerts.map((a) => a.level)]);
  const level: StatusLevel = input.sample === undefined && judged !== 'critical' ? 'unknown' : judged;
  const live = input.run.current ? input.run.content : null;
  const snapshot: TableProgress[] =
    live !== null && live.snapshot.length > 0
      ? live.snapshot.map((t) => ({ ...t }))
      : [...(input.checkpoint.snapshot?.tables ?? []), ...(input.checkpoint.incremental?.tables ?? [])];
  return {
    level,
    exitCode: STATUS_EXIT_CODES[level],
    checkedAt: input.checkedAt,
    slot: input.slot,
    server: { endpoint: input.endpoint, reachable: input.sample !== undefined, error: input.serverError ?? null },
    sample: input.sample === undefined ? null : nulls(input.sample),
    alerts: input.alerts.map((a) => nulls(a)),
    process: input.process,
    checkpoint: input.checkpoint,
    run: input.run,
    snapshot,
    lastCommitAt: input.run.content?.lastCommitAt ?? null,
    eventsDelivered: live?.eventsDelivered ?? null,
  };
}

const LABEL = 16;
const line = (label: string, text: string): string => `${label.padEnd(LABEL)}${text}\n`;

function progress(t: TableProgress): string {
  const total = t.total === null ? '' : ` of ~${t.total}`;
  const pct =
    t.total !== null && t.total > 0 && !t.done ? ` (${Math.min(100, Math.floor((t.rows / t.total) * 100))}%)` : '';
  return `${t.table}: ${t.rows} rows${total}${pct}${t.done ? ', done' : ''}`;
}

/** The report for people: aligned lines, sizes in KiB/MiB/GiB, alerts last. */
export function formatStatusReport(report: StatusReport): string {
  let out = `pgcdc status: ${report.level.toUpperCase()} (exit ${report.exitCode})\n`;
  const s = report.sample;
  if (s === null)
    out += line('server', `${report.server.endpoint}: not checked (${report.server.error ?? 'unknown error'})`);
  else {
    out += line('server', `${report.server.endpoint}, WAL at ${s.currentLsn}`);
    if (!s.exists) out += line('slot', `${report.slot}: does not exist`);
    else {
      const use = s.active ? `in use (pid ${s.activePid ?? '?'})` : 'not in use';
      out += line('slot', `${report.slot}: ${use}${s.walStatus === null ? '' : `, wal_status ${s.walStatus}`}`);
      out += line('confirmed LSN', s.confirmedFlushLsn ?? 'none');
      out += line('restart LSN', s.restartLsn ?? 'none');
      out += line('lag', s.lagBytes === null ? 'unknown' : formatBytes(s.lagBytes));
      out += line('lag time', s.lagSeconds === null ? 'unknown (no commit time known)' : formatDuration(s.lagSeconds));
      out += line('retained WAL', s.retainedWalBytes === null ? 'unknown' : formatBytes(s.retainedWalBytes));
      out += line(
        'safe_wal_size',
        s.safeWalSizeBytes === null
          ? 'no limit (max_slot_wal_keep_size -1 or PostgreSQL before 13)'
          : `${formatBytes(s.safeWalSizeBytes)} of max_slot_wal_keep_size ${
              s.maxSlotWalKeepSizeBytes === null ? '?' : formatBytes(s.maxSlotWalKeepSizeBytes)
            }`,
      );
    }
  }
  const p = report.process;
  out += line(
    'process',
    p.running
      ? `running, pid ${p.pid ?? '?'}${p.host === null ? '' : ` on ${p.host}`}` +
          `${p.uptimeSeconds === null ? '' : `, up ${formatDuration(p.uptimeSeconds)}`}` +
          `${p.state === null ? '' : `, ${p.state}`}`
      : 'not running',
  );
  if (report.eventsDelivered !== null) out += line('delivered', `${report.eventsDelivered} events since it started`);
  if (report.lastCommitAt !== null) out += line('last commit', report.lastCommitAt);
  const c = report.checkpoint;
  out += line(
    'checkpoint',
    c.error !== null
      ? `${c.location}: ${c.error}`
      : !c.present
        ? `${c.location}: none stored yet`
        : `${c.lsn ?? '?'} at ${c.updatedAt ?? '?'} (${c.location})`,
  );
  if (c.sink !== null) out += line('sink position', JSON.stringify(c.sink));
  for (const [i, t] of report.snapshot.entries()) out += line(i === 0 ? 'snapshot' : '', progress(t));
  const r = report.run;
  if (r.error !== null) out += line('run file', `${r.file}: ignored: ${r.error}`);
  else if (r.present && !r.current && r.content !== null)
    out += line('last run', `pid ${r.content.pid}, ${r.content.state} at ${r.content.updatedAt} (${r.file})`);
  const raised = report.alerts.filter((a) => a.level !== 'ok');
  if (raised.length === 0 && s !== null) out += line('alerts', 'none');
  for (const [i, a] of raised.entries())
    out += line(i === 0 ? 'alerts' : '', `${a.level.toUpperCase()} ${a.name}: ${a.message}`);
  if (c.error !== null) out += line(raised.length === 0 ? 'alerts' : '', `CRITICAL checkpoint: ${c.error}`);
  return out;
}
