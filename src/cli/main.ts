/**
 * pgcdc command-line entry point. Exit codes: 0 ok, 1 runtime failure, 2 bad input.
 */
import { Command, CommanderError } from 'commander';
import { PGCDC_VERSION } from '../envelope/json.ts';
import { registerRun } from './run-command.ts';
import { registerDemo } from './demo.ts';
import { registerCheck } from './check.ts';
import { registerSetup } from './setup.ts';
import { registerSnapshot } from './snapshot-command.ts';
import { registerStatus, STATUS_UNKNOWN_EXIT } from './status-command.ts';
import { registerVerify } from './verify-command.ts';
import { registerDrain } from './drain-command.ts';
import { registerTeardown } from './teardown-command.ts';
import { EXIT_OK, EXIT_USAGE } from './exit.ts';

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('pgcdc')
    .description(
      'PostgreSQL change data capture: every insert, update and delete, delivered durably (logical ' +
        'replication, pgoutput)',
    )
    .version(PGCDC_VERSION)
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .configureOutput({
      outputError: (text, write) => write(`pgcdc: ${text.replace(/^error: /, 'error: ').trimEnd()}\n`),
    });
  registerRun(program);
  registerCheck(program);
  registerSetup(program);
  registerSnapshot(program);
  registerStatus(program);
  registerVerify(program);
  registerDrain(program);
  registerTeardown(program);
  registerDemo(program);
  for (const command of program.commands) command.exitOverride();
  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      const ok =
        error.code === 'commander.helpDisplayed' ||
        error.code === 'commander.version' ||
        error.code === 'commander.help';
      // `status` keeps 0-2 for health: its bad flags are "unknown" (3), as monitoring systems expect.
      const status = argv.slice(2).find((arg) => !arg.startsWith('-')) === 'status';
      process.exitCode = ok ? EXIT_OK : status ? STATUS_UNKNOWN_EXIT : EXIT_USAGE;
      return;
    }
    throw error;
  }
}

await main(process.argv);
