/**
 * `pgcdc drain`: capture up to the server's WAL position read at the start, store the checkpoint,
 * confirm it, and exit 0 once the slot's confirmed_flush_lsn is at or past that position: step one
 * of every upgrade runbook (docs/operations.md, "Draining").
 *
 * It is `pgcdc run` with an end: the same flags and config, the same engine, sink, offsets and
 * acknowledgement rule (library/run.ts startRun); it stops cleanly once the drain rule holds
 * (drain.ts DrainWatch), then reads pg_replication_slots until the slot shows the target confirmed.
 * Writes that go on meanwhile are not chased: the target is the position read at the start.
 *
 * Exit codes: 0 drained; 1 a runtime failure, or another pgcdc runs on the same offsets or slot
 * (refused before anything starts); 2 bad input; 3 the target was not reached within --timeout
 * (what was delivered is confirmed by the clean stop).
 */
import type { Command } from 'commander';
import path from 'node:path';
import type pg from 'pg';
import type { Config } from '../config.ts';
import { CdcError } from '../core/errors.ts';
import type { EngineEvent, EngineEvents } from '../core/engine-events.ts';
import { createLogger, type Logger } from '../core/log.ts';
import { lockHolder } from '../offsets/lock.ts';
import { readCheckpoint } from '../offsets/file.ts';
import { offsetsInSink } from '../offsets/open.ts';
import type { Checkpoint } from '../offsets/store.ts';
import { openConnection, resolveEndpoint } from '../postgres/connect.ts';
import { readSlotConfirmed, readWalPosition } from '../postgres/wal-position.ts';
import { pendingTables } from '../snapshot/resume-state.ts';
import { startRun } from '../library/run.ts';
import { startRunObservers } from '../server/observers.ts';
import { EXIT_FAILURE, EXIT_OK, reportFatal } from './exit.ts';
import { addCaptureOptions } from './capture-options.ts';
import { loadConfig, makeSink, type RunFlags } from './run-command.ts';
import { addConnectionOptions } from './connection-flags.ts';
import {
  bytesBetween,
  DRAIN_TIMEOUT_EXIT,
  drainCaptureConfig,
  DrainWatch,
  drainedLine,
  lsnAtLeast,
  parseDuration,
  timeoutMessage,
  type DrainResult,
} from './drain.ts';

interface DrainFlags extends RunFlags {
  json?: boolean;
  timeout?: string;
  progressInterval?: string;
}

/** How often the slot is read while waiting for its confirmed position. */
const POLL_MS = 100;

/** Another pgcdc on the same offsets file or slot: refused with one line, before anything starts. */
function runningElsewhere(what: string): CdcError {
  return new CdcError('OFFSETS_LOCKED', `${what}: stop the running pgcdc first (SIGTERM stops it cleanly), then drain`);
}

/** The stored checkpoint still has a snapshot to take (initial or incremental). */
function snapshotPending(checkpoint: Checkpoint | undefined): boolean {
  if (checkpoint === undefined) return false;
  return checkpoint.snapshot?.state === 'running' || pendingTables(checkpoint.incremental).length > 0;
}

function fanOut(...listeners: EngineEvents[]): EngineEvents {
  return { emit: (event: EngineEvent) => listeners.forEach((listener) => listener.emit(event)) };
}

