/**
 * Preflight rules about the captured tables: keys and replica identity, generated columns, the
 * publication and the signal table. Pure functions over what preflight.ts read (rule-input.ts).
 */
import { quoteIdent, quoteQualified } from '../postgres/quote.ts';
import type { Problem } from './problem.ts';
import { tableKey, type PublicationFacts, type TableFacts } from './facts.ts';
import { name, problem, type PreflightInput } from './rule-input.ts';

export function tableRules(input: PreflightInput): Problem[] {
  const out: Problem[] = [];
  for (const entry of input.unmatched) {
    out.push(
      problem(
        'error',
        'table-missing',
        `${entry} matches no table visible to ${input.role.name}`,
        'check the name (schema.table, case-sensitive) and GRANT USAGE on its schema',
      ),
    );
  }
  if (!input.tablesFromPublication && input.tables.length === 0 && input.unmatched.length === 0) {
    out.push(
      problem(
        'error',
        'no-tables',
        'the selection matches no table',
        'pass --tables schema.table,schema.* or --tables-file',
      ),
    );
  }
  for (const t of input.tables) {
    const q = quoteQualified(t.schema, t.table);
    if (!t.canSelect) {
      out.push(
        problem(
          'error',
          'select-privilege',
          `user ${input.role.name} cannot SELECT from ${name(t)}`,
          `GRANT USAGE ON SCHEMA ` +
            (`${quoteIdent(t.schema)} TO ` +
              `${quoteIdent(input.role.name)}; GRANT SELECT ON ${q} TO ${quoteIdent(input.role.name)};`),
        ),
      );
    }
    if (!input.publication.publishesUpdateOrDelete) continue;
    const hasKey = t.primaryKey.length > 0;
    if (t.replicaIdentity === 'n' || (t.replicaIdentity === 'd' && !hasKey && t.kind !== 'p')) {
      out.push(
        problem(
          'error',
          'replica-identity-missing',
          t.replicaIdentity === 'n'
            ? `${name(t)} has REPLICA IDENTITY NOTHING: once it is published, its UPDATEs and DELETEs fail on ` +
                `the source`
            : `${name(t)} has no primary key and REPLICA IDENTITY DEFAULT: once it is published, its UPDATEs ` +
                `and DELETEs fail on the source`,
          hasKey
            ? `ALTER TABLE ${q} REPLICA IDENTITY DEFAULT; (or FULL for complete before-images)`
            : `add a primary key, or ALTER TABLE ${q} REPLICA IDENTITY FULL;`,
        ),
      );
    } else if (t.replicaIdentity === 'd' && hasKey) {
      out.push(
        problem(
          'warning',
          'replica-identity-default',
          `${name(t)} has REPLICA IDENTITY DEFAULT: deletes carry only the key ` +
            `(${t.primaryKey.join(', ')}) and unchanged TOAST values are not sent`,
          `for full before-images: ALTER TABLE ${q} REPLICA IDENTITY FULL;`,
        ),
      );
    }
  }
  return out;
}

const withColumns = (
  tables: readonly TableFacts[],
  columns: (t: TableFacts) => readonly string[] | undefined,
): string => tables.map((t) => `${name(t)} (${(columns(t) ?? []).join(', ')})`).join(', ');

/**
 * Generated columns (PostgreSQL 12+): what pgoutput sends of them (stored ones on 18+ when the
 * publication says publish_generated_columns = stored; virtual ones never), and tables whose writes
 * a publication breaks on 18+ (REPLICA IDENTITY FULL must publish every column it includes).
 */
