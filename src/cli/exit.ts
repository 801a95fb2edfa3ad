/**
 * Exit codes: 0 success, 1 runtime failure (the source or sink failed in a way the error policy does
 * not retry, recovery gave up after retry.giveUpAfterMs, a safety check refused to resume), 2 bad
 * input (flags, config, URL, a host name that does not resolve, unknown table). A refused or lost
 * connection is retried in the process (lifecycle/supervisor.ts), not an exit. Every failure prints
 * exactly one line on stderr naming what is wrong and what to do.
 */
import { CdcError, USAGE_CODES, toCdcError } from '../core/errors.ts';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

export function exitCodeFor(error: CdcError): number {
  return USAGE_CODES.has(error.code) ? EXIT_USAGE : EXIT_FAILURE;
}

/** Prints the one error line and returns the exit code to use. */
export function reportFatal(error: unknown): number {
  const cdc = toCdcError(error);
  process.stderr.write(`pgcdc: error: ${cdc.oneLine()} [${cdc.code}]\n`);
  if (process.env.PGCDC_DEBUG === '1' && cdc.cause instanceof Error) process.stderr.write(`${cdc.cause.stack ?? ''}\n`);
  return exitCodeFor(cdc);
}
