/**
 * The setup plan: every step a platform needs, in order, as data. Manual steps (consoles,
 * parameter groups, restarts) are comments; SQL steps carry a read-only probe that says whether
 * the step is already in place, which makes `--apply` idempotent: a second run changes nothing.
 *
 * Every identifier and literal goes through the quoting helper. The capture user's password never
 * appears in printed text: `display` shows a placeholder, only `sql` (executed, never printed)
 * holds it.
 */
import { quoteIdent, quoteLiteral, quoteQualified } from '../postgres/quote.ts';
import { PROFILES, type Platform } from './platforms.ts';
import { HEARTBEAT_COLUMNS } from '../selection/heartbeat-table.ts';
import { keylessReason, type KeylessTable } from './identity.ts';

/** What setup read from the server it plans for. */
export interface ServerState {
  readonly walLevel: string;
  readonly maxReplicationSlots: number;
  readonly slotsInUse: number;
  readonly maxWalSenders: number;
  readonly sendersInUse: number;
}

export interface SetupOptions {
  readonly platform: Platform;
  readonly user: string;
  /** Executed only; undefined prints a placeholder (and --apply then requires the user to exist). */
  readonly userPassword: string | undefined;
  readonly database: string;
  /** Concrete tables, or 'all' for FOR ALL TABLES with grants on `schemas`. */
  readonly tables: readonly { schema: string; table: string }[] | 'all';
  /** Schemas to grant USAGE (and default SELECT) on. */
  readonly schemas: readonly string[];
  readonly publication: string;
  readonly slot: string;
  readonly signalSchema: string | undefined;
  readonly heartbeatSchema: string | undefined;
  readonly replicaIdentityFull: boolean;
  /**
   * Server major when known (publish_via_partition_root needs 13+, publish_generated_columns 18+); undefined assumes 13
   * to 17. */
  readonly major: number | undefined;
  /** The server's state when setup is connected (--admin-url); undefined: the plan says it could not look. */
  readonly server: ServerState | undefined;
  /**
   * Published tables without a replica identity (identity.ts), when setup is connected; with
   * `replicaIdentityFull` they are made FULL, without it setup refused before planning.
   */
  readonly keyless: readonly KeylessTable[] | undefined;
  /** The `pgcdc check` command to print last (check-command.ts). */
  readonly checkCommand: string;
}

export interface SetupStep {
  /** Heading this step prints under. */
  readonly section: string;
  /** One line on what the step does and why. */
  readonly title: string;
  /** Console or restart instructions: never executed. */
  readonly manual?: true;
  /** A manual line that only informs (what setup found on the server, or advice): never listed as still to do. */
  readonly note?: true;
  /** SQL to execute (may hold the password: never print it). */
  readonly sql?: string;
  /** SQL to print. */
  readonly display?: string;
  /** Returns one row with a boolean `done`: true when the step is already in place. */
  readonly probe?: string;
  /** Completes an existing object on --apply; redundant in the printed script (left out there). */
  readonly applyOnly?: true;
}

export const SIGNAL_TABLE = 'pgcdc_signal';
export const HEARTBEAT_TABLE = 'pgcdc_heartbeat';

function sqlStep(section: string, title: string, sql: string, probe: string, display = sql): SetupStep {
  return { section, title, sql, probe, display };
}

const applyOnly = (step: SetupStep): SetupStep => ({ ...step, applyOnly: true });
const roleOid = (user: string): string => `(select oid from pg_roles where rolname = ${quoteLiteral(user)})`;
const regclass = (schema: string, table: string): string => `${quoteLiteral(quoteQualified(schema, table))}::regclass`;

