/**
 * `pgcdc check`: read-only preflight. Prints every problem with its fix, grouped as errors and
 * warnings (or JSON with --json). Exit 0 without errors, 1 with errors, 2 for bad input.
 */
import { Option, type Command } from 'commander';
import { runCheck } from '../preflight/preflight.ts';
import { errorsOf, formatReport, reportJson } from '../preflight/problem.ts';
import { EXIT_FAILURE, EXIT_OK, reportFatal } from './exit.ts';
import { loadConfig, type RunFlags } from './run-command.ts';
import { addConnectionOptions } from './connection-flags.ts';

interface CheckFlags extends RunFlags {
  json?: boolean;
}

export function registerCheck(program: Command): void {
  const command = program
    .command('check')
    .description(
      'read-only preflight: list every problem that would stop or endanger a capture, with its fix (exit 0 ' +
        'when there are no errors, 1 otherwise)',
    )
    .option('-c, --config <file>', 'YAML config file (the same as for run)')
    .option(
      '--source <url>',
      'postgres://user@host:5432/db?sslmode=verify-full (sslmode defaults to require; password: PGPASSWORD, ' +
        '~/.pgpass or --password-file); PG* variables also work',
    )
    .option('--slot <name>', 'replication slot (default pgcdc_slot)')
    .option('--publication <name>', 'publication (default pgcdc_pub)')
    .option('--tables <list>', 'schema.table,schema.*,... to capture (default: every table of the publication)')
    .option('--exclude-tables <list>', 'patterns removed from the selection')
    .option('--tables-file <csv>', 'CSV without a header, one schema,table per row')
    .option('--signal-table <schema.table>', 'signal table to verify')
    .option('--no-create-publication', 'a missing publication is an error (pgcdc run would not create it)')
    .addOption(
      new Option('--slot-failover <when>', 'as for run: judge the slot as run would make it (default auto)').choices([
        'auto',
        'true',
        'false',
      ]),
    )
    .option('--json', 'print the report as JSON on stdout');
  addConnectionOptions(command).action(async (flags: CheckFlags) => {
    let code: number;
    try {
      const config = await loadConfig(flags);
      const report = await runCheck(config);
      process.stdout.write(flags.json ? reportJson(report) : formatReport(report));
      code = errorsOf(report).length > 0 ? EXIT_FAILURE : EXIT_OK;
    } catch (error) {
      code = reportFatal(error);
    }
    process.exitCode = code;
  });
}
