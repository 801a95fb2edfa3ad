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
import { PROFILES } from './platforms.ts';
import { HEARTBEAT_COLUMNS } from '../selection/heartbeat-table.ts';
import { HEARTBEAT_TABLE, SIGNAL_TABLE, type SetupOptions, type SetupStep } from './plan-types.ts';
import {
  ownTableSteps,
  parameterSteps,
  publicationSteps,
  regclass,
  replicaIdentitySteps,
  roleOid,
  sqlStep,
} from './plan-steps.ts';
import { createSlotSql, failoverSteps } from './failover-steps.ts';

export type { ServerState, SetupOptions, SetupStep } from './plan-types.ts';
export { HEARTBEAT_TABLE, SIGNAL_TABLE } from './plan-types.ts';

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
      createSlotSql(o),
      `select exists (select 1 from pg_replication_slots where slot_name = ${quoteLiteral(o.slot)}) as done`,
    ),
  );
  steps.push(...failoverSteps(o));
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
