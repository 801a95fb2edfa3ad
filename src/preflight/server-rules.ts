/**
 * Preflight rules about the server: poolers, settings, the role, TLS and the replication slot.
 * Pure functions over what preflight.ts read (rule-input.ts).
 */
import { quoteIdent, quoteLiteral } from '../postgres/quote.ts';
import type { Problem } from './problem.ts';
import { GIB, problem, type PreflightInput } from './rule-input.ts';

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

export function serverRules(input: PreflightInput): Problem[] {
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

export function roleRules(input: PreflightInput): Problem[] {
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

export function tlsRules(input: PreflightInput): Problem[] {
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
export function slotRules(input: PreflightInput): Problem[] {
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
