/**
 * `pgcdc verify`: compares the source tables with what the sink holds (src/verify/), at one LSN.
 * Exit codes (docs/operations.md, "Verifying the sink"): 0 equal, 1 different (missing, extra or different keys, a
 * table the sink lacks), 2 bad input (flags, config, connection refused or unknown table: one
 * line), 3 the sink is behind the source (not compared), 4 any other failure (one line).
 * Never prints the connection string or row values (keys only) unless --show-values.
 */
import type { Command } from 'commander';
import path from 'node:path';
import { CdcError, USAGE_CODES, toCdcError } from '../core/errors.ts';
import { readCheckpoint } from '../offsets/file.ts';
import { lockHolder } from '../offsets/lock.ts';
import { resolveEndpoint } from '../postgres/connect.ts';
import { jsonlFileName } from '../sinks/jsonl/index.ts';
import { JsonlSinkReader } from '../verify/jsonl-reader.ts';
import { formatVerifyReport } from '../verify/report.ts';
import { runVerify, type VerifyReport } from '../verify/verify.ts';
import { addConnectionOptions } from './connection-flags.ts';
import { EXIT_OK, EXIT_USAGE } from './exit.ts';
import { loadConfig, type RunFlags } from './run-command.ts';

export const EXIT_DIFFERENT = 1;
export const EXIT_SINK_BEHIND = 3;
export const EXIT_VERIFY_FAILED = 4;

interface VerifyFlags extends RunFlags {
  wait: string;
  limit: string;
  json?: boolean;
  showValues?: boolean;
}

function numberFlag(value: string, flag: string, integer: boolean): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0 || (integer && !Number.isInteger(n)))
    throw new CdcError(
      'CONFIG_INVALID',
      `${flag} must be a ${integer ? 'whole number' : 'number of seconds'} (0 or more), not ${JSON.stringify(value)}`,
    );
  return n;
}

export function exitCodeOf(report: VerifyReport): number {
  return report.outcome === 'equal' ? EXIT_OK : report.outcome === 'behind' ? EXIT_SINK_BEHIND : EXIT_DIFFERENT;
}

export function registerVerify(program: Command): void {
  const command = program
    .command('verify')
    .description(
      'compare the source tables with what the sink holds, at one LSN: missing, extra and different keys ' +
        '(exit 0 equal, 1 different, 2 bad input, 3 sink behind, 4 failed)',
    )
    .option('-c, --config <file>', 'the config file of the capture (source, tables, sink, offsets, envelope)')
    .option('--source <url>', 'postgres://user@host:5432/db (password: PGPASSWORD, ~/.pgpass or --password-file)')
    .option('--publication <name>', "the capture's publication (its tables, when no --tables)")
    .option('--tables <list>', "schema.table,schema.*,... to verify (default: the capture's selection)")
    .option('--exclude-tables <list>', 'patterns removed from the selection')
    .option('--out <dir>', "the JSONL sink's directory (default: the config's sink.out)")
    .option('--offsets <file>', "the capture's offsets file (default: the config's, ./pgcdc-offsets.json)")
    .option('--topic-prefix <prefix>', "the capture's topic prefix (default: the database name)")
    .option('--format <format>', "the capture's envelope format: json or json-with-schema")
    .option('--wait <seconds>', "how long to wait for a running capture's checkpoint to pass the verify's LSN", '60')
    .option('--limit <n>', 'keys listed per kind (missing, extra, different) and table', '10')
    .option('--json', 'print the report as JSON on stdout')
    .option('--show-values', 'also print the source rows of the listed missing and different keys');
  addConnectionOptions(command).action(async (flags: VerifyFlags) => {
    try {
      const waitMs = numberFlag(flags.wait, '--wait', false) * 1000;
      const limit = numberFlag(flags.limit, '--limit', true);
      const config = await loadConfig({ ...flags, sink: flags.out !== undefined ? 'jsonl' : undefined });
      if (config.sink.kind !== 'jsonl')
        throw new CdcError('CONFIG_INVALID', `verify reads JSONL output only so far; the sink is ${config.sink.kind}`, {
          hint: 'the other sinks come through the same reader interface later (src/verify/sink-reader.ts)',
        });
      const dir = config.sink.out;
      const offsets = path.resolve(config.offsets);
      const report = await runVerify({
        config,
        endpoint: resolveEndpoint(config.source),
        readCheckpoint: () => readCheckpoint(offsets),
        captureRunning: async () => (await lockHolder(`${offsets}.lock`))?.pid,
        sinkReader: (checkpoint) => {
          const files = (checkpoint.sink as { files?: Record<string, number> }).files ?? {};
          return new JsonlSinkReader({ dir, durable: new Map(Object.entries(files)), fileName: jsonlFileName });
        },
        waitMs,
        limit,
        showValues: flags.showValues === true,
      });
      process.stdout.write(flags.json ? `${JSON.stringify(report)}\n` : formatVerifyReport(report));
      process.exitCode = exitCodeOf(report);
    } catch (error) {
      const cdc = toCdcError(error);
      process.stderr.write(`pgcdc: error: ${cdc.oneLine()} [${cdc.code}]\n`);
      process.exitCode = USAGE_CODES.has(cdc.code) ? EXIT_USAGE : EXIT_VERIFY_FAILED;
    }
  });
}
