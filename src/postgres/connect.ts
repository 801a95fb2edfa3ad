/**
 * Connection settings for the source database: from the config (URL and fields) and the usual PG*
 * environment variables, resolved once into a `SourceEndpoint`. Every connection pgcdc opens gets
 * the same session settings, so value text is identical on every server.
 *
 * Secrets: the password lives only in `SourceEndpoint.password` and in pg's client config. Log
 * and error text is built from `describeEndpoint()`, which never includes it.
 */
import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import pg from 'pg';
import type { Config, SslMode } from '../config.ts';
import { SSL_MODES } from '../config.ts';
import { CdcError } from '../errors.ts';

/** Session settings that make every output function print the same text on every server. */
export const SESSION_OPTIONS = '-c DateStyle=ISO -c TimeZone=UTC -c IntervalStyle=iso_8601 -c extra_float_digits=3 -c bytea_output=hex -c lc_monetary=C';

export interface SourceEndpoint {
  host: string;
  port: number;
  user: string;
  password: string | undefined;
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
}

function parseUrl(url: string): Partial<SourceEndpoint> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    // Never echo the URL: it may hold a password.
    throw new CdcError('CONFIG_INVALID', 'source URL is malformed', {
      hint: 'use postgres://user@host:5432/database (put the password in PGPASSWORD or ~/.pgpass)',
    });
  }
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') {
    throw new CdcError('CONFIG_INVALID', `source URL scheme must be postgres:// or postgresql://, not ${parsed.protocol}//`);
  }
  const out: Partial<SourceEndpoint> = {};
  if (parsed.hostname) out.host = parsed.hostname.replace(/^\[|\]$/g, '');
  if (parsed.port) out.port = Number(parsed.port);
  if (parsed.username) out.user = decodeURIComponent(parsed.username);
  if (parsed.password) out.password = decodeURIComponent(parsed.password);
  const database = decodeURIComponent(parsed.pathname.replace(/^\//, ''));
  if (database) out.database = database;
  const sslmode = parsed.searchParams.get('sslmode');
  if (sslmode !== null) {
    if (!(SSL_MODES as readonly string[]).includes(sslmode)) {
      throw new CdcError('CONFIG_INVALID', `source URL sslmode=${sslmode} is not one of ${SSL_MODES.join(', ')}`);
    }
    out.sslmode = sslmode as SslMode;
  }
  for (const key of ['sslrootcert', 'sslcert', 'sslkey'] as const) {
    const value = parsed.searchParams.get(key);
    if (value !== null) out[key] = value;
  }
  return out;
}

function envPort(env: NodeJS.ProcessEnv): number | undefined {
  if (env.PGPORT === undefined || env.PGPORT === '') return undefined;
  const port = Number(env.PGPORT);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new CdcError('CONFIG_INVALID', `PGPORT=${env.PGPORT} is not a port number`);
  }
  return port;
}

/** Resolves the source endpoint: config fields > URL > PG* environment > libpq defaults. */
export function resolveEndpoint(source: Config['source'], env: NodeJS.ProcessEnv = process.env): SourceEndpoint {
  const fromUrl = source.url ? parseUrl(source.url) : {};
  const envSslmode = env.PGSSLMODE;
  if (envSslmode !== undefined && !(SSL_MODES as readonly string[]).includes(envSslmode)) {
    throw new CdcError('CONFIG_INVALID', `PGSSLMODE=${envSslmode} is not one of ${SSL_MODES.join(', ')}`);
  }
  const user = source.user ?? fromUrl.user ?? env.PGUSER ?? env.USER ?? 'postgres';
  return {
    host: source.host ?? fromUrl.host ?? env.PGHOST ?? 'localhost',
    port: source.port ?? fromUrl.port ?? envPort(env) ?? 5432,
    user,
    password: source.password ?? fromUrl.password ?? env.PGPASSWORD,
    database: source.database ?? fromUrl.database ?? env.PGDATABASE ?? user,
    sslmode: source.sslmode ?? fromUrl.sslmode ?? (envSslmode as SslMode | undefined) ?? 'prefer',
    sslrootcert: source.sslrootcert ?? fromUrl.sslrootcert ?? env.PGSSLROOTCERT,
    sslcert: source.sslcert ?? fromUrl.sslcert ?? env.PGSSLCERT,
    sslkey: source.sslkey ?? fromUrl.sslkey ?? env.PGSSLKEY,
    connectTimeoutMs: source.connectTimeoutMs,
  };
}

