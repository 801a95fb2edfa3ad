/**
 * Which snapshot work a running capture takes: `pgcdc snapshot` requests (files next to the offsets
 * file, polled while streaming, taken at the next transaction boundary and deleted once stored), and
 * the stored incremental snapshot of tables the selection no longer has (dropped with a warning). A
 * request for a table outside the selection is dropped with a warning, never fatal.
 */
import { toCdcError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { ResumeState } from '../offsets/store.ts';
import type { TableName } from '../snapshot/initial-reader.ts';
import { readRequests, removeRequest, writeCaptured } from '../snapshot/requests.ts';
import { pendingTables, stopTables } from '../snapshot/resume-state.ts';
import { displayName, uncaptured, uncapturedNames, type TableSelection } from '../selection/table-selection.ts';

/** How often the requests directory of `pgcdc snapshot` is looked at. */
const REQUEST_POLL_MS = 1000;

export interface SnapshotRequestWatch {
  /** A checkpoint naming these request ids was stored: their files may go. */
  taken(ids: readonly string[]): void;
  stop(): void;
}

/**
 * Writes the captured tables' names next to the offsets file (`pgcdc snapshot` checks names against
 * them) and polls for requests every second, handing each new one to `request`.
 */
export async function watchSnapshotRequests(input: {
  readonly offsets: string;
  readonly selection: TableSelection;
  /** Request ids the stored checkpoint says were taken already. */
  readonly taken: readonly string[];
  readonly request: (id: string, tables: readonly TableName[]) => void;
  readonly log: Logger;
}): Promise<SnapshotRequestWatch> {
  const { offsets, selection, log } = input;
  const taken = new Set(input.taken);
  await writeCaptured(offsets, selection.tables.map(displayName)).catch((error: unknown) => {
    log.warn(
      { error: toCdcError(error).message },
      'cannot write the list of captured tables next to the offsets file: pgcdc snapshot cannot check ' +
        'table names before a request (the capture still does)',
    );
  });
  const poll = async (): Promise<void> => {
    const requests = await readRequests(offsets, (file, reason) =>
      log.warn({ file }, `ignored a malformed snapshot request: ${reason}`),
    );
    for (const request of requests) {
      const outside = uncapturedNames(selection, request.tables);
      if (taken.has(request.id)) await removeRequest(offsets, request.id);
      else if (outside === undefined) input.request(request.id, request.tables);
      else {
        log.warn(
          { request: request.id },
          `dropped snapshot request ${request.id}: it names ${outside.names}, which this capture does not ` +
            `capture (it captures ${outside.captured})`,
        );
        await removeRequest(offsets, request.id);
      }
    }
  };
  void poll();
  const timer = setInterval(() => void poll(), REQUEST_POLL_MS);
  timer.unref();
  return {
    taken: (ids) => {
      for (const id of ids) taken.add(id);
    },
    stop: () => clearInterval(timer),
  };
}

/**
 * A stored incremental snapshot of tables this run does not capture (the selection changed, or a
 * table was dropped) is stopped with a warning: reading it would deliver an uncaptured table, or
 * fail on a missing one at every start.
 */
export function dropUncapturedSnapshots(progress: ResumeState, selection: TableSelection, log: Logger): ResumeState {
  const incremental = progress.incremental;
  if (!incremental) return progress;
  const outside = uncaptured(
    selection,
    pendingTables(incremental).flatMap((i) => incremental.tables[i] ?? []),
  );
  if (outside.length === 0) return progress;
  const names = outside.map(displayName);
  log.warn(
    { tables: names },
    `the stored incremental snapshot of ${names.join(', ')} is dropped: this run does not capture ` +
      `${outside.length === 1 ? 'it' : 'them'}`,
  );
  return { ...progress, incremental: stopTables(incremental, outside) };
}
