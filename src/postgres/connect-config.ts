/**
 * The `source` config section: where the database is, how to reach it, and the liveness limits of
 * every connection pgcdc opens to it (docs/config.md#liveness). src/config.ts composes this schema;
 * nothing under postgres/ imports src/config.ts.
 */
import { z } from 'zod';
import { sshTunnelSchema } from './tunnel-config.ts';

export const SSL_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'] as const;
export type SslMode = (typeof SSL_MODES)[number];

/** Defaults of the liveness settings, also used by connections built without a parsed config (tests, tools). */
export const LIVENESS_DEFAULTS = {
  /** A query that gets no byte back for a minute is abandoned (catalog, heartbeat, checks). */
  statementTimeoutMs: 60_000,
  /** Idle time before the first TCP keepalive probe. */
  tcpKeepaliveMs: 30_000,
  /** The receive timeout when the server's wal_sender_timeout is 0 (disabled). */
  receiveTimeoutWithoutServerTimeoutMs: 60_000,
} as const;

const HOUR_MS = 3_600_000;

export const sourceSchema = z.strictObject({
  /** postgres://user[:password]@host[:port]/database[?sslmode=...]; fields below override its parts. */
  url: z.string().optional(),
  host: z.string().optional(),
  port: z.number().int().min(1).max(65535).optional(),
  user: z.string().optional(),
  /** Prefer `passwordFile`, PGPASSWORD or ~/.pgpass (PGPASSFILE): a config file is easily shared. */
  password: z.string().optional(),
  /** File whose first line is the password (`--password-file`). */
  passwordFile: z.string().min(1).optional(),
  database: z.string().optional(),
  /** Default `require` (libpq's is prefer); `disable` for a local server without TLS. */
  sslmode: z.enum(SSL_MODES).optional(),
  sslrootcert: z.string().optional(),
  sslcert: z.string().optional(),
  sslkey: z.string().optional(),
  connectTimeoutMs: z.number().int().positive().default(10_000),
  /**
   * The replication connection's receive timeout: no byte (no change, no keepalive) for this long
   * fails the capture with SOURCE_TIMEOUT, a retried fault. pgcdc asks the server for a keepalive
   * after a third of it, so a quiet but healthy stream never trips it. Default: twice the server's
   * wal_sender_timeout, read at start, or 60 s when that is 0 (disabled).
   */
  receiveTimeoutMs: z.number().int().min(1000).max(HOUR_MS).optional(),
  /**
   * Catalog, heartbeat and check queries: a query that gets no byte back for this long is abandoned
   * and its connection closed (a stalled or half-open connection), failing with SOURCE_TIMEOUT; the
   * server's statement_timeout on these connections is set a little higher, so it also ends there.
   */
  statementTimeoutMs: z.number().int().min(1000).max(HOUR_MS).default(LIVENESS_DEFAULTS.statementTimeoutMs),
  /** Idle time before TCP keepalive probes start, on every connection and the SSH tunnel's; 0 turns them off. */
  tcpKeepaliveMs: z.number().int().min(0).max(HOUR_MS).default(LIVENESS_DEFAULTS.tcpKeepaliveMs),
  /** Reach the database through an SSH server (every connection: replication, snapshot, check). */
  ssh: sshTunnelSchema.optional(),
});
export type SourceConfig = z.infer<typeof sourceSchema>;

/** The section's value when the config has no `source` at all. */
export const SOURCE_DEFAULTS = {
  connectTimeoutMs: 10_000,
  statementTimeoutMs: LIVENESS_DEFAULTS.statementTimeoutMs,
  tcpKeepaliveMs: LIVENESS_DEFAULTS.tcpKeepaliveMs,
} as const;

/** What resolveEndpoint needs: a parsed section, or one built in code without the liveness settings. */
export type SourceSettings = Omit<SourceConfig, 'statementTimeoutMs' | 'tcpKeepaliveMs'> &
  Partial<Pick<SourceConfig, 'statementTimeoutMs' | 'tcpKeepaliveMs'>>;
