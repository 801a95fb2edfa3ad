/**
 * Connection settings for the source database: from the config (URL and fields) and the usual PG*
 * environment variables, resolved once into a `SourceEndpoint`. Every connection pgcdc opens gets
 * the same session settings, so value text is identical on every server.
 *
 * Secrets: the password lives only in `SourceEndpoint.password` and in pg's client config. Log
 * and error text is built from `describeEndpoint()`, which never includes it.
 *
 * SSH: an endpoint with `ssh` settings is reached through one shared tunnel (tunnel.ts), opened by
 * the first connection and closed when the last one ends; callers just call `openConnection`.
 */
import pg from 'pg';
import { CdcError } from '../core/errors.ts';
import { isConnectionLoss, isTransientSqlState, sqlStateOf } from '../core/error-policy.ts';
import { LIVENESS_DEFAULTS, SSL_MODES, type SourceSettings, type SslMode } from './connect-config.ts';
import { describeEndpoint, type SourceEndpoint } from './endpoint.ts';
import { passfilePath, passwordFromPassfile, readSecretFile } from './password.ts';
import { QueryWatch } from './link-watch.ts';
import { isTlsFailure, tlsError, tlsFor } from './tls.ts';
import { leaseTunnel } from './tunnel.ts';

export { describeEndpoint, type SourceEndpoint } from './endpoint.ts';

/** Session settings that make every output function print the same text on every server. */
export const SESSION_OPTIONS =
  '-c DateStyle=ISO -c TimeZone=UTC -c IntervalStyle=iso_8601 -c extra_float_digits=3 -c bytea_output=hex -c ' +
  'lc_monetary=C';

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
    throw new CdcError(
      'CONFIG_INVALID',
      `source URL scheme must be postgres:// or postgresql://, not ${parsed.protocol}//`,
    );
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
export function resolveEndpoint(source: SourceSettings, env: NodeJS.ProcessEnv = process.env): SourceEndpoint {
  const fromUrl = source.url ? parseUrl(source.url) : {};
  const envSslmode = env.PGSSLMODE;
  if (envSslmode !== undefined && !(SSL_MODES as readonly string[]).includes(envSslmode)) {
    throw new CdcError('CONFIG_INVALID', `PGSSLMODE=${envSslmode} is not one of ${SSL_MODES.join(', ')}`);
  }
  const user = source.user ?? fromUrl.user ?? env.PGUSER ?? env.USER ?? 'postgres';
  if (source.password !== undefined && source.passwordFile !== undefined) {
    throw new CdcError('CONFIG_INVALID', 'source.password and source.passwordFile are both set', {
      hint: 'keep one of them (prefer passwordFile or PGPASSWORD)',
    });
  }
  const fromFile =
    source.passwordFile === undefined ? undefined : readSecretFile(source.passwordFile, 'the password file');
  const fromEnv = env.PGPASSWORD === '' ? undefined : env.PGPASSWORD;
  // The same order as `password` below.
  const passwordSource =
    source.password !== undefined
      ? 'source.password in the config file'
      : fromFile !== undefined
        ? `the password file ${source.passwordFile ?? ''} (--password-file or source.passwordFile)`
        : fromUrl.password !== undefined
          ? 'the source URL'
          : fromEnv !== undefined
            ? 'PGPASSWORD'
            : undefined;
  return {
    host: source.host ?? fromUrl.host ?? env.PGHOST ?? 'localhost',
    port: source.port ?? fromUrl.port ?? envPort(env) ?? 5432,
    user,
    password: source.password ?? fromFile ?? fromUrl.password ?? fromEnv,
    passfile: passfilePath(env),
    passwordSource,
    database: source.database ?? fromUrl.database ?? env.PGDATABASE ?? user,
    // require, not libpq's prefer: the vendors' guides all ask for TLS, and prefer silently falls
    // back to clear text. A local server without TLS needs an explicit sslmode=disable.
    sslmode: source.sslmode ?? fromUrl.sslmode ?? (envSslmode as SslMode | undefined) ?? 'require',
    sslrootcert: source.sslrootcert ?? fromUrl.sslrootcert ?? env.PGSSLROOTCERT,
    sslcert: source.sslcert ?? fromUrl.sslcert ?? env.PGSSLCERT,
    sslkey: source.sslkey ?? fromUrl.sslkey ?? env.PGSSLKEY,
    connectTimeoutMs: source.connectTimeoutMs,
    ssh: source.ssh,
    statementTimeoutMs: source.statementTimeoutMs,
    tcpKeepaliveMs: source.tcpKeepaliveMs,
    receiveTimeoutMs: source.receiveTimeoutMs,
  };
}

