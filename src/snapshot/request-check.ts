/**
 * The checks of a snapshot request before it is dropped in the mailbox (requests.ts), shared by
 * `pgcdc snapshot` (cli/snapshot-command.ts) and the dashboard's `POST /api/snapshot`
 * (server/routes.ts), so both refuse the same names with the same line.
 *
 * A capture leaves the list of the tables it captures in the mailbox at start: a name outside it (a
 * typo, a table outside the selection) is refused before the request is made. While a capture runs,
 * its list counts only once it wrote it (one still starting has not yet: the request is then made,
 * and the capture itself drops it with a warning if needed).
 */
import { CdcError } from '../core/errors.ts';
import { readCheckpoint } from '../offsets/file.ts';
import { splitTableList } from '../selection/patterns.ts';
import { parseTableName } from '../selection/table-name.ts';
import { displayName } from '../selection/table-selection.ts';
import { readCaptured } from './requests.ts';

/** Most captured tables named in a refusal. */
const LISTED = 20;

/** A request's tables as the user wrote them (`texts`, for the mailbox) and as displayed (`names`). */
export interface CheckedTables {
  readonly texts: readonly string[];
  readonly names: readonly string[];
}

/**
 * Splits and parses `tables` (each may be a comma-separated list) and refuses names the capture does
 * not capture. `running` is the pid of the capture using the mailbox `base` now (undefined: none
 * runs; then the list of the last one to start counts). Throws CdcError (CONFIG_INVALID for a
 * malformed name, TABLE_MISSING for an uncaptured one) with one line naming what is wrong.
 */
export async function checkRequestedTables(
  base: string,
  tables: readonly string[],
  running: number | undefined,
): Promise<CheckedTables> {
  const texts = tables.flatMap(splitTableList);
  if (texts.length === 0)
    throw new CdcError('CONFIG_INVALID', 'no table named: a snapshot request needs at least one schema.table', {
      hint: 'name one or more captured tables',
    });
  const names = texts.map((text) => displayName(parseTableName(text)));
  const captured = await readCaptured(base);
  if (running === undefined && captured !== undefined) refuseUncaptured(names, captured.tables, undefined, base);
  else if (running !== undefined && captured?.pid === running) refuseUncaptured(names, captured.tables, running, base);
  return { texts, names };
}

/**
 * Refuses `names` outside `captured`: the list of the running capture (pid `running`), or with none
 * running, of the last one to start with this offsets file.
 */
function refuseUncaptured(
  names: readonly string[],
  captured: readonly string[],
  running: number | undefined,
  offsets: string,
): void {
  const known = new Set(captured);
  const outside = names.filter((n) => !known.has(n));
  if (outside.length === 0) return;
  const more = captured.length > LISTED ? ` and ${captured.length - LISTED} more` : '';
  const list = captured.length === 0 ? 'no table' : `${captured.slice(0, LISTED).join(', ')}${more}`;
  const subject = `${outside.join(', ')} ${outside.length === 1 ? 'is' : 'are'} not captured by`;
  throw running === undefined
    ? new CdcError(
        'TABLE_MISSING',
        `${subject} the last pgcdc run using ${offsets} (it captured ${list}; none is running now)`,
        {
          hint:
            'name a captured table (schema.table, case-sensitive); if the next run captures more (a wider ' +
            '--tables), make the request once it runs',
        },
      )
    : new CdcError('TABLE_MISSING', `${subject} the pgcdc run using ${offsets} (pid ${running}; it captures ${list})`, {
        hint:
          'name a captured table (schema.table, case-sensitive); to capture another table, add it to that ' +
          "run's --tables and restart it",
      });
}

/** Whether the checkpoint stored in the offsets file `offsets` records request `id` as taken. */
export async function storedAsTaken(offsets: string, id: string): Promise<boolean> {
  const checkpoint = await readCheckpoint(offsets).catch(() => undefined);
  return checkpoint?.incremental?.requests.includes(id) ?? false;
}
