/**
 * The preflight rules: pure functions from what was read off the server to problems with fixes.
 * No I/O here, so every rule is unit-tested on plain data. Fix texts carry SQL built with the
 * quoting helper, ready to paste.
 */
import type { SslMode } from '../config.ts';
import { quoteIdent, quoteLiteral, quoteQualified } from '../postgres/quote.ts';
import type { Problem } from './problem.ts';
import {
  tableKey,
  type PublicationFacts,
  type RoleFacts,
  type ServerSettings,
  type SlotFacts,
  type TableFacts,
  type TlsFacts,
} from './facts.ts';

/** `check` judges everything; `run` leaves to the capture what it handles itself (see preflightForRun). */
export type PreflightMode = 'check' | 'run';

export interface PreflightInput {
  readonly mode: PreflightMode;
  readonly host: string;
  readonly database: string;
  readonly sslmode: SslMode;
  readonly settings: ServerSettings;
  readonly role: RoleFacts;
  readonly tls: TlsFacts;
  /** The captured tables as found; `unmatched` are selection entries that found nothing. */
  readonly tables: readonly TableFacts[];
  readonly unmatched: readonly string[];
  /** True when no selection was given: the publication's own tables are captured. */
  readonly tablesFromPublication: boolean;
  readonly publicationName: string;
  readonly publication: PublicationFacts;
  /** Published tables outside the selection: the server sends their changes, pgcdc drops them. */
  readonly extraPublished?: readonly { readonly schema: string; readonly table: string }[];
  readonly createPublication: boolean;
  readonly slotName: string;
  readonly slot: SlotFacts | undefined;
  /** The configured signal table, when one is; `table` undefined when it does not exist. */
  readonly signal: { readonly name: string; readonly table: TableFacts | undefined } | undefined;
}

const GIB = 1024 * 1024 * 1024;

function problem(severity: Problem['severity'], code: string, message: string, fix: string): Problem {
  return { severity, code, message, fix };
}

function name(t: { schema: string; table: string }): string {
  return `${t.schema}.${t.table}`;
}

/** A pooler recognisable from the host name alone. */
export function poolerFromHost(host: string): Problem | undefined {
  const h = host.toLowerCase();
  if (/-pooler\./.test(h)) {
    return problem(
      'error',
      'pooler-neon',
      `${host} is a Neon pooled (PgBouncer) host name: logical replication cannot go through it`,
      `connect to the direct host: remove "-pooler" from the host name (${host.replace(/-pooler\./i, '.')})`,
    );
  }
  if (/\.pooler\.supabase\.com$/.test(h)) {
    return problem(
      'error',
      'pooler-supavisor',
      `${host} is Supabase's Supavisor pooler: it does not pass replication connections`,
      'use the direct connection host db.<project-ref>.supabase.co on port 5432 (Project Settings > Database > ' +
        'Connection string > Direct)',
    );
  }
  if (/\.proxy-[a-z0-9]+\.[a-z0-9-]+\.rds\.amazonaws\.com$/.test(h)) {
    return problem(
      'error',
      'pooler-rds-proxy',
      `${host} is an RDS Proxy endpoint: RDS Proxy does not support replication connections`,
      'connect to the DB instance or cluster writer endpoint (*.rds.amazonaws.com without .proxy-)',
    );
  }
  return undefined;
}

/** A pooler recognisable from a connection error (PgBouncer rejects the replication startup parameter). */
export function poolerFromError(message: string): Problem | undefined {
  if (/unsupported startup parameter/i.test(message)) {
    return problem(
      'error',
      'pooler-pgbouncer',
      `a connection pooler (PgBouncer) answers at this address: "${message}"`,
      'connect pgcdc straight to PostgreSQL (its own port, usually 5432), not through PgBouncer: pgbouncer ' +
        'cannot carry replication connections',
    );
  }
  return undefined;
}

