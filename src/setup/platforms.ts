/**
 * What each platform needs outside SQL (parameters, restarts, console switches, host names), and
 * how it grants the right to replicate. Taken from the vendors' own setup pages; each line is a
 * trap users hit when it is missing.
 */

export const PLATFORMS = ['generic', 'rds', 'aurora', 'aurora-serverless', 'azure', 'gcp', 'neon', 'supabase'] as const;
export type Platform = (typeof PLATFORMS)[number];

/**
 * One manual parameter step. `forLogical` steps only turn logical decoding on: a plan for a server
 * whose wal_level is already logical leaves them out. `headroom` is the slots/senders advice, said
 * with the server's own numbers when they are known. `{user}` and `{database}` in `text` are
 * replaced by the plan's.
 */
export interface ParameterStep {
  readonly text: string;
  readonly forLogical?: true;
  readonly headroom?: true;
  /** Information, not a task: printed in the plan, never listed as still to do after --apply. */
  readonly advice?: true;
}

export interface PlatformProfile {
  readonly title: string;
  /** How the capture user gets the right to open replication connections. */
  readonly replicationGrant: 'rds_replication' | 'attribute';
  /** Manual steps (consoles, parameter groups, restarts), printed as comments in order. */
  readonly parameters: readonly ParameterStep[];
  /** Connection notes: host names to use or avoid, TLS. */
  readonly connection: readonly string[];
}

const TLS_NOTE = 'connect with sslmode=verify-full and sslrootcert=<CA bundle>; pgcdc check warns on anything weaker';

