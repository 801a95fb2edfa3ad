/**
 * `pgcdc teardown`: removes what a capture leaves on the server once it is no longer wanted: the
 * replication slot (which otherwise keeps WAL forever), the publication, and the signal and
 * heartbeat tables `pgcdc setup` created (only those: selection/own-tables.ts); with
 * --remove-offsets also the local offsets file and its side files. It prints the plan first and
 * asks for `yes` on a terminal; without a terminal it needs --yes (exit 2 otherwise). --dry-run
 * prints the plan only.
 *
 * Refused (exit 1, one line) while a pgcdc runs: its offsets lock is held, or the slot is active.
 */
import type { Command } from 'commander';
import { rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline/promises';
import type pg from 'pg';
import type { Config } from '../config.ts';
import { CdcError } from '../core/errors.ts';
import { lockHolder } from '../offsets/lock.ts';
import { offsetsInSink, sideFilesBase } from '../offsets/open.ts';
import { openConnection, resolveEndpoint } from '../postgres/connect.ts';
import { heartbeatTable } from '../selection/heartbeat-table.ts';
import { findOwnTables } from '../selection/own-tables.ts';
import { parseTableName } from '../selection/table-name.ts';
import { EXIT_FAILURE, EXIT_OK, reportFatal } from './exit.ts';
import { loadConfig, type RunFlags } from './run-command.ts';
import { addConnectionOptions } from './connection-flags.ts';
import { formatPlan, teardownSteps, type TeardownPlan, type TeardownSlot } from './teardown.ts';

interface TeardownFlags extends RunFlags {
  yes?: boolean;
  dryRun?: boolean;
  removeOffsets?: boolean;
}

function running(what: string): CdcError {
  return new CdcError(
    'OFFSETS_LOCKED',
    `${what}: stop the running pgcdc first (SIGTERM stops it cleanly), then teardown`,
  );
}

async function readSlot(
  client: pg.ClientBase,
  slot: string,
): Promise<(TeardownSlot & { active: boolean; activePid: number | null }) | undefined> {
  const { rows } = await client.query<{
    database: string | null;
    plugin: string | null;
    active: boolean;
    pid: number | null;
    confirmed: string | null;
    retained: string | null;
  }>(
    `select database, plugin, active, active_pid as pid, confirmed_flush_lsn::text as confirmed,
            pg_wal_lsn_diff(case when pg_is_in_recovery() then pg_last_wal_replay_lsn()
                                 else pg_current_wal_lsn() end, restart_lsn)::text as retained
       from pg_replication_slots where slot_name = $1`,
    [slot],
  );
  const row = rows[0];
  if (row === undefined) return undefined;
  return {
    name: slot,
    database: row.database,
    plugin: row.plugin,
    confirmed: row.confirmed,
    retainedBytes: row.retained === null ? null : Number(row.retained),
    active: row.active,
    activePid: row.pid,
  };
}

/** The offsets file and the files pgcdc keeps next to it, those that exist. */
async function offsetFiles(config: Config): Promise<{ files: string[]; note: string | undefined }> {
  const inSink = offsetsInSink(config.offsets, config.sink.kind);
  const base = path.resolve(sideFilesBase(config.offsets, config.slot, config.sink.kind));
  const candidates = [
    ...(inSink ? [] : [base, `${base}.tmp`, `${base}.lock`]),
    `${base}.toast`,
    `${base}.spill`,
    `${base}.requests`,
    `${base}.run.json`,
  ];
  const files: string[] = [];
  for (const file of candidates)
    if (
      await stat(file).then(
        () => true,
        () => false,
      )
    )
      files.push(file);
  const note = inSink
    ? `the checkpoints are kept in the ${config.sink.kind} sink (--offsets ${config.offsets}): teardown does not ` +
      'remove them; delete them there'
    : undefined;
  return { files, note };
}

async function exists(client: pg.ClientBase, name: { schema: string; table: string }): Promise<boolean> {
  const { rows } = await client.query<{ found: boolean }>(
    `select exists (select 1 from pg_class c join pg_namespace n on n.oid = c.relnamespace
                     where n.nspname = $1 and c.relname = $2) as found`,
    [name.schema, name.table],
  );
  return rows[0]?.found === true;
}

async function confirm(): Promise<boolean> {
  const prompt = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return (await prompt.question('Type yes to remove them: ')).trim() === 'yes';
  } finally {
    prompt.close();
  }
}