/** `user@host:port/database`: safe to print (never the password). */
export function describeEndpoint(endpoint: SourceEndpoint): string {
  const host = endpoint.host.includes(':') ? `[${endpoint.host}]` : endpoint.host;
  return `${endpoint.user}@${host}:${endpoint.port}/${endpoint.database}`;
}

/** TLS options for one attempt; `false` means plain TCP. */
function tlsFor(endpoint: SourceEndpoint, encrypted: boolean): false | ConnectionOptions {
  if (!encrypted) return false;
  const read = (file: string | undefined): Buffer | undefined => (file ? readFileSync(file) : undefined);
  const verify = endpoint.sslmode === 'verify-ca' || endpoint.sslmode === 'verify-full';
  const options: ConnectionOptions = { rejectUnauthorized: verify };
  const ca = read(endpoint.sslrootcert);
  if (ca) options.ca = ca;
  const cert = read(endpoint.sslcert);
  if (cert) options.cert = cert;
  const key = read(endpoint.sslkey);
  if (key) options.key = key;
  // verify-ca checks the chain but not the host name, as libpq does.
  if (endpoint.sslmode === 'verify-ca') options.checkServerIdentity = () => undefined;
  return options;
}

export type ConnectionKind = 'query' | 'replication';

function clientConfig(endpoint: SourceEndpoint, kind: ConnectionKind, encrypted: boolean, applicationName: string): pg.ClientConfig {
  const config: pg.ClientConfig = {
    host: endpoint.host,
    port: endpoint.port,
    user: endpoint.user,
    database: endpoint.database,
    ssl: tlsFor(endpoint, encrypted),
    options: SESSION_OPTIONS,
    application_name: applicationName,
    connectionTimeoutMillis: endpoint.connectTimeoutMs,
    keepAlive: true,
  };
  if (endpoint.password !== undefined) config.password = endpoint.password;
  if (kind === 'replication') {
    // pg types `replication` loosely; it sends replication=database in the startup packet.
    (config as pg.ClientConfig & { replication: string }).replication = 'database';
  }
  return config;
}

/** Turns a connection failure into one clear line, without secrets. */
export function connectError(endpoint: SourceEndpoint, cause: unknown): CdcError {
  const where = describeEndpoint(endpoint);
  const err = cause as { code?: string; message?: string };
  const message = err.message ?? String(cause);
  if (err.code === '28P01' || err.code === '28000') {
    return new CdcError('AUTH_FAILED', `authentication failed for ${where}`, {
      cause,
      hint: 'check the user and password (PGPASSWORD, ~/.pgpass) and pg_hba.conf',
    });
  }
  if (err.code === '3D000') {
    return new CdcError('CONNECT_FAILED', `database ${endpoint.database} does not exist on ${where}`, { cause });
  }
  if (err.code === 'ENOTFOUND' || err.code === 'EAI_AGAIN') {
    return new CdcError('CONNECT_FAILED', `cannot resolve host ${endpoint.host}`, { cause, hint: 'check the host name' });
  }
  if (err.code === 'ECONNREFUSED' || err.code === 'ETIMEDOUT' || err.code === 'EHOSTUNREACH' || /timeout/i.test(message)) {
    return new CdcError('CONNECT_FAILED', `cannot connect to ${where} (${err.code ?? 'timeout'})`, {
      cause,
      retryable: true,
      hint: 'check that PostgreSQL is running and reachable at that host and port',
    });
  }
  return new CdcError('CONNECT_FAILED', `cannot connect to ${where}: ${message.replaceAll(endpoint.password ?? '\0', '***')}`, {
    cause,
    retryable: true,
  });
}

/**
 * Opens a connection. With sslmode prefer/allow, a server without TLS gets a plain retry (libpq's
 * behaviour); with require and stricter, it fails.
 */
export async function openConnection(endpoint: SourceEndpoint, kind: ConnectionKind, applicationName = 'pgcdc'): Promise<pg.Client> {
  const attempts: boolean[] =
    endpoint.sslmode === 'disable' ? [false] : endpoint.sslmode === 'allow' ? [false, true] : endpoint.sslmode === 'prefer' ? [true, false] : [true];
  let lastError: unknown;
  for (const encrypted of attempts) {
    const client = new pg.Client(clientConfig(endpoint, kind, encrypted, applicationName));
    try {
      await client.connect();
      return client;
    } catch (error) {
      lastError = error;
      await client.end().catch(() => undefined);
      const message = error instanceof Error ? error.message : '';
      const tlsRefused = /does not support SSL/i.test(message);
      if (!tlsRefused && !(endpoint.sslmode === 'allow' && /pg_hba|SSL/i.test(message))) break;
    }
  }
  throw connectError(endpoint, lastError);
}