function serverRules(input: PreflightInput): Problem[] {
  const { settings: s } = input;
  const out: Problem[] = [];
  if (s.major < 10) {
    out.push(
      problem(
        'error',
        'version',
        `PostgreSQL ${s.versionNum} is too old: pgoutput logical replication needs 10 or newer`,
        'upgrade the server to PostgreSQL 10 or newer',
      ),
    );
  }
  if (s.walLevel !== 'logical') {
    const rds = s.rdsLogicalReplication !== undefined;
    out.push(
      problem(
        'error',
        'wal-level',
        `wal_level is ${s.walLevel}; logical replication needs logical`,
        rds
          ? 'in a custom DB parameter group (cluster parameter group on Aurora) set rds.logical_replication = ' +
              '1 (and wal_sender_timeout = 0), attach it and reboot the instance'
          : "ALTER SYSTEM SET wal_level = 'logical'; then restart PostgreSQL (Azure: server parameter " +
              ('wal_level = LOGICAL; Cloud SQL: flag cloudsql.logical_decoding = on; Neon: enable logical ' +
                'replication in the project settings)'),
      ),
    );
  }
  if (s.inRecovery) {
    if (s.major < 16) {
      out.push(
        problem(
          'error',
          'standby',
          `this server is a standby (read replica) running PostgreSQL ` +
            `${s.major}: logical decoding on a standby needs 16 or newer`,
          'point pgcdc at the primary (writer) instance, or upgrade the replica and its primary to PostgreSQL 16+',
        ),
      );
    } else {
      out.push(
        problem(
          'warning',
          'standby',
          'this server is a standby (read replica): pgcdc can only read here; the publication must be created ' +
            'on the primary, and failover loses the slot',
          "create the publication on the primary; keep the standby's slot in mind when failing over",
        ),
      );
      if (!s.hotStandbyFeedback) {
        out.push(
          problem(
            'error',
            'hot-standby-feedback',
            'hot_standby_feedback is off on this standby: the primary can remove catalog rows the slot needs ' +
              'and invalidate it',
            'set hot_standby_feedback = on on the standby (and use a physical slot between primary and standby)',
          ),
        );
      }
    }
  }
  if (input.slot === undefined) {
    if (s.usedSlots >= s.maxReplicationSlots) {
      out.push(
        problem(
          'error',
          'slots-exhausted',
          `all ${s.maxReplicationSlots} replication slots are in use (max_replication_slots): pgcdc cannot ` +
            `create ${input.slotName}`,
          'raise max_replication_slots (restart needed) or drop an unused slot: SELECT ' +
            'pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE NOT active AND ...;',
        ),
      );
    }
  }
  if (s.activeSenders >= s.maxWalSenders) {
    out.push(
      problem(
        'error',
        'senders-exhausted',
        `all ${s.maxWalSenders} WAL senders are busy (max_wal_senders): the replication connection would be refused`,
        'raise max_wal_senders (restart needed) or stop an idle replication client',
      ),
    );
  }
  const truncate = input.mode === 'check' ? truncateNotDecoded(s.major) : undefined;
  if (truncate) out.push(truncate);
  if (s.walSenderTimeoutMs > 0 && s.walSenderTimeoutMs < 10_000) {
    out.push(
      problem(
        'warning',
        'wal-sender-timeout',
        `wal_sender_timeout is ` +
          `${s.walSenderTimeoutMs} ms: a short network stall disconnects pgcdc (it reconnects, but restarts decoding)`,
        'set wal_sender_timeout to 60s or more (0 disables it, as the RDS guides suggest): ALTER SYSTEM SET ' +
          "wal_sender_timeout = '60s'; SELECT pg_reload_conf();",
      ),
    );
  }
  return out;
}

/**
 * PostgreSQL 10's pgoutput cannot send TRUNCATE (11+ can): truncated rows get no event. Judged by
 * `check`; `run` logs it itself at start (Capture), so it is not a preflight warning of run.
 */
export function truncateNotDecoded(major: number): Problem | undefined {
  if (major !== 10) return undefined;
  return problem(
    'warning',
    'truncate-not-decoded',
    'PostgreSQL 10 does not decode TRUNCATE (pgoutput sends it from 11 on): a TRUNCATE of a captured table ' +
      'gives no event, and consumers keep the rows it removed',
    'remove rows of captured tables with DELETE, not TRUNCATE (deletes are decoded), or upgrade to PostgreSQL ' +
      '11 or newer',
  );
}

function roleRules(input: PreflightInput): Problem[] {
  const { role } = input;
  if (role.superuser || role.replication || role.rdsReplication === true) return [];
  const onRds = role.rdsReplication !== undefined;
  return [
    problem(
      'error',
      'replication-privilege',
      `user ${role.name} may not open replication connections (no REPLICATION ` +
        `attribute${onRds ? ', not a member of rds_replication' : ''})`,
      onRds
        ? `GRANT rds_replication TO ${quoteIdent(role.name)};`
        : `ALTER ROLE ${quoteIdent(role.name)} WITH REPLICATION;`,
    ),
  ];
}