export type ConnectionKind = 'query' | 'replication';

/**
 * The password when the server asks for one: the endpoint's, else the password file's line for the
 * real server (`shown`: never the tunnel's local end). Asked lazily, as libpq does, so a trust or
 * certificate login never reads the file. Handing pg a function also keeps pg's own (deprecated)
 * pgpass lookup, which would match the tunnel's address, out of the way.
 */
function passwordFor(shown: SourceEndpoint): () => Promise<string> {
  return () => {
    if (shown.password !== undefined) return Promise.resolve(shown.password);
    const found = passwordFromPassfile(
      { host: shown.host, port: shown.port, database: shown.database, user: shown.user },
      shown.passfile === undefined ? process.env : { ...process.env, PGPASSFILE: shown.passfile },
    );
    if (found.password !== undefined) return Promise.resolve(found.password);
    return Promise.reject(
      new CdcError(
        'AUTH_FAILED',
        `${describeEndpoint(shown)} asks for a password and none is configured (${found.reason})`,
        {
          hint:
            'set PGPASSWORD, pass --password-file (source.passwordFile), or add a ' +
            'host:port:database:user:password line to ~/.pgpass (mode 0600)',
        },
      ),
    );
  };
}

function clientConfig(
  endpoint: SourceEndpoint,
  kind: ConnectionKind,
  encrypted: boolean,
  applicationName: string,
  shown: SourceEndpoint,
  statementTimeoutMs: number,
): pg.ClientConfig {
  const keepaliveMs = endpoint.tcpKeepaliveMs ?? LIVENESS_DEFAULTS.tcpKeepaliveMs;
  const config: pg.ClientConfig = {
    host: endpoint.host,
    port: endpoint.port,
    user: endpoint.user,
    database: endpoint.database,
    ssl: tlsFor(endpoint, encrypted),
    // The server ends a statement a little after the client gave up on it (QueryWatch), so one
    // abandoned on a dead link does not run on. Never on the walsender: START_REPLICATION lasts.
    options:
      kind === 'replication'
        ? SESSION_OPTIONS
        : `${SESSION_OPTIONS} -c statement_timeout=${serverStatementTimeoutMs(statementTimeoutMs)}`,
    application_name: applicationName,
    connectionTimeoutMillis: endpoint.connectTimeoutMs,
    keepAlive: keepaliveMs > 0,
    keepAliveInitialDelayMillis: keepaliveMs,
    password: passwordFor(shown),
  };
  if (kind === 'replication') {
    // pg types `replication` loosely; it sends replication=database in the startup packet.
    (config as pg.ClientConfig & { replication: string }).replication = 'database';
  }
  return config;
}

/** The server-side statement_timeout for a client-side limit: a little longer, so the client's verdict comes first. */
export function serverStatementTimeoutMs(clientLimitMs: number): number {
  return clientLimitMs + Math.max(1000, Math.round(clientLimitMs / 10));
}

/** Turns a connection failure into one clear line, without secrets. */
export function connectError(endpoint: SourceEndpoint, cause: unknown): CdcError {
  if (cause instanceof CdcError) return cause;
  const tls = tlsError(endpoint, cause);
  if (tls) return tls;
  const where = describeEndpoint(endpoint);
  const err = cause as { code?: string; message?: string };
  const message = err.message ?? String(cause);
  if (err.code === '28P01') {
    // Name the one source the password came from: the user fixes that one, not another.
    const origin =
      endpoint.password !== undefined
        ? (endpoint.passwordSource ?? 'the connection settings')
        : `the line of ` +
          (`${endpoint.passfile ?? '~/.pgpass'} matching ` +
            `${endpoint.host}:${endpoint.port}:${endpoint.database}:${endpoint.user}`);
    return new CdcError('AUTH_FAILED', `authentication failed for ${where}`, {
      cause,
      hint: `the password used came from ${origin}: check it and the user name`,
    });
  }
  if (err.code === '28000') {
    // No pg_hba.conf line admits this login, or the role may not log in: the server says which
    // (its message names the user, database and address, never a password).
    return new CdcError('AUTH_FAILED', `authentication failed for ${where}: ${message}`, {
      cause,
      hint:
        'add a pg_hba.conf line for this user, database and address (then reload PostgreSQL), or let the ' +
        'role log in',
    });
  }
  if (err.code === '3D000') {
    return new CdcError('CONNECT_FAILED', `database ${endpoint.database} does not exist on ${where}`, { cause });
  }
  if (err.code === 'ENOTFOUND') {
    return new CdcError('CONNECT_FAILED', `cannot resolve host ${endpoint.host}`, {
      cause,
      hint: 'check the host name',
    });
  }
  // Refused, reset, timed out, closed during start-up, or the server starting up / shutting down
  // (57P03): the server is not there yet. Retried in the process (core/error-policy.ts).
  if (isConnectionLoss(cause) || /timeout/i.test(message) || isTransientSqlState(sqlStateOf(cause) ?? '')) {
    // The errno, not Node's message: that names the address dialled, a tunnel's local end with SSH.
    const reason =
      err.code === 'EAI_AGAIN'
        ? 'temporary DNS failure'
        : err.code !== undefined && sqlStateOf(cause) === undefined
          ? err.code
          : secretFree(endpoint, message);
    return new CdcError('CONNECTION_LOST', `cannot connect to ${where} (${reason})`, {
      cause,
      hint: 'check that PostgreSQL is running and reachable at that host and port',
    });
  }
  return new CdcError('CONNECT_FAILED', `cannot connect to ${where}: ${secretFree(endpoint, message)}`, { cause });
}

