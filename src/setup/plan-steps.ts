/**
 * The groups of setup steps that buildPlan (plan.ts) puts together: server parameters, the
 * publication, pgcdc's own tables (signal, heartbeat) and replica identities. Every identifier and
 * literal goes through the quoting helper.
 */
import { quoteIdent, quoteLiteral, quoteQualified } from '../postgres/quote.ts';
import { PROFILES } from './platforms.ts';
import { keylessReason } from './identity.ts';
import type { SetupOptions, SetupStep } from './plan-types.ts';
import { ownTableComment, type OwnTableKind } from '../selection/own-tables.ts';

export function sqlStep(section: string, title: string, sql: string, probe: string, display = sql): SetupStep {
  return { section, title, sql, probe, display };
}

export const applyOnly = (step: SetupStep): SetupStep => ({ ...step, applyOnly: true });
export const roleOid = (user: string): string => `(select oid from pg_roles where rolname = ${quoteLiteral(user)})`;
export const regclass = (schema: string, table: string): string =>
  `${quoteLiteral(quoteQualified(schema, table))}::regclass`;

export function publicationSteps(o: SetupOptions, extra: readonly { schema: string; table: string }[]): SetupStep[] {
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

export function ownTableSteps(
  o: SetupOptions,
  schema: string,
  table: string,
  ddl: string,
  what: OwnTableKind,
): SetupStep[] {
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
    // Created and marked in one step, and only when missing: a table found in place is the user's and
    // keeps no mark, so `pgcdc teardown` never drops it (selection/own-tables.ts). Without IF NOT EXISTS,
    // a table created meanwhile fails the step instead of receiving the mark.
    sqlStep(
      section,
      `${what} table ${schema}.${table}, marked as created by pgcdc setup`,
      `CREATE TABLE ${q} (${ddl});\nCOMMENT ON TABLE ${q} IS ${quoteLiteral(ownTableComment(what, o.publication))};`,
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
export function parameterSteps(o: SetupOptions): SetupStep[] {
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
export function replicaIdentitySteps(o: SetupOptions): SetupStep[] {
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