function tlsRules(input: PreflightInput): Problem[] {
  if (!input.tls.inUse) {
    return [
      problem(
        'warning',
        'tls-off',
        'the connection is not encrypted (no TLS): passwords and data cross the network in clear text',
        'enable TLS on the server and connect with sslmode=verify-full and sslrootcert=<the server CA>',
      ),
    ];
  }
  if (input.sslmode !== 'verify-full') {
    return [
      problem(
        'warning',
        'tls-unverified',
        `TLS is in use ` +
          (`(${input.tls.version ?? 'unknown version'}) but ` +
            (`sslmode=${input.sslmode} does not verify the server's certificate and host name: anyone who can ` +
              (`redirect the connection (DNS, a hostile network) could pose as the server and read the password ` +
                `and every change`))),
        'connect with sslmode=verify-full and sslrootcert=<the CA bundle of your provider> (e.g. the RDS ' +
          'global bundle)',
      ),
    ];
  }
  return [];
}

function tableRules(input: PreflightInput): Problem[] {
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
function generatedColumnRules(input: PreflightInput): Problem[] {
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

function publicationRules(input: PreflightInput): Problem[] {
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

function signalRules(input: PreflightInput): Problem[] {
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

function slotRules(input: PreflightInput): Problem[] {
  const slot = input.slot;
  if (!slot || input.mode === 'run') return []; // run's startup checks refuse bad slots with their own messages
  const out: Problem[] = [];
  const drop =
    `SELECT ` +
    (`pg_drop_replication_slot(${quoteLiteral(slot.name)}); (changes not yet captured are then lost: plan a new ` +
      `snapshot)`);
  if (slot.slotType !== 'logical' || slot.plugin !== 'pgoutput') {
    out.push(
      problem(
        'error',
        'slot-plugin',
        `slot ${slot.name} is a ` +
          `${slot.slotType} slot with plugin ${slot.plugin ?? 'none'}, pgcdc needs a logical pgoutput slot`,
        `use another --slot name, or ${drop}`,
      ),
    );
  } else if (slot.database !== input.database) {
    out.push(
      problem(
        'error',
        'slot-database',
        `slot ${slot.name} belongs to database ${slot.database ?? '?'}, not ${input.database}`,
        'use another --slot name for this database',
      ),
    );
  }
  if (slot.active) {
    out.push(
      problem(
        'error',
        'slot-active',
        `slot ${slot.name} is in use by another process (pid ${slot.activePid ?? '?'})`,
        `stop the other consumer (SELECT pg_terminate_backend(${slot.activePid ?? 'pid'});) or use another --slot name`,
      ),
    );
  }
  if (slot.walStatus === 'lost') {
    out.push(
      problem(
        'error',
        'slot-lost',
        `slot ${slot.name} was invalidated (wal_status = lost): the WAL it needed is gone`,
        `${drop}, then start over with a fresh slot`,
      ),
    );
  } else if (slot.walStatus === 'unreserved') {
    out.push(
      problem(
        'warning',
        'slot-at-risk',
        `slot ${slot.name} is about to lose WAL (wal_status = unreserved)`,
        'start pgcdc now, or raise max_slot_wal_keep_size',
      ),
    );
  } else if (slot.safeWalSize !== undefined && slot.safeWalSize < GIB) {
    out.push(
      problem(
        'warning',
        'slot-safe-wal-size',
        `slot ${slot.name} can fall only ` +
          (`${Math.max(0, Math.round(slot.safeWalSize / 1048576))} MiB further behind before it is invalidated ` +
            `(safe_wal_size)`),
        'keep pgcdc running, or raise max_slot_wal_keep_size',
      ),
    );
  }
  return out;
}

/** Every rule over one input. */
export function evaluate(input: PreflightInput): Problem[] {
  const hosted = poolerFromHost(input.host);
  return [
    ...(hosted ? [hosted] : []),
    ...serverRules(input),
    ...roleRules(input),
    ...tlsRules(input),
    ...tableRules(input),
    ...generatedColumnRules(input),
    ...publicationRules(input),
    ...signalRules(input),
    ...slotRules(input),
  ];
}