export function generatedColumnRules(input: PreflightInput): Problem[] {
  const { major } = input.settings;
  if (major < 12) return [];
  const { publication: pub, publicationName } = input;
  const out: Problem[] = [];
  const stored = input.tables.filter((t) => (t.storedGenerated ?? []).length > 0);
  const are = (tables: readonly TableFacts[]): string => (tables.length > 1 ? 'have' : 'has');
  if (stored.length > 0 && major < 18) {
    out.push(
      problem(
        'warning',
        'generated-columns',
        `${withColumns(stored, (t) => t.storedGenerated)} ${are(stored)} stored generated columns, which ` +
          (`pgoutput on PostgreSQL ` +
            `${major} cannot send: events leave them out (snapshot reads too, so both have the same columns)`),
        'compute them in the consumer from the other columns, or upgrade to PostgreSQL 18, where pgcdc ' +
          'publishes them (publish_generated_columns = stored)',
      ),
    );
  } else if (stored.length > 0 && pub.exists && pub.generatedColumns !== 'stored') {
    const full = stored.filter((t) => t.replicaIdentity === 'f');
    const failing =
      full.length > 0 && pub.publishesUpdateOrDelete
        ? `, and UPDATEs and DELETEs of ${full.map(name).join(', ')} fail on the source ` +
          '(REPLICA IDENTITY FULL includes unpublished generated columns)'
        : '';
    out.push(
      problem(
        'warning',
        'generated-columns',
        `publication ${publicationName} does not publish generated columns: events of ` +
          `${withColumns(stored, (t) => t.storedGenerated)} leave them out${failing}`,
        `ALTER PUBLICATION ${quoteIdent(publicationName)} SET (publish_generated_columns = stored);`,
      ),
    );
  }
  if (major < 18) return out;
  const virtual = input.tables.filter((t) => (t.virtualGenerated ?? []).length > 0);
  const breaking = pub.publishesUpdateOrDelete ? virtual.filter((t) => t.replicaIdentity === 'f') : [];
  for (const t of breaking) {
    out.push(
      problem(
        pub.exists ? 'warning' : 'error',
        'generated-virtual-identity',
        `${name(t)} has REPLICA IDENTITY FULL and virtual generated columns ` +
          (`(${(t.virtualGenerated ?? []).join(', ')}), which PostgreSQL cannot publish: ` +
            (pub.exists
              ? 'its UPDATEs and DELETEs fail on the source while it is published'
              : 'once it is published, its UPDATEs and DELETEs fail on the source')),
        `give it a primary key and ALTER TABLE ` +
          `${quoteQualified(t.schema, t.table)} REPLICA IDENTITY DEFAULT; or leave it out of the selection`,
      ),
    );
  }
  const others = virtual.filter((t) => !breaking.includes(t));
  if (others.length > 0) {
    out.push(
      problem(
        'warning',
        'generated-virtual',
        `${withColumns(others, (t) => t.virtualGenerated)} ${are(others)} virtual generated columns, which ` +
          `PostgreSQL cannot publish: events leave them out (snapshot reads too)`,
        'compute them in the consumer from the other columns, or define them as STORED generated columns',
      ),
    );
  }
  return out;
}

function covered(pub: PublicationFacts, t: TableFacts): boolean {
  if (pub.allTables || pub.tables.has(tableKey(t))) return true;
  return t.kind === 'p' && t.leaves.length > 0 && t.leaves.every((leaf) => pub.tables.has(leaf));
}