function publicationSteps(o: SetupOptions, extra: readonly { schema: string; table: string }[]): SetupStep[] {
  const section = 'Publication';
  const pub = quoteIdent(o.publication);
  const viaRoot = o.major === undefined || o.major >= 13;
  // On 18+ stored generated columns are published too: without them events lack those columns, and
  // UPDATE and DELETE fail on REPLICA IDENTITY FULL tables that have one.
  const options = [
    ...(viaRoot ? ['publish_via_partition_root = true'] : []),
    ...(o.major !== undefined && o.major >= 18 ? ['publish_generated_columns = stored'] : []),
  ];
  const withRoot = options.length > 0 ? ` WITH (${options.join(', ')})` : '';
  const exists = `select exists (select 1 from pg_publication where pubname = ${quoteLiteral(o.publication)}) as done`;
  const steps: SetupStep[] = [];
  if (o.tables === 'all') {
    steps.push(
      sqlStep(
        section,
        `publication ${o.publication} for all tables (needs a ` +
          `superuser)${o.major === undefined ? '; the WITH clause needs PostgreSQL 13+: leave it out on 10-12' : ''}`,
        `CREATE PUBLICATION ${pub} FOR ALL TABLES${withRoot};`,
        exists,
      ),
    );
  } else {
    const all = [...o.tables, ...extra];
    const list = all.map((t) => quoteQualified(t.schema, t.table)).join(', ');
    steps.push(
      sqlStep(
        section,
        `publication ${o.publication} for the captured ` +
          `tables${extra.length > 0 ? ' and the signal table' : ''}` +
          (o.major === undefined ? ' (the WITH clause needs PostgreSQL 13+: leave it out on 10-12)' : ''),
        `CREATE PUBLICATION ${pub} FOR TABLE ${list}${withRoot};`,
        exists,
      ),
    );
    for (const t of all) {
      steps.push(
        applyOnly(
          sqlStep(
            section,
            `${t.schema}.${t.table} is in the publication`,
            `ALTER PUBLICATION ${pub} ADD TABLE ${quoteQualified(t.schema, t.table)};`,
            `select exists (select 1 from pg_publication p where p.pubname = ` +
              (`${quoteLiteral(o.publication)} and (p.puballtables or exists (
           select 1 from pg_publication_rel r where r.prpubid = p.oid and r.prrelid = ` +
                `${regclass(t.schema, t.table)}))) as done`),
          ),
        ),
      );
    }
  }
  if (viaRoot) {
    steps.push(
      applyOnly(
        sqlStep(
          section,
          'partitioned tables publish under their root name',
          `ALTER PUBLICATION ${pub} SET (publish_via_partition_root = true);`,
          `select coalesce((select pubviaroot from pg_publication where pubname = ` +
            `${quoteLiteral(o.publication)}), false) as done`,
        ),
      ),
    );
  }
  if (o.major !== undefined && o.major >= 18) {
    steps.push(
      applyOnly(
        sqlStep(
          section,
          'stored generated columns are published',
          `ALTER PUBLICATION ${pub} SET (publish_generated_columns = stored);`,
          `select coalesce((select pubgencols = 's' from pg_publication where pubname = ` +
            `${quoteLiteral(o.publication)}), false) as done`,
        ),
      ),
    );
  }
  return steps;
}

function ownTableSteps(o: SetupOptions, schema: string, table: string, ddl: string, what: string): SetupStep[] {
  const section = what === 'signal' ? 'Signal table' : 'Heartbeat table';
  const user = quoteIdent(o.user);
  const q = quoteQualified(schema, table);
  return [
    sqlStep(
      section,
      `schema ${schema}`,
      `CREATE SCHEMA IF NOT EXISTS ${quoteIdent(schema)};`,
      `select exists (select 1 from pg_namespace where nspname = ${quoteLiteral(schema)}) as done`,
    ),
    sqlStep(
      section,
      `${what} table ${schema}.${table}`,
      `CREATE TABLE IF NOT EXISTS ${q} (${ddl});`,
      `select to_regclass(${quoteLiteral(q)}) is not null as done`,
    ),
    sqlStep(
      section,
      `${o.user} may use schema ${schema}`,
      `GRANT USAGE ON SCHEMA ${quoteIdent(schema)} TO ${user};`,
      `select has_schema_privilege(${quoteLiteral(o.user)}, ${quoteLiteral(schema)}, 'USAGE') as done`,
    ),
    sqlStep(
      section,
      `${o.user} may read and write the ${what} table`,
      `GRANT SELECT, INSERT, UPDATE ON ${q} TO ${user};`,
      `select has_table_privilege(${quoteLiteral(o.user)}, ${regclass(schema, table)}, 'SELECT,INSERT,UPDATE') as done`,
    ),
  ];
}

/**
 * The platform's manual steps, for the server as setup found it: without a connection it says it
 * could not look; with wal_level already logical the steps that only turn it on are left out.
 */