async function teardown(flags: TeardownFlags): Promise<number> {
  const config = await loadConfig(flags);
  if (!offsetsInSink(config.offsets, config.sink.kind)) {
    const offsets = path.resolve(config.offsets);
    const holder = await lockHolder(`${offsets}.lock`);
    if (holder !== undefined)
      throw running(`a pgcdc process (pid ${holder.pid} on ${holder.host}) is running on ${offsets}`);
  }
  const client = await openConnection(resolveEndpoint(config.source), 'query', 'pgcdc teardown');
  client.on('error', () => undefined);
  try {
    const slot = await readSlot(client, config.slot);
    if (slot?.active)
      throw running(`slot ${config.slot} is in use by another process (pid ${slot.activePid ?? '?'} on the server)`);
    const { rows } = await client.query<{ found: boolean }>(
      'select exists (select 1 from pg_publication where pubname = $1) as found',
      [config.publication],
    );
    const tables = await findOwnTables(client, config.publication);
    const configured = [
      config.signalTable === undefined ? undefined : parseTableName(config.signalTable),
      heartbeatTable(config.heartbeat),
    ].flatMap((t) => (t === undefined ? [] : [t]));
    const kept: string[] = [];
    for (const t of configured) {
      const own = tables.some((o) => o.schema === t.schema && o.table === t.table);
      if (!own && (await exists(client, t))) kept.push(`${t.schema}.${t.table}`);
    }
    const offsets = flags.removeOffsets ? await offsetFiles(config) : { files: [], note: undefined };
    const plan: TeardownPlan = {
      slot,
      slotName: config.slot,
      publication: rows[0]?.found === true,
      publicationName: config.publication,
      tables,
      kept,
      files: offsets.files,
      filesNote: offsets.note,
    };
    const steps = teardownSteps(plan);
    process.stdout.write(formatPlan(plan, flags.dryRun === true));
    if (flags.dryRun || steps.length === 0) return EXIT_OK;
    if (!flags.yes) {
      if (!process.stdin.isTTY)
        throw new CdcError('USAGE', 'teardown removes the objects above and needs a confirmation', {
          hint: 'run it on a terminal to type yes, or pass --yes (--dry-run only prints the plan)',
        });
      if (!(await confirm())) {
        process.stderr.write('pgcdc: teardown cancelled: nothing was removed\n');
        return EXIT_FAILURE;
      }
    }
    for (const step of steps) {
      try {
        if (step.kind === 'sql') await client.query(step.sql);
        else await rm(step.path, { recursive: true, force: true });
      } catch (cause) {
        const reason = cause instanceof Error ? cause.message : String(cause);
        throw new CdcError('SETUP_FAILED', `teardown: removing the ${step.title} failed: ${reason}`, {
          cause,
          hint:
            'what is listed before it was removed; fix the cause (an active slot: stop its pgcdc; not the owner: ' +
            'run teardown with the --source of an owner or superuser) and run teardown again',
        });
      }
      process.stdout.write(`  removed ${step.title}\n`);
    }
    process.stdout.write(`teardown: done (${steps.length} removed)\n`);
    return EXIT_OK;
  } finally {
    await client.end().catch(() => undefined);
  }
}

export function registerTeardown(program: Command): void {
  const command = program
    .command('teardown')
    .description(
      "remove a capture's slot, publication and the signal/heartbeat tables pgcdc setup created, after printing " +
        'them and a confirmation',
    )
    .option('-c, --config <file>', 'YAML config file of the capture (its source, slot, publication, offsets)')
    .option(
      '--source <url>',
      'postgres://user@host:5432/db of a role that owns the publication (sslmode defaults to require; ' +
        'password: PGPASSWORD, ~/.pgpass or --password-file)',
    )
    .option('--slot <name>', 'replication slot (default pgcdc_slot)')
    .option('--publication <name>', 'publication (default pgcdc_pub)')
    .option('--signal-table <schema.table>', 'the signal table of the capture (dropped only if setup created it)')
    .option('--offsets <file>', 'offsets file of the capture (default ./pgcdc-offsets.json)')
    .option('--remove-offsets', 'also remove the local offsets file and the files next to it')
    .option('--dry-run', 'print what would be removed, remove nothing')
    .option('-y, --yes', 'do not ask for a confirmation (needed without a terminal)');
  addConnectionOptions(command).action(async (flags: TeardownFlags) => {
    let code: number;
    try {
      code = await teardown(flags);
    } catch (error) {
      code = reportFatal(error);
    }
    process.exitCode = code;
  });
}