export const PROFILES: Readonly<Record<Platform, PlatformProfile>> = {
  generic: {
    title: 'self-managed PostgreSQL',
    replicationGrant: 'attribute',
    parameters: [
      {
        text:
          "as a superuser: ALTER SYSTEM SET wal_level = 'logical'; then restart PostgreSQL (a reload is " +
          'not enough)',
        forLogical: true,
      },
      {
        text:
          'keep max_replication_slots and max_wal_senders at least 1 above what other replicas and tools ' +
          'use (default 10 each)',
        headroom: true,
      },
      {
        text:
          'optional: ALTER SYSTEM SET max_slot_wal_keep_size = ... (13+) so a stopped pgcdc cannot fill ' +
          'the disk with WAL',
      },
      // A logical replication connection (replication=database) matches pg_hba.conf lines by database
      // name like any other; the `replication` keyword only matches physical replication.
      {
        text:
          'pg_hba.conf: allow the capture user for the database (host {database} {user} <address> ' +
          'scram-sha-256); that line also admits its logical replication connections',
      },
    ],
    connection: [
      TLS_NOTE,
      'a PgBouncer in front cannot carry replication connections: point pgcdc at PostgreSQL itself',
    ],
  },
  rds: {
    title: 'Amazon RDS for PostgreSQL',
    replicationGrant: 'rds_replication',
    parameters: [
      {
        text:
          'RDS console > Parameter groups > Create: family postgresNN, type DB Parameter Group (the ' +
          'default group cannot be edited)',
        forLogical: true,
      },
      { text: 'edit it: rds.logical_replication = 1, wal_sender_timeout = 0', forLogical: true },
      {
        text:
          'Modify the DB instance: attach the parameter group, then Reboot (the parameter is static; the ' +
          'status shows pending-reboot until then)',
        forLogical: true,
      },
      {
        text: 'logical replication runs on the primary only: not on a read replica before PostgreSQL 16',
        advice: true,
      },
    ],
    connection: [
      `${TLS_NOTE} (RDS: the global-bundle.pem from AWS)`,
      'use the instance endpoint, not an RDS Proxy endpoint (*.proxy-*.rds.amazonaws.com)',
    ],
  },
  aurora: {
    title: 'Amazon Aurora PostgreSQL',
    replicationGrant: 'rds_replication',
    parameters: [
      {
        text: 'RDS console > Parameter groups > Create: family aurora-postgresqlNN, type DB Cluster Parameter Group',
        forLogical: true,
      },
      { text: 'edit it: rds.logical_replication = 1, wal_sender_timeout = 0', forLogical: true },
      {
        text: 'Modify the cluster: attach the cluster parameter group, then reboot the writer instance',
        forLogical: true,
      },
    ],
    connection: [
      `${TLS_NOTE} (the AWS global-bundle.pem)`,
      'use the cluster (writer) endpoint: reader endpoints are standbys, and RDS Proxy endpoints cannot replicate',
    ],
  },
  'aurora-serverless': {
    title: 'Amazon Aurora Serverless v2 PostgreSQL',
    replicationGrant: 'rds_replication',
    parameters: [
      { text: 'Aurora Serverless v1 has no logical replication: use Serverless v2 (or provisioned)', forLogical: true },
      {
        text:
          'RDS console > Parameter groups > Create: family aurora-postgresqlNN, type DB Cluster Parameter ' +
          'Group; rds.logical_replication = 1, wal_sender_timeout = 0',
        forLogical: true,
      },
      { text: 'attach it to the cluster and reboot the writer', forLogical: true },
      { text: 'a minimum capacity above 0 ACU keeps the slot from holding WAL while paused' },
    ],
    connection: [
      `${TLS_NOTE} (the AWS global-bundle.pem)`,
      'use the cluster writer endpoint, not a reader or RDS Proxy endpoint',
    ],
  },
  azure: {
    title: 'Azure Database for PostgreSQL flexible server',
    replicationGrant: 'attribute',
    parameters: [
      { text: 'Azure portal > the server > Server parameters: wal_level = LOGICAL', forLogical: true },
      {
        text: 'max_worker_processes = 16 or more (otherwise: WARNING: out of background worker slots)',
        forLogical: true,
      },
      { text: 'Save, then restart the server', forLogical: true },
      { text: 'watch storage: enable storage auto-grow, since a stopped capture retains WAL' },
    ],
    connection: [
      `${TLS_NOTE} (the DigiCert Global Root G2 / Microsoft RSA Root 2017 certificates)`,
      'the admin user (azure_pg_admin) may grant REPLICATION',
    ],
  },
  gcp: {
    title: 'Google Cloud SQL for PostgreSQL',
    replicationGrant: 'attribute',
    parameters: [
      {
        text: 'Cloud SQL console > the instance > Edit > Flags: cloudsql.logical_decoding = on (the instance restarts)',
        forLogical: true,
      },
      { text: 'connect as a cloudsqlsuperuser member (the postgres user) for the SQL below', advice: true },
    ],
    connection: [
      `${TLS_NOTE} (the instance's server-ca.pem)`,
      'the Cloud SQL Auth Proxy works: point pgcdc at its local port',
    ],
  },
  neon: {
    title: 'Neon',
    replicationGrant: 'attribute',
    parameters: [
      {
        text:
          'Neon console > the project > Settings > Logical Replication > Enable (sets wal_level = logical; ' +
          'it cannot be turned off again); the compute restarts',
        forLogical: true,
      },
      { text: 'a slot keeps WAL until pgcdc confirms it, so keep pgcdc running or drop the slot', advice: true },
    ],
    connection: [
      'use the direct host name: remove "-pooler" from ep-...-pooler.<region>.aws.neon.tech (the pooler is ' +
        'PgBouncer: "unsupported startup parameter: replication")',
      `${TLS_NOTE} (Neon requires TLS)`,
    ],
  },
  supabase: {
    title: 'Supabase',
    replicationGrant: 'attribute',
    parameters: [{ text: 'wal_level is logical on Supabase projects by default; nothing to change', forLogical: true }],
    connection: [
      'use the direct connection db.<project-ref>.supabase.co:5432, not the Supavisor pooler ' +
        '(*.pooler.supabase.com), which does not pass replication connections',
      `${TLS_NOTE} (download the CA from Project Settings > Database)`,
    ],
  },
};