function secretFree(endpoint: SourceEndpoint, message: string): string {
  return endpoint.password === undefined || endpoint.password === ''
    ? message
    : message.replaceAll(endpoint.password, '***');
}

/** A server's own refusal (an ErrorResponse during start-up): pg gives these a severity. */
function isServerError(error: unknown): boolean {
  return (
    typeof error === 'object' &&
    error !== null &&
    'severity' in error &&
    typeof (error as { code?: unknown }).code === 'string'
  );
}

/** Per-connection liveness choices (docs/config.md#liveness). */
export interface LinkOptions {
  /** Overrides the endpoint's statementTimeoutMs: snapshot chunk reads get their own, larger limit. */
  readonly statementTimeoutMs?: number | undefined;
}

/**
 * Opens a connection, trying TLS as libpq does: disable plain only; allow plain, then TLS if the
 * server refused; prefer TLS, then plain if the server has no TLS, the handshake failed or the
 * server refused; require, verify-ca and verify-full TLS only (see tlsPolicy for what they verify).
 * Every connection has TCP keepalives and a QueryWatch (postgres/link-watch.ts); a query connection
 * also a server-side statement_timeout.
 */
export async function openConnection(
  endpoint: SourceEndpoint,
  kind: ConnectionKind,
  applicationName = 'pgcdc',
  link: LinkOptions = {},
): Promise<pg.Client> {
  const limitMs = link.statementTimeoutMs ?? endpoint.statementTimeoutMs ?? LIVENESS_DEFAULTS.statementTimeoutMs;
  if (endpoint.ssh === undefined) return connect(endpoint, endpoint, kind, applicationName, limitMs);
  const lease = await leaseTunnel(endpoint.ssh, endpoint);
  try {
    const client = await connect(lease.tunnel.endpoint, endpoint, kind, applicationName, limitMs);
    // However the connection ends (end(), a server error, a lost network), this use of the tunnel ends.
    client.once('end', () => lease.release());
    return client;
  } catch (error) {
    lease.release();
    throw error;
  }
}

/** `dial` is where the socket goes (the tunnel's local end, or the server); `shown` names the server in messages. */
async function connect(
  dial: SourceEndpoint,
  shown: SourceEndpoint,
  kind: ConnectionKind,
  applicationName: string,
  limitMs: number,
): Promise<pg.Client> {
  const endpoint = dial;
  const attempts: boolean[] =
    endpoint.sslmode === 'disable'
      ? [false]
      : endpoint.sslmode === 'allow'
        ? [false, true]
        : endpoint.sslmode === 'prefer'
          ? [true, false]
          : [true];
  const errors: unknown[] = [];
  for (const [index, encrypted] of attempts.entries()) {
    const client = new pg.Client(clientConfig(endpoint, kind, encrypted, applicationName, shown, limitMs));
    try {
      await client.connect();
      QueryWatch.attach(client, `the ${applicationName} connection to ${describeEndpoint(shown)}`, limitMs);
      return client;
    } catch (error) {
      errors.push(error);
      await client.end().catch(() => undefined);
      const last = index === attempts.length - 1;
      if (last) break;
      // allow retries with TLS only when the server refused the plain connection; prefer falls
      // back to plain when TLS failed or the server refused the encrypted connection.
      const retry = encrypted ? isTlsFailure(error) || isServerError(error) : isServerError(error);
      if (!retry) break;
    }
  }
  // The error worth showing: the one that is not just "this attempt's encryption was refused".
  const meaningful =
    errors.find((e) => !isTlsFailure(e) && !/no encryption|SSL off|hostssl/i.test((e as Error).message ?? '')) ??
    errors[errors.length - 1];
  throw connectError(shown, meaningful);
}
