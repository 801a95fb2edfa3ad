/**
 * `pgcdc snapshot <table...>`: asks the capture that uses an offsets file for an incremental
 * snapshot of the given tables, while it keeps streaming. The request goes through a mailbox next
 * to the offsets file (snapshot/requests.ts): no signal table and no write to the source needed.
 *
 * A capture leaves the list of the tables it captures in that mailbox at start, so a request for
 * any other table (a typo, a table outside its selection) is refused here, before it is made:
 * exit 2, naming it and listing the captured tables (with no capture running, those of the last
 * one). A request that reaches a capture anyway is dropped there with a warning.
 *
 * Exit 0 once the running capture took the request (stored it with its checkpoint), or, with none
 * running, once it is queued for the next start; 1 when a running capture did not take it in
 * --wait seconds (it stays queued); 2 for bad input, or a request the capture dropped.
 */
import type { Command } from 'commander';
import { setTimeout as delay } from 'node:timers/promises';
import path from 'node:path';
import { readConfigFile } from '../config.ts';
import { CdcError } from '../core/errors.ts';
import { lockHolder } from '../offsets/lock.ts';
import { requestPending, writeRequest } from '../snapshot/requests.ts';
import { checkRequestedTables, storedAsTaken } from '../snapshot/request-check.ts';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, reportFatal } from './exit.ts';

interface SnapshotFlags {
  config?: string;
  offsets?: string;
  wait: string;
  json?: boolean;
}

async function offsetsPath(flags: SnapshotFlags): Promise<string> {
  if (flags.offsets !== undefined) return flags.offsets;
  if (flags.config !== undefined) {
    const file = await readConfigFile(flags.config);
    const value = (file as { offsets?: unknown }).offsets;
    if (typeof value === 'string') return value;
  }
  return './pgcdc-offsets.json';
}

export function registerSnapshot(program: Command): void {
  program
    .command('snapshot')
    .description('ask the running capture for an incremental snapshot of tables (it keeps streaming meanwhile)')
    .argument('<tables...>', 'schema.table names (comma or space separated), captured by that capture')
    .option('-c, --config <file>', 'the config file of the capture (for its offsets path)')
    .option('--offsets <file>', 'the offsets file of the capture (default ./pgcdc-offsets.json)')
    .option('--wait <seconds>', 'how long to wait for a running capture to take the request', '30')
    .option('--json', 'print the outcome as JSON on stdout')
    .action(async (tables: string[], flags: SnapshotFlags) => {
      try {
        const wait = Number(flags.wait);
        if (!Number.isFinite(wait) || wait < 0)
          throw new CdcError('CONFIG_INVALID', `--wait must be a number of seconds, not ${JSON.stringify(flags.wait)}`);
        const offsets = path.resolve(await offsetsPath(flags));
        const holder = await lockHolder(`${offsets}.lock`);
        const { texts, names } = await checkRequestedTables(offsets, tables, holder?.pid);
        const id = await writeRequest(offsets, texts);
        const say = (outcome: string, text: string, extra: Record<string, unknown> = {}): void => {
          process.stdout.write(
            flags.json
              ? `${JSON.stringify({ outcome, request: id, tables: names, offsets, ...extra })}\n`
              : `${text}\n`,
          );
        };
        if (holder === undefined) {
          say(
            'queued',
            `queued snapshot request ` +
              (`${id} for ` +
                (`${names.join(', ')}: no pgcdc run is using ` +
                  (`${offsets} now; the next one to start takes it if it captures ` +
                    `${names.length === 1 ? 'that table' : 'those tables'} (and drops it with a warning otherwise)`))),
          );
          process.exitCode = EXIT_OK;
          return;
        }
        const deadline = Date.now() + wait * 1000;
        while (await requestPending(offsets, id)) {
          if (Date.now() >= deadline) break;
          await delay(100);
        }
        const pending = await requestPending(offsets, id);
        // The capture deletes the file only after storing the request as taken, or when it drops it.
        if (await storedAsTaken(offsets, id)) {
          say(
            'taken',
            `incremental snapshot of ` +
              `${names.join(', ')} requested: taken by pgcdc (pid ${holder.pid}); progress is in ${offsets}`,
            { pid: holder.pid },
          );
          process.exitCode = EXIT_OK;
        } else if (pending) {
          say(
            'pending',
            `pgcdc (pid ` +
              (`${holder.pid}) has not taken snapshot request ` +
                (`${id} within ` +
                  (`${wait}s; the request stays queued and is taken at the capture's next transaction boundary ` +
                    `(is it streaming? its log says)`))),
            { pid: holder.pid },
          );
          process.exitCode = EXIT_FAILURE;
        } else {
          say(
            'dropped',
            `pgcdc (pid ` +
              (`${holder.pid}) dropped snapshot request ` +
                `${id} without taking it; its log says why (a table it does not capture, most likely)`),
            { pid: holder.pid },
          );
          process.exitCode = EXIT_USAGE;
        }
      } catch (error) {
        process.exitCode = reportFatal(error);
      }
    });
}
