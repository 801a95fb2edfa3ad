/**
 * The resolved source endpoint, shared by connect.ts, tls.ts and tunnel.ts (so none of them imports another
 * in a cycle), and its printable name.
 */
import type { SslMode } from './connect-config.ts';
import type { SshTunnelConfig } from './tunnel-config.ts';

/**
 * Where and how to connect. `host`/`port` are the database as the network (or the SSH server, when
 * `ssh` is set) reaches it; messages always name these, never a tunnel's local end.
 */
export interface SourceEndpoint {
  host: string;
  port: number;
  user: string;
  /**
   * From the config, a password file, the URL or PGPASSWORD; the password file is consulted only when the server asks.
   * */
  password: string | undefined;
  /** libpq's password file (PGPASSFILE or ~/.pgpass), looked up when `password` is undefined. */
  passfile?: string | undefined;
  /**
   * Where `password` came from, as an authentication failure's hint names it (`PGPASSWORD`, `the
   * source URL`...); undefined when `password` is (the password file is then the source).
   */
  passwordSource?: string | undefined;
  database: string;
  sslmode: SslMode;
  sslrootcert: string | undefined;
  sslcert: string | undefined;
  sslkey: string | undefined;
  connectTimeoutMs: number;
  /**
   * The server's real host name when `host`/`port` point at a local tunnel end: TLS verifies the
   * certificate against this name, and checks judge it (pooler host names).
   */
  tlsHost?: string;
  /** Reach the database through this SSH server (every connection, through one shared tunnel). */
  ssh?: SshTunnelConfig | undefined;
  /**
   * Liveness (docs/config.md#liveness): a query connection abandons a query that gets no byte back for
   * this long (postgres/link-watch.ts); absent: LIVENESS_DEFAULTS.
   */
  statementTimeoutMs?: number | undefined;
  /** Idle time before TCP keepalive probes, on every connection and the tunnel's; 0: off. */
  tcpKeepaliveMs?: number | undefined;
  /** The replication connection's receive timeout; absent: twice wal_sender_timeout (postgres/slot.ts). */
  receiveTimeoutMs?: number | undefined;
}

/** `user@host:port/database`: safe to print (never the password). */
export function describeEndpoint(endpoint: SourceEndpoint): string {
  const host = endpoint.host.includes(':') ? `[${endpoint.host}]` : endpoint.host;
  return `${endpoint.user}@${host}:${endpoint.port}/${endpoint.database}`;
}
