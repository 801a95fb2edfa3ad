/**
 * `pgcdc status`: how a capture stands, read-only, for people (aligned text) and machines (--json):
 * the slot as the server sees it (wal_status, safe_wal_size, confirmed and restart LSN, lag in bytes
 * and seconds, retained WAL), the capture process (from the offsets file's lock and the run-state
 * file), the last checkpoint (LSN, sink position, snapshot progress) and the alerts, judged by the
 * `alerts` thresholds of the config (health/alerts-config.ts).
 *
 * Exit codes (the Nagios convention, so monitoring systems can call it): 0 healthy, 1 warning,
 * 2 critical, 3 unknown: the server could not be checked, or bad flags or config (one error line).
 * Never prints the connection string or a password: the server is named user@host:port/database.
 */
import type { Command } from 'commander';
import { hostname } from 'node:os';
import path from 'node:path';
import { readFile } from 'node:fs/promises';
import type { Config } from '../config.ts';
import { toCdcError } from '../core/errors.ts';
import { lockHolder } from '../offsets/lock.ts';
import { readCheckpoint } from '../offsets/file.ts';
import { offsetsInSink, sideFilesBase } from '../offsets/open.ts';
import type { Checkpoint, SnapshotTableState } from '../offsets/store.ts';
import { describeEndpoint, openConnection, resolveEndpoint } from '../postgres/connect.ts';
import { SINK_KINDS } from '../sinks/registry.ts';
import { evaluateAlerts } from '../health/evaluate.ts';
import { procStartTime, readRunFile, runFilePath, type RunState } from '../health/run-file.ts';
import { sampleSlot } from '../health/slot-probe.ts';
import {
  buildStatusReport,
  formatStatusReport,
  STATUS_EXIT_CODES,
  type CheckpointInfo,
  type ProcessInfo,
  type RunFileInfo,
  type TableProgress,
} from '../health/status-report.ts';
import type { SlotSample } from '../health/types.ts';
import { reportFatal } from './exit.ts';
import { loadConfig, type RunFlags } from './run-command.ts';
import { addConnectionOptions } from './connection-flags.ts';

/** The exit code of `status` for bad input and for a check that could not be made. */
export const STATUS_UNKNOWN_EXIT = STATUS_EXIT_CODES.unknown;

interface StatusFlags extends RunFlags {
  json?: boolean;
}

function checkpointInfo(location: string, checkpoint: Checkpoint | undefined, error: string | null): CheckpointInfo {
  const tables = (list: readonly SnapshotTableState[]): TableProgress[] =>
    list.map((t) => ({ table: `${t.schema}.${t.table}`, rows: t.read, total: null, done: t.cursor.done }));
  return {
    location,
    present: checkpoint !== undefined,
    error,
    lsn: checkpoint?.lsn ?? null,
    updatedAt: checkpoint?.updatedAt ?? null,
    sink: checkpoint?.sink ?? null,
    lastCommitLsn: checkpoint?.lastCommit?.endLsn ?? null,
    snapshot:
      checkpoint?.snapshot === undefined
        ? null
        : { state: checkpoint.snapshot.state, tables: tables(checkpoint.snapshot.tables ?? []) },
    incremental:
      checkpoint?.incremental === undefined
        ? null
        : { id: checkpoint.incremental.id, tables: tables(checkpoint.incremental.tables) },
  };
}

/** Seconds since `pid` started, from /proc (Linux); undefined elsewhere. */
async function procUptimeSeconds(pid: number): Promise<number | undefined> {
  try {
    const ticks = Number(await procStartTime(pid));
    const uptime = Number((await readFile('/proc/uptime', 'utf8')).split(' ')[0]);
    // USER_HZ is 100 on every Linux architecture pgcdc runs on.
    return Number.isFinite(ticks) && Number.isFinite(uptime) ? Math.max(0, uptime - ticks / 100) : undefined;
  } catch {
    return undefined;
  }
}

/** Whether `run` describes a process alive now on this host (the same pid and start time). */
async function runFileProcessAlive(run: RunState): Promise<boolean> {
  if (run.host !== hostname()) return false;
  try {
    process.kill(run.pid, 0);
  } catch (error) {
    if (error instanceof Error && 'code' in error && error.code === 'ESRCH') return false;
  }
  const now = await procStartTime(run.pid);
  return run.procStartTime === null || now === null || now === run.procStartTime;
}

