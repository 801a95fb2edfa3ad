/**
 * `pgcdc setup`: prints, commented and in order, everything a platform needs for pgcdc; with
 * `--apply --admin-url`, runs the SQL idempotently. Passwords never come from the command line:
 * the admin's from PGCDC_ADMIN_PASSWORD, --admin-password-file, PGPASSWORD/~/.pgpass or a prompt;
 * the capture user's from PGCDC_USER_PASSWORD, --user-password-file or a prompt.
 */
import type { Command } from 'commander';
import { Option } from 'commander';
import type pg from 'pg';
import { CdcError } from '../core/errors.ts';
import { describeEndpoint, openConnection, resolveEndpoint } from '../postgres/connect.ts';
import { listCatalogTables } from '../selection/table-selection.ts';
import {
  parseTablePattern,
  patternsFromCsv,
  selectTables,
  splitTableList,
  type TablePattern,
} from '../selection/patterns.ts';
import { applyPlan, promptSecret, secretFrom, stepsInPlace } from '../setup/apply.ts';
import { buildPlan, formatPlan, SIGNAL_TABLE, type ServerState } from '../setup/plan.ts';
import { checkCommand } from '../setup/check-command.ts';
import { readKeylessTables, refuseKeyless, type KeylessTable } from '../setup/identity.ts';
import type { SourceEndpoint } from '../postgres/connect.ts';
import { PLATFORMS, type Platform } from '../setup/platforms.ts';
import { readFile } from 'node:fs/promises';
import { passwordFromPassfile } from '../postgres/password.ts';
import { EXIT_OK, reportFatal } from './exit.ts';

interface SetupFlags {
  platform: Platform;
  user: string;
  database?: string;
  tables?: string;
  tablesFile?: string;
  excludeTables?: string;
  allTables?: boolean;
  schema?: string;
  publication: string;
  slot: string;
  signalSchema?: string;
  heartbeatSchema?: string;
  replicaIdentityFull?: boolean;
  apply?: boolean;
  adminUrl?: string;
  adminPasswordFile?: string;
  userPasswordFile?: string;
}

async function patterns(flags: SetupFlags): Promise<TablePattern[]> {
  const list = flags.tables === undefined ? [] : splitTableList(flags.tables).map(parseTablePattern);
  if (flags.tablesFile !== undefined)
    list.push(...patternsFromCsv(await readFile(flags.tablesFile, 'utf8'), flags.tablesFile));
  return list;
}

/** Concrete tables: exact names need no server; patterns are expanded on the admin connection. */
async function resolveTables(
  flags: SetupFlags,
  client: pg.ClientBase | undefined,
): Promise<{ schema: string; table: string }[] | 'all'> {
  if (flags.allTables) return 'all';
  const include = await patterns(flags);
  if (include.length === 0) throw new CdcError('USAGE', 'setup needs --tables, --tables-file or --all-tables');
  const exclude = flags.excludeTables === undefined ? [] : splitTableList(flags.excludeTables).map(parseTablePattern);
  if (!client) {
    const exact = include.map((p) =>
      'exact' in p.schema && 'exact' in p.table ? { schema: p.schema.exact, table: p.table.exact } : undefined,
    );
    if (exact.some((t) => t === undefined) || exclude.length > 0) {
      throw new CdcError(
        'USAGE',
        'wildcards and --exclude-tables are resolved against the database: pass --admin-url too (nothing is ' +
          'changed without --apply)',
      );
    }
    return exact.filter((t) => t !== undefined);
  }
  const selection = selectTables(await listCatalogTables(client), include, exclude);
  if (selection.unmatched.length > 0)
    throw new CdcError('TABLE_MISSING', `no table matches ${selection.unmatched.join(', ')}`);
  return selection.tables.map((t) => ({ schema: t.schema, table: t.table }));
}