function parameterSteps(o: SetupOptions): SetupStep[] {
  const profile = PROFILES[o.platform];
  const section = `Parameters (${profile.title})`;
  const server = o.server;
  const steps: SetupStep[] = [];
  const note = (title: string): void => void steps.push({ section, title, manual: true, note: true });
  if (server === undefined)
    note(
      "not connected (no --admin-url), so the server's wal_level is unknown: the steps below assume it is not " +
        'logical yet',
    );
  else if (server.walLevel === 'logical')
    note('wal_level is already logical on this server: no parameter change or restart is needed for it');
  else note(`wal_level is ${server.walLevel} on this server; logical replication needs logical`);
  for (const parameter of profile.parameters) {
    if (parameter.forLogical && server?.walLevel === 'logical') continue;
    if (parameter.headroom && server !== undefined) {
      const room = server.slotsInUse < server.maxReplicationSlots && server.sendersInUse < server.maxWalSenders;
      const numbers =
        `max_replication_slots = ` +
        (`${server.maxReplicationSlots} (${server.slotsInUse} in use), max_wal_senders = ` +
          `${server.maxWalSenders} (${server.sendersInUse} in use)`);
      if (room) note(`${numbers}: room for pgcdc's slot and sender`);
      else
        steps.push({
          section,
          title: `${numbers}: raise them (a restart is needed) or free one, pgcdc needs a slot and a sender`,
          manual: true,
        });
      continue;
    }
    steps.push({
      section,
      title: parameter.text.replaceAll('{user}', o.user).replaceAll('{database}', o.database),
      manual: true,
      ...(parameter.advice ? { note: true as const } : {}),
    });
  }
  return steps;
}

/**
 * REPLICA IDENTITY FULL where asked: with a list of tables, on each captured table (full
 * before-images) and on each keyless partition under them; with --all-tables, on the keyless
 * tables (the only ones that need it). Without a connection, a note says what could not be checked.
 */
function replicaIdentitySteps(o: SetupOptions): SetupStep[] {
  const section = 'Replica identity';
  if (!o.replicaIdentityFull) {
    if (o.keyless !== undefined) return [];
    return [
      {
        section,
        title:
          'not connected (no --admin-url), so tables without a primary key could not be looked for: once ' +
          ('published, their UPDATE and DELETE fail unless they are REPLICA IDENTITY FULL ' +
            '(--replica-identity-full) or left out'),
        manual: true,
        note: true,
      },
    ];
  }
  const targets = new Map<string, { schema: string; table: string; why: string }>();
  for (const t of o.tables === 'all' ? [] : o.tables)
    targets.set(quoteQualified(t.schema, t.table), { ...t, why: 'full before-images for updates and deletes' });
  for (const t of o.keyless ?? [])
    targets.set(quoteQualified(t.schema, t.table), {
      ...t,
      why: `${keylessReason(t)}: FULL keeps its UPDATE and DELETE working once published`,
    });
  const steps = [...targets.entries()].map(([qualified, t]) =>
    sqlStep(
      section,
      `${t.schema}.${t.table}: ${t.why}`,
      `ALTER TABLE ${qualified} REPLICA IDENTITY FULL;`,
      `select relreplident = 'f' as done from pg_class where oid = ${regclass(t.schema, t.table)}`,
    ),
  );
  if (o.keyless === undefined && o.tables === 'all') {
    steps.push({
      section,
      title:
        'not connected (no --admin-url), so the tables without a primary key are not known here: run setup ' +
        'with --admin-url to list them',
      manual: true,
      note: true,
    });
  }
  return steps;
}

