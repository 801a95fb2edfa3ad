/**
 * Runs a setup plan through an admin connection, idempotently: each SQL step's probe runs first
 * and a step already in place is left alone, so a second run changes nothing. Manual steps are
 * listed as reminders. Output lines never contain the password (they print titles, not SQL).
 */
import { readFile } from 'node:fs/promises';
import type pg from 'pg';
import { CdcError } from '../core/errors.ts';
import type { SetupStep } from './plan.ts';

export interface ApplyResult {
  readonly applied: readonly string[];
  readonly already: readonly string[];
  readonly pending: readonly string[];
}

async function isDone(client: pg.ClientBase, probe: string): Promise<boolean> {
  const { rows } = await client.query<{ done: boolean | null }>(probe);
  return rows[0]?.done === true;
}

/**
 * The SQL steps already in place, for a printed plan that is true for the server at hand. A probe
 * that cannot run yet (it names a table an earlier step creates) counts as not in place.
 */
export async function stepsInPlace(client: pg.ClientBase, steps: readonly SetupStep[]): Promise<Set<SetupStep>> {
  const done = new Set<SetupStep>();
  for (const step of steps) {
    if (step.manual || step.probe === undefined) continue;
    if (await isDone(client, step.probe).catch(() => false)) done.add(step);
  }
  return done;
}

/**
 * Applies `steps` in order. `canCreateSlot` false (wal_level is not logical yet) leaves the slot
 * pending. Throws SETUP_FAILED naming the step that failed and the server's reason.
 */
export async function applyPlan(
  client: pg.ClientBase,
  steps: readonly SetupStep[],
  options: { canCreateSlot: boolean; hasUserPassword: boolean },
  say: (line: string) => void,
): Promise<ApplyResult> {
  const applied: string[] = [];
  const already: string[] = [];
  const pending: string[] = [];
  for (const step of steps) {
    if (step.manual || step.sql === undefined || step.probe === undefined) {
      if (!step.note && step.section !== 'Connection' && step.section !== 'Verify') pending.push(step.title);
      continue;
    }
    if (await isDone(client, step.probe)) {
      already.push(step.title);
      say(`  = ${step.title}`);
      continue;
    }
    if (step.section === 'Replication slot' && !options.canCreateSlot) {
      pending.push(
        `${step.title}: wal_level is not logical yet (set the parameters above, restart, then run setup --apply again)`,
      );
      say(`  ! ${step.title}: waits for wal_level = logical`);
      continue;
    }
    if (step.sql.startsWith('CREATE ROLE') && !options.hasUserPassword) {
      throw new CdcError('SETUP_FAILED', `setup: the capture user does not exist and no password was given for it`, {
        hint: 'set PGCDC_USER_PASSWORD or pass --user-password-file (or run on a terminal to be prompted)',
      });
    }
    try {
      await client.query(step.sql);
    } catch (cause) {
      const reason = cause instanceof Error ? cause.message : String(cause);
      throw new CdcError('SETUP_FAILED', `setup step failed: ${step.title}: ${reason}`, {
        cause,
        hint: 'fix the cause and run setup --apply again (steps already done are skipped)',
      });
    }
    applied.push(step.title);
    say(`  + ${step.title}`);
  }
  return { applied, already, pending };
}

/** A secret from an environment variable, else a file (first line), else undefined. */
export async function secretFrom(
  env: NodeJS.ProcessEnv,
  variable: string,
  file: string | undefined,
): Promise<string | undefined> {
  const fromEnv = env[variable];
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  if (file === undefined) return undefined;
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (cause) {
    throw new CdcError('CONFIG_INVALID', `cannot read password file ${file}`, { cause });
  }
  return text.split(/\r?\n/)[0] ?? '';
}

/** Asks for a secret on the terminal without echoing it; undefined when stdin is not a terminal. */
export async function promptSecret(question: string): Promise<string | undefined> {
  const stdin = process.stdin;
  if (!stdin.isTTY) return undefined;
  process.stderr.write(question);
  stdin.setRawMode(true);
  stdin.resume();
  return new Promise((resolve) => {
    let value = '';
    const onData = (chunk: Buffer): void => {
      for (const ch of chunk.toString('utf8')) {
        if (ch === '\r' || ch === '\n' || ch === '\u0004') {
          stdin.off('data', onData);
          stdin.setRawMode(false);
          stdin.pause();
          process.stderr.write('\n');
          resolve(value);
          return;
        }
        if (ch === '\u0003') process.exit(130);
        if (ch === '\u007f') value = value.slice(0, -1);
        else value += ch;
      }
    };
    stdin.on('data', onData);
  });
}