async function waitForConfirmed(
  query: pg.Client,
  slot: string,
  target: string,
  deadline: number,
): Promise<string | undefined> {
  let confirmed: string | undefined;
  for (;;) {
    confirmed = (await readSlotConfirmed(query, slot))?.confirmed;
    if (lsnAtLeast(confirmed, target) || Date.now() >= deadline) return confirmed;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

async function drain(flags: DrainFlags, config: Config, log: Logger): Promise<number> {
  const started = Date.now();
  const timeoutMs = parseDuration(flags.timeout ?? '10m');
  const progressMs =
    flags.progressInterval === undefined ? 10_000 : parseDuration(flags.progressInterval, '--progress-interval');
  const deadline = started + timeoutMs;
  if (config.snapshot.mode === 'initial_only')
    throw new CdcError(
      'CONFIG_INVALID',
      'drain streams up to a WAL position: snapshot mode initial_only never streams',
      {
        hint: 'use another --snapshot-mode (initial, never) with drain',
      },
    );
  const offsetsFile = offsetsInSink(config.offsets, config.sink.kind) ? undefined : path.resolve(config.offsets);
  if (offsetsFile !== undefined) {
    const holder = await lockHolder(`${offsetsFile}.lock`);
    if (holder !== undefined)
      throw runningElsewhere(`a pgcdc process (pid ${holder.pid} on ${holder.host}) is running on ${offsetsFile}`);
  }
  const query = await openConnection(resolveEndpoint(config.source), 'query', 'pgcdc drain');
  query.on('error', () => undefined);
  try {
    const position = await readWalPosition(query);
    const target = position.lsn;
    const slotBefore = await readSlotConfirmed(query, config.slot);
    if (slotBefore?.active)
      throw runningElsewhere(
        `slot ${config.slot} is in use by another process (pid ${slotBefore.activePid ?? '?'} on the server)`,
      );
    const checkpoint = offsetsFile === undefined ? undefined : await readCheckpoint(offsetsFile);
    const pendingAtStart = snapshotPending(checkpoint);
    const result = (fields: Partial<DrainResult> & Pick<DrainResult, 'drained' | 'confirmed'>): DrainResult => ({
      slot: config.slot,
      target,
      standby: position.standby,
      checkpoint: null,
      eventsDelivered: 0,
      alreadyDrained: false,
      elapsedMs: Date.now() - started,
      ...fields,
    });
    const print = (r: DrainResult): void => {
      if (flags.json) process.stdout.write(`${JSON.stringify(r)}\n`);
      else if (r.drained) process.stdout.write(`${drainedLine(r)}\n`);
    };

    // Nothing new since the last capture: the stored checkpoint and the slot are at the target already.
    if (
      checkpoint !== undefined &&
      !pendingAtStart &&
      lsnAtLeast(checkpoint.lsn, target) &&
      lsnAtLeast(slotBefore?.confirmed, target)
    ) {
      print(
        result({
          drained: true,
          confirmed: slotBefore?.confirmed ?? null,
          checkpoint: checkpoint.lsn,
          alreadyDrained: true,
        }),
      );
      return EXIT_OK;
    }

    log.info(
      { slot: config.slot, target, standby: position.standby, behind: bytesBetween(slotBefore?.confirmed, target) },
      `draining up to ${target}, the server's ${position.standby ? 'replay' : 'WAL'} position now; what is written ` +
        'after it is left for the next run',
    );
    let reached!: () => void;
    const reachedPromise = new Promise<'reached'>((resolve) => (reached = () => resolve('reached')));
    const watch = new DrainWatch(target, pendingAtStart, () => reached());
    const observers = await startRunObservers(config, log);
    const capture = drainCaptureConfig(config);
    const run = startRun(capture, () => makeSink(capture, log), log, fanOut(watch, observers.events));
    observers.watch(() => run.status());
    let interrupted = false;
    const onSignal = (): void => {
      // A second signal: out at once (nothing unconfirmed is lost; it is delivered again).
      if (interrupted) process.exit(EXIT_FAILURE);
      interrupted = true;
      reached();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    const progress = setInterval(() => {
      const state = watch.state();
      log.info(
        {
          target,
          acked: state.acked ?? null,
          remaining: bytesBetween(state.acked, target),
          delivered: state.delivered,
        },
        state.streaming ? 'draining' : 'draining: the capture is starting or taking its snapshot',
      );
    }, progressMs);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)));
    try {
      const outcome = await Promise.race([reachedPromise, timedOut, run.done.then(() => 'ended' as const)]);
      clearInterval(progress);
      clearTimeout(timer);
      // Where it stood, before the stop changes the state; the positions the stop confirms come after.
      const before = watch.state();
      const clean = await run.stop();
      const state = { ...watch.state(), streaming: before.streaming, fault: before.fault };
      if (outcome === 'timeout') {
        // A fault after the stop is not the story: the target was not reached in time.
        if (clean) await run.done.catch(() => undefined);
        const confirmed = (await readSlotConfirmed(query, config.slot))?.confirmed;
        const message = timeoutMessage(timeoutMs, state, confirmed, clean);
        if (flags.json)
          print(
            result({
              drained: false,
              confirmed: confirmed ?? null,
              checkpoint: state.checkpoint ?? null,
              eventsDelivered: state.delivered,
              error: message,
            }),
          );
        process.stderr.write(`pgcdc: error: ${message}\n`);
        // A capture that did not stop may hold the process open (a write the sink never answers).
        if (!clean) process.exit(DRAIN_TIMEOUT_EXIT);
        return DRAIN_TIMEOUT_EXIT;
      }
      // A fault that ended the run is reported as such (exit 1 or 2); a run that did not stop never settles.
      if (clean) await run.done;
      if (!clean || interrupted) {
        process.stderr.write(
          `pgcdc: error: ${
            clean
              ? 'drain interrupted by a signal: what was delivered is confirmed; run drain again'
              : 'the capture did not stop within shutdown.timeoutMs (a stalled sink or source): nothing more was ' +
                'confirmed; run drain again once the sink is healthy'
          }\n`,
        );
        if (!clean) process.exit(EXIT_FAILURE);
        return EXIT_FAILURE;
      }
      const confirmed = await waitForConfirmed(query, config.slot, target, deadline);
      if (!lsnAtLeast(confirmed, target)) {
        process.stderr.write(
          `pgcdc: error: the capture stopped at ${state.acked ?? '?'} but slot ${config.slot} shows ` +
            `${confirmed ?? 'nothing'} confirmed, not the target ${target}, within --timeout; run drain again\n`,
        );
        return DRAIN_TIMEOUT_EXIT;
      }
      print(
        result({
          drained: true,
          confirmed: confirmed ?? null,
          checkpoint: state.checkpoint ?? state.acked ?? null,
          eventsDelivered: state.delivered,
        }),
      );
      return EXIT_OK;
    } finally {
      clearInterval(progress);
      clearTimeout(timer);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      await observers.stop();
    }
  } finally {
    await query.end().catch(() => undefined);
  }
}

export function registerDrain(program: Command): void {
  const command = addCaptureOptions(
    program
      .command('drain')
      .description(
        "capture up to the server's WAL position now, store and confirm it, then exit 0 saying nothing is left " +
          '(before an upgrade or a switch-over; exit 3 when --timeout passes first)',
      ),
  )
    .option('--timeout <duration>', 'give up after this long with exit 3: 90s, 10m, 1h (default 10m)')
    .option('--progress-interval <duration>', 'a progress line on stderr this often (default 10s)')
    .option('--json', 'print the result as one JSON object on stdout');
  addConnectionOptions(command).action(async (flags: DrainFlags) => {
    let code: number;
    try {
      const config = await loadConfig(flags);
      code = await drain(flags, config, createLogger(config.log));
    } catch (error) {
      code = reportFatal(error);
    }
    process.exitCode = code;
  });
}