/** The whole plan for one platform, in the order it must be done. */
export function buildPlan(o: SetupOptions): SetupStep[] {
  const profile = PROFILES[o.platform];
  const user = quoteIdent(o.user);
  const steps: SetupStep[] = [...parameterSteps(o)];
  for (const line of profile.connection) steps.push({ section: 'Connection', title: line, manual: true });

  const role = 'User and replication';
  const create = `CREATE ROLE ${user} LOGIN PASSWORD `;
  steps.push(
    sqlStep(
      role,
      `capture user ${o.user}`,
      `${create}${quoteLiteral(o.userPassword ?? '')};`,
      `select exists (select 1 from pg_roles where rolname = ${quoteLiteral(o.user)}) as done`,
      `${create}'<password: PGCDC_USER_PASSWORD or a file, never the command line>';`,
    ),
  );
  if (profile.replicationGrant === 'rds_replication') {
    steps.push(
      sqlStep(
        role,
        `${o.user} may replicate (rds_replication)`,
        `GRANT rds_replication TO ${user};`,
        `select pg_has_role(${quoteLiteral(o.user)}, 'rds_replication', 'member') as done`,
      ),
    );
  } else {
    steps.push(
      sqlStep(
        role,
        `${o.user} may replicate (REPLICATION attribute)`,
        `ALTER ROLE ${user} WITH REPLICATION;`,
        `select rolreplication as done from pg_roles where rolname = ${quoteLiteral(o.user)}`,
      ),
    );
  }

  const grants = 'Grants';
  steps.push(
    sqlStep(
      grants,
      `${o.user} may connect to ${o.database}`,
      `GRANT CONNECT ON DATABASE ${quoteIdent(o.database)} TO ${user};`,
      `select has_database_privilege(${quoteLiteral(o.user)}, ${quoteLiteral(o.database)}, 'CONNECT') as done`,
    ),
  );
  for (const schema of o.schemas) {
    steps.push(
      sqlStep(
        grants,
        `${o.user} may use schema ${schema}`,
        `GRANT USAGE ON SCHEMA ${quoteIdent(schema)} TO ${user};`,
        `select has_schema_privilege(${quoteLiteral(o.user)}, ${quoteLiteral(schema)}, 'USAGE') as done`,
      ),
    );
  }
  if (o.tables === 'all') {
    for (const schema of o.schemas) {
      steps.push(
        sqlStep(
          grants,
          `${o.user} may read every table in ${schema}`,
          `GRANT SELECT ON ALL TABLES IN SCHEMA ${quoteIdent(schema)} TO ${user};`,
          `select coalesce(bool_and(has_table_privilege(${quoteLiteral(o.user)}, c.oid, 'SELECT')), true) as done
           from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = ` +
            `${quoteLiteral(schema)} and c.relkind in ('r', 'p')`,
        ),
      );
      steps.push(
        sqlStep(
          grants,
          `tables created later in ${schema} are readable too`,
          `ALTER DEFAULT PRIVILEGES IN SCHEMA ${quoteIdent(schema)} GRANT SELECT ON TABLES TO ${user};`,
          `select exists (select 1 from pg_default_acl d, aclexplode(d.defaclacl) a
           where d.defaclrole = (select oid from pg_roles where rolname = current_user)
             and d.defaclnamespace = (select oid from pg_namespace where nspname = ${quoteLiteral(schema)})
             and d.defaclobjtype = 'r' and a.grantee = ${roleOid(o.user)} and a.privilege_type = 'SELECT') as done`,
        ),
      );
    }
  } else {
    for (const t of o.tables) {
      steps.push(
        sqlStep(
          grants,
          `${o.user} may read ${t.schema}.${t.table}`,
          `GRANT SELECT ON ${quoteQualified(t.schema, t.table)} TO ${user};`,
          `select has_table_privilege(${quoteLiteral(o.user)}, ${regclass(t.schema, t.table)}, 'SELECT') as done`,
        ),
      );
    }
  }

  const extra: { schema: string; table: string }[] = [];
  if (o.signalSchema !== undefined) {
    steps.push(
      ...ownTableSteps(
        o,
        o.signalSchema,
        SIGNAL_TABLE,
        'id varchar(255) PRIMARY KEY, type varchar(32) NOT NULL, data varchar(2000)',
        'signal',
      ),
    );
    extra.push({ schema: o.signalSchema, table: SIGNAL_TABLE });
  }
  if (o.heartbeatSchema !== undefined) {
    steps.push(...ownTableSteps(o, o.heartbeatSchema, HEARTBEAT_TABLE, HEARTBEAT_COLUMNS, 'heartbeat'));
  }
  steps.push(...replicaIdentitySteps(o));
  steps.push(...publicationSteps(o, extra));
  steps.push(
    sqlStep(
      'Replication slot',
      `slot ${o.slot} (pgoutput); it holds WAL from now on until pgcdc confirms it, so start pgcdc soon`,
      `SELECT pg_create_logical_replication_slot(${quoteLiteral(o.slot)}, 'pgoutput');`,
      `select exists (select 1 from pg_replication_slots where slot_name = ${quoteLiteral(o.slot)}) as done`,
    ),
  );
  steps.push({
    section: 'Verify',
    title:
      `SELECT * FROM pg_publication_tables WHERE pubname = ` +
      `${quoteLiteral(o.publication)}; then: ${o.checkCommand}`,
    manual: true,
  });
  return steps;
}

/**
 * The plan as a commented SQL script, safe to print (no password). Steps in `inPlace` (probed on
 * the server) are listed as already done, without their SQL.
 */
export function formatPlan(
  o: SetupOptions,
  steps: readonly SetupStep[],
  inPlace: ReadonlySet<SetupStep> = new Set(),
): string {
  const lines = [
    `-- pgcdc setup: ${PROFILES[o.platform].title} (--platform ${o.platform}), user ${o.user}, database ${o.database}`,
    '-- Run the SQL as an admin user (superuser, rds_superuser, azure_pg_admin, cloudsqlsuperuser, ' +
      'neon_superuser), or pass --apply --admin-url.',
  ];
  let section = '';
  let n = 0;
  for (const step of steps) {
    if (step.applyOnly) continue;
    if (step.section !== section) {
      section = step.section;
      lines.push('', `-- ${++n}. ${section}`);
    }
    if (step.manual) lines.push(`--   * ${step.title}`);
    else if (inPlace.has(step)) lines.push(`-- already in place: ${step.title}`);
    else lines.push(`-- ${step.title}`, step.display ?? '');
  }
  return `${lines.join('\n')}\n`;
}