async function setup(flags: SetupFlags): Promise<void> {
  if (flags.apply && flags.adminUrl === undefined)
    throw new CdcError(
      'USAGE',
      '--apply needs --admin-url (an admin connection; its password from PGCDC_ADMIN_PASSWORD or a file)',
    );
  let client: pg.Client | undefined;
  let endpoint: SourceEndpoint | undefined;
  let database = flags.database ?? 'postgres';
  if (flags.adminUrl !== undefined) {
    if (/^[a-z]+:\/\/[^/@]*:[^/@]*@/i.test(flags.adminUrl)) {
      throw new CdcError('USAGE', '--admin-url must not contain a password', {
        hint: 'set PGCDC_ADMIN_PASSWORD, pass --admin-password-file, or use ~/.pgpass',
      });
    }
    const adminPassword = await secretFrom(process.env, 'PGCDC_ADMIN_PASSWORD', flags.adminPasswordFile);
    endpoint = resolveEndpoint({
      url: flags.adminUrl,
      connectTimeoutMs: 10_000,
      ...(adminPassword === undefined ? {} : { password: adminPassword }),
    });
    if (flags.database !== undefined && flags.database !== endpoint.database) {
      throw new CdcError(
        'USAGE',
        `--database ${flags.database} is not the database of --admin-url ` +
          `(${endpoint.database}): setup works in the database it connects to`,
        {
          hint: `put ${flags.database} in --admin-url, or leave --database out`,
        },
      );
    }
    if (adminPassword !== undefined) {
      const fromEnv = process.env.PGCDC_ADMIN_PASSWORD !== undefined && process.env.PGCDC_ADMIN_PASSWORD !== '';
      endpoint.passwordSource = fromEnv
        ? 'PGCDC_ADMIN_PASSWORD'
        : `the admin password file ${flags.adminPasswordFile ?? ''} (--admin-password-file)`;
    }
    // Prompt only when no source has it; libpq's password file is matched line by line, as libpq does.
    if (endpoint.password === undefined && passwordFromPassfile(endpoint).password === undefined) {
      endpoint.password = await promptSecret(`password for ${describeEndpoint(endpoint)}: `);
      if (endpoint.password !== undefined) endpoint.passwordSource = 'the password typed at the prompt';
    }
    client = await openConnection(endpoint, 'query', 'pgcdc-setup');
    client.on('error', () => undefined);
    database = endpoint.database;
  }
  try {
    const tables = await resolveTables(flags, client);
    const schemas =
      flags.schema !== undefined
        ? splitTableList(flags.schema)
        : tables === 'all'
          ? ['public']
          : [...new Set(tables.map((t) => t.schema))];
    let major: number | undefined;
    let server: ServerState | undefined;
    let userExists = false;
    let keyless: KeylessTable[] | undefined;
    if (client) {
      const { rows } = await client.query<{
        v: string;
        wal: string;
        has_user: boolean;
        slots: number;
        senders: number;
        max_slots: string;
        max_senders: string;
      }>(
        `select current_setting('server_version_num') as v, current_setting('wal_level') as wal, exists ` +
          `(select 1 from pg_roles where rolname = $1) as has_user,
                current_setting('max_replication_slots') as max_slots, current_setting('max_wal_senders') as ` +
          `max_senders,
                (select count(*) from pg_replication_slots)::int as slots, (select count(*) from ` +
          `pg_stat_replication)::int as senders`,
        [flags.user],
      );
      const row = rows[0];
      major = Math.floor(Number(row?.v) / 10000);
      userExists = row?.has_user === true;
      server = {
        walLevel: row?.wal ?? 'unknown',
        maxReplicationSlots: Number(row?.max_slots),
        slotsInUse: row?.slots ?? 0,
        maxWalSenders: Number(row?.max_senders),
        sendersInUse: row?.senders ?? 0,
      };
      keyless = await readKeylessTables(client, tables);
      // Before anything is changed: publishing these would break the application's own writes.
      refuseKeyless(keyless, flags.replicaIdentityFull === true, tables === 'all');
    }
    const walLogical = server?.walLevel === 'logical';
    let userPassword: string | undefined;
    if (flags.apply && !userExists) {
      userPassword =
        (await secretFrom(process.env, 'PGCDC_USER_PASSWORD', flags.userPasswordFile)) ??
        (await promptSecret(`password for the new user ${flags.user}: `));
    }
    const options = {
      platform: flags.platform,
      user: flags.user,
      userPassword,
      database,
      tables,
      schemas,
      publication: flags.publication,
      slot: flags.slot,
      signalSchema: flags.signalSchema,
      heartbeatSchema: flags.heartbeatSchema,
      replicaIdentityFull: flags.replicaIdentityFull === true,
      major,
      server,
      keyless,
      checkCommand: checkCommand({
        host: endpoint?.host,
        port: endpoint?.port,
        database,
        user: flags.user,
        sslmode: endpoint?.sslmode,
        sslrootcert: endpoint?.sslrootcert,
        tables: flags.allTables ? undefined : flags.tables,
        tablesFile: flags.allTables ? undefined : flags.tablesFile,
        excludeTables: flags.allTables ? undefined : flags.excludeTables,
        slot: flags.slot,
        publication: flags.publication,
        signalTable: flags.signalSchema === undefined ? undefined : `${flags.signalSchema}.${SIGNAL_TABLE}`,
      }),
    };
    const steps = buildPlan(options);
    if (!flags.apply || !client) {
      process.stdout.write(formatPlan(options, steps, client ? await stepsInPlace(client, steps) : undefined));
      return;
    }
    process.stdout.write(`pgcdc setup --apply (${flags.platform}) on ${database}:\n`);
    const result = await applyPlan(
      client,
      steps,
      { canCreateSlot: walLogical, hasUserPassword: userPassword !== undefined && userPassword !== '' },
      (line) => process.stdout.write(`${line}\n`),
    );
    process.stdout.write(
      `${result.applied.length} applied, ` +
        `${result.already.length} already in place${result.applied.length === 0 ? ' (nothing changed)' : ''}\n`,
    );
    if (result.pending.length > 0)
      process.stdout.write(`still to do by hand:\n${result.pending.map((p) => `  * ${p}`).join('\n')}\n`);
    process.stdout.write(
      `next, with the password of ${flags.user} in PGPASSWORD or ~/.pgpass: ${options.checkCommand}\n`,
    );
  } finally {
    await client?.end().catch(() => undefined);
  }
}