async function gather(flags: StatusFlags): Promise<string> {
  // `--offsets kafka` alone names the sink keeping the checkpoints; the rest of the sink's config is not needed here.
  const sinkKindOffsets = SINK_KINDS.find((kind) => kind === flags.offsets);
  const config: Config = await loadConfig(sinkKindOffsets === undefined ? flags : { ...flags, offsets: undefined });
  const offsets = sinkKindOffsets ?? config.offsets;
  const sinkKind = sinkKindOffsets ?? config.sink.kind;
  const inSink = offsetsInSink(offsets, sinkKind);
  const offsetsFile = inSink ? undefined : path.resolve(offsets);
  const endpoint = resolveEndpoint(config.source);

  let checkpoint: CheckpointInfo;
  if (offsetsFile === undefined)
    checkpoint = checkpointInfo(`the ${sinkKind} sink (not read by status; see the run file)`, undefined, null);
  else {
    try {
      checkpoint = checkpointInfo(offsetsFile, await readCheckpoint(offsetsFile), null);
    } catch (error) {
      checkpoint = checkpointInfo(offsetsFile, undefined, toCdcError(error).oneLine());
    }
  }

  const runPath = path.resolve(runFilePath(sideFilesBase(offsets, config.slot, sinkKind)));
  const runRead = await readRunFile(runPath);
  let runContent = runRead.kind === 'ok' ? runRead.state : null;
  let runError = runRead.kind === 'invalid' ? runRead.reason : null;
  if (runContent !== null && runContent.slot !== config.slot) {
    runError = `it belongs to slot ${runContent.slot}, not ${config.slot}`;
    runContent = null;
  }

  const holder = offsetsFile === undefined ? undefined : await lockHolder(`${offsetsFile}.lock`);
  let processInfo: ProcessInfo = {
    running: false,
    pid: null,
    host: null,
    startedAt: null,
    uptimeSeconds: null,
    state: null,
    foundBy: null,
  };
  let current = false;
  if (holder !== undefined) {
    current = runContent !== null && runContent.pid === holder.pid && runContent.host === holder.host;
    const local = holder.host === hostname();
    processInfo = {
      running: true,
      pid: holder.pid,
      host: holder.host,
      startedAt: current ? (runContent?.startedAt ?? null) : null,
      uptimeSeconds: current
        ? Math.max(0, (Date.now() - Date.parse(runContent?.startedAt ?? '')) / 1000)
        : local
          ? ((await procUptimeSeconds(holder.pid)) ?? null)
          : null,
      state: current ? (runContent?.state ?? null) : null,
      foundBy: 'lock',
    };
  } else if (offsetsFile === undefined && runContent !== null && runContent.state !== 'stopped') {
    current = await runFileProcessAlive(runContent);
    if (current)
      processInfo = {
        running: true,
        pid: runContent.pid,
        host: runContent.host,
        startedAt: runContent.startedAt,
        uptimeSeconds: Math.max(0, (Date.now() - Date.parse(runContent.startedAt)) / 1000),
        state: runContent.state,
        foundBy: 'run-file',
      };
  }
  const run: RunFileInfo = {
    file: runPath,
    present: runRead.kind !== 'absent',
    error: runError,
    content: runContent,
    current,
  };

  let sample: SlotSample | undefined;
  let serverError: string | undefined;
  try {
    const client = await openConnection(endpoint, 'query', 'pgcdc status');
    client.on('error', () => undefined);
    try {
      const lastCommitAt = runContent?.lastCommitAt == null ? undefined : Date.parse(runContent.lastCommitAt);
      sample = await sampleSlot(client, config.slot, { lastCommitAt });
    } finally {
      await client.end().catch(() => undefined);
    }
  } catch (error) {
    serverError = toCdcError(error).oneLine();
  }
  const report = buildStatusReport({
    checkedAt: new Date().toISOString(),
    slot: config.slot,
    endpoint: describeEndpoint(endpoint),
    sample,
    serverError,
    alerts: sample === undefined ? [] : evaluateAlerts(sample, config.alerts),
    process: processInfo,
    checkpoint,
    run,
  });
  process.exitCode = report.exitCode;
  return flags.json ? `${JSON.stringify(report, null, 2)}\n` : formatStatusReport(report);
}

export function registerStatus(program: Command): void {
  const command = program
    .command('status')
    .description(
      'how a capture stands, read-only: slot, lag, retained WAL, safe_wal_size, process, checkpoint, alerts ' +
        '(exit 0 ok, 1 warning, 2 critical, 3 unknown)',
    )
    .option('-c, --config <file>', 'YAML config file of the capture (its source, slot, offsets and alerts)')
    .option(
      '--source <url>',
      'postgres://user@host:5432/db (sslmode defaults to require; password: PGPASSWORD, ~/.pgpass or ' +
        '--password-file); PG* variables also work',
    )
    .option('--slot <name>', 'replication slot (default pgcdc_slot)')
    .option('--offsets <file>', 'offsets file of the capture (default ./pgcdc-offsets.json), or kafka|nats')
    .option('--json', 'print the report as JSON on stdout (docs/operations.md, "Monitoring" lists its fields)');
  addConnectionOptions(command).action(async (flags: StatusFlags) => {
    try {
      process.stdout.write(await gather(flags));
    } catch (error) {
      reportFatal(error);
      process.exitCode = STATUS_UNKNOWN_EXIT;
    }
  });
}
