/**
 * `pgcdc snapshot <table...>`: asks the capture that uses an offsets file for an incremental
 * snapshot of the given tables, while it keeps streaming. The request goes through a mailbox next
 * to the offsets file (capture/requests.ts): no signal table and no write to the source needed.
 * Exit 0 once the running capture took the request (or, with none running, once it is queued for
 * the next start); 1 when a running capture did not take it in --wait seconds; 2 for bad input.
 */
import type { Command } from 'commander';
import { setTimeout as delay } from 'node:timers/promises';
import path from 'node:path';
import { parseTableName, readConfigFile } from '../config.ts';
import { CdcError } from '../errors.ts';
import { lockHolder } from '../offsets/lock.ts';
import { requestPending, writeRequest } from '../capture/requests.ts';
import { splitTableList } from '../preflight/selection.ts';
import { EXIT_FAILURE, EXIT_OK, reportFatal } from './exit.ts';

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
        const names = tables.flatMap(splitTableList);
        for (const name of names) parseTableName(name);
        const wait = Number(flags.wait);
        if (!Number.isFinite(wait) || wait < 0) throw new CdcError('CONFIG_INVALID', `--wait must be a number of seconds, not ${JSON.stringify(flags.wait)}`);
        const offsets = path.resolve(await offsetsPath(flags));
        const id = await writeRequest(offsets, names);
        const say = (outcome: string, text: string, extra: Record<string, unknown> = {}): void => {
          process.stdout.write(flags.json ? `${JSON.stringify({ outcome, request: id, tables: names, offsets, ...extra })}\n` : `${text}\n`);
        };
        const holder = await lockHolder(`${offsets}.lock`);
        if (holder === undefined) {
          say('queued', `queued snapshot request ${id} for ${names.join(', ')}: no pgcdc run is using ${offsets} now; the next one takes it`);
          process.exitCode = EXIT_OK;
          return;
        }
        const deadline = Date.now() + wait * 1000;
        while (await requestPending(offsets, id)) {
          if (Date.now() >= deadline) {
            say('pending', `pgcdc (pid ${holder.pid}) has not taken snapshot request ${id} within ${wait}s; it stays queued (is the capture streaming?)`, { pid: holder.pid });
            process.exitCode = EXIT_FAILURE;
            return;
          }
          await delay(100);
        }
        say('taken', `incremental snapshot of ${names.join(', ')} requested: taken by pgcdc (pid ${holder.pid}); progress is in ${offsets}`, { pid: holder.pid });
        process.exitCode = EXIT_OK;
      } catch (error) {
        process.exitCode = reportFatal(error);
      }
    });
}