export function registerSetup(program: Command): void {
  program
    .command('setup')
    .description(
      'print (or --apply) everything a platform needs for pgcdc: parameters, user, grants, publication, slot, ' +
        'signal/heartbeat tables',
    )
    .addOption(
      new Option('--platform <platform>', 'where PostgreSQL runs').choices([...PLATFORMS]).makeOptionMandatory(),
    )
    .option('--user <name>', 'capture user to create or complete', 'pgcdc_user')
    .option('--database <name>', 'database (default: the one in --admin-url)')
    .option('--tables <list>', 'schema.table,schema.*,... to capture')
    .option('--tables-file <csv>', 'CSV without a header, one schema,table per row')
    .option('--exclude-tables <list>', 'patterns removed from the selection')
    .option('--all-tables', 'FOR ALL TABLES publication and SELECT on every table of --schema')
    .option('--schema <list>', 'schemas to grant USAGE on (default: those of the tables; public with --all-tables)')
    .option('--publication <name>', 'publication', 'pgcdc_pub')
    .option('--slot <name>', 'replication slot', 'pgcdc_slot')
    .option('--signal-schema <schema>', 'create the signal table <schema>.pgcdc_signal and publish it')
    .option('--heartbeat-schema <schema>', 'create the heartbeat table <schema>.pgcdc_heartbeat')
    .option(
      '--replica-identity-full',
      'REPLICA IDENTITY FULL on the captured tables (with --all-tables: on those without a primary key); ' +
        'without it, setup refuses to publish a table without a primary key',
    )
    .option('--apply', 'run the SQL through --admin-url (idempotent: steps already in place are skipped)')
    .option(
      '--admin-url <url>',
      'postgres://admin@host:5432/db, without a password (PGCDC_ADMIN_PASSWORD, --admin-password-file, ' +
        '~/.pgpass or a prompt)',
    )
    .option('--admin-password-file <file>', 'file holding the admin password')
    .option(
      '--user-password-file <file>',
      "file holding the new capture user's password (or PGCDC_USER_PASSWORD, or a prompt)",
    )
    .action(async (flags: SetupFlags) => {
      let code = EXIT_OK;
      try {
        await setup(flags);
      } catch (error) {
        code = reportFatal(error);
      }
      process.exitCode = code;
    });
}