export function publicationRules(input: PreflightInput): Problem[] {
  const { publication: pub, publicationName } = input;
  const out: Problem[] = [];
  const wanted = [...input.tables, ...(input.signal?.table ? [input.signal.table] : [])];
  const pubIdent = quoteIdent(publicationName);
  const options = [
    ...(input.settings.major >= 13 ? ['publish_via_partition_root = true'] : []),
    ...(input.settings.major >= 18 ? ['publish_generated_columns = stored'] : []),
  ];
  const viaRootClause = options.length > 0 ? ` WITH (${options.join(', ')})` : '';
  if (!pub.exists) {
    if (input.mode === 'run' && input.createPublication) return out; // ensurePublication creates it
    const list = wanted.map((t) => quoteQualified(t.schema, t.table)).join(', ');
    const sql =
      wanted.length > 0
        ? `CREATE PUBLICATION ${pubIdent} FOR TABLE ${list}${viaRootClause};`
        : `CREATE PUBLICATION ${pubIdent} FOR TABLE <schema.table, ...>${viaRootClause};`;
    const canCreate =
      input.createPublication &&
      wanted.length > 0 &&
      input.role.canCreateInDatabase &&
      (input.role.superuser || wanted.every((t) => t.owned));
    out.push(
      canCreate
        ? problem(
            'warning',
            'publication-missing',
            `publication ${publicationName} does not exist; pgcdc run will create it (FOR TABLE the selected tables)`,
            `or create it yourself: ${sql}`,
          )
        : problem(
            'error',
            'publication-missing',
            `publication ${publicationName} does not exist and ${input.role.name} cannot create it`,
            `as a table owner or superuser: ${sql}`,
          ),
    );
    return out;
  }
  const missing = wanted.filter((t) => !covered(pub, t));
  if (missing.length > 0 && input.mode === 'check') {
    out.push(
      problem(
        'error',
        'publication-coverage',
        `publication ${publicationName} does not include ${missing.map(name).join(', ')}`,
        `ALTER PUBLICATION ${pubIdent} ADD TABLE ${missing.map((t) => quoteQualified(t.schema, t.table)).join(', ')};`,
      ),
    );
  }
  const extra = input.extraPublished ?? [];
  if (extra.length > 0) {
    const more = extra.length > 10 ? ` and ${extra.length - 10} more` : '';
    const listed = `${extra.slice(0, 10).map(name).join(', ')}${more}`;
    out.push(
      problem(
        'warning',
        'publication-extra-tables',
        `publication ${publicationName} also publishes ` +
          `${listed}, outside the selected tables: the server decodes and sends their changes, and pgcdc drops them`,
        pub.allTables
          ? `publication ` +
              (`${publicationName} is FOR ALL TABLES: give pgcdc a publication of its own (CREATE PUBLICATION ` +
                (`<name> FOR TABLE <the selected tables>; then --publication <name>), or widen the selection ` +
                  `(--tables, --exclude-tables) to capture them`))
          : `ALTER PUBLICATION ` +
              (`${pubIdent} DROP TABLE ` +
                (`${extra.map((t) => quoteQualified(t.schema, t.table)).join(', ')}; or widen the selection ` +
                  `(--tables, --exclude-tables) to capture them`)),
      ),
    );
  }
  const partitioned = input.tables.filter((t) => t.kind === 'p');
  if (partitioned.length > 0 && !pub.viaRoot) {
    out.push(
      input.settings.major >= 13
        ? problem(
            'warning',
            'partition-root',
            `publication ` +
              (`${publicationName} does not publish via the partition root: changes to ` +
                (`${partitioned.map(name).join(', ')} arrive under leaf partitions (pgcdc maps them back, with ` +
                  `a catalog lookup per new leaf)`)),
            `ALTER PUBLICATION ${pubIdent} SET (publish_via_partition_root = true);`,
          )
        : problem(
            'warning',
            'partition-root',
            `PostgreSQL ` +
              (`${input.settings.major} cannot publish via the partition root: ` +
                `${partitioned.map(name).join(', ')} must be published leaf by leaf, and new partitions added by hand`),
            `ALTER PUBLICATION ` +
              `${pubIdent} ADD TABLE <each partition>; (or upgrade to 13+ and use publish_via_partition_root)`,
          ),
    );
  }
  return out;
}

export function signalRules(input: PreflightInput): Problem[] {
  const signal = input.signal;
  if (!signal) return [];
  if (!signal.table) {
    return [
      problem(
        'error',
        'signal-table-missing',
        `signal table ${signal.name} does not exist`,
        'create it with pgcdc setup --signal-schema <schema>, or: CREATE TABLE <schema>.pgcdc_signal (id ' +
          'varchar(255) PRIMARY KEY, type varchar(32) NOT NULL, data varchar(2000));',
      ),
    ];
  }
  if (!signal.table.canWrite || !signal.table.canSelect) {
    const q = quoteQualified(signal.table.schema, signal.table.table);
    return [
      problem(
        'error',
        'signal-table-privilege',
        `user ${input.role.name} cannot SELECT, INSERT and UPDATE the signal table ${signal.name}`,
        `GRANT SELECT, INSERT, UPDATE ON ${q} TO ${quoteIdent(input.role.name)};`,
      ),
    ];
  }
  return [];
}
