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
import { existsSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { homedir } from 'node:os';
import path from 'node:path';
import { checkServerIdentity, type ConnectionOptions } from 'node:tls';
import pg from 'pg';
import type { Config, SslMode } from '../config.ts';
import { SSL_MODES } from '../config.ts';
import { CdcError } from '../core/errors.ts';
import { isConnectionLoss, isTransientSqlState, sqlStateOf } from '../core/error-policy.ts';
import { passfilePath, passwordFromPassfile, readSecretFile } from './password.ts';
import { leaseTunnel, type SshTunnelConfig } from './tunnel.ts';

/** Session settings that make every output function print the same text on every server. */
export const SESSION_OPTIONS =
  '-c DateStyle=ISO -c TimeZone=UTC -c IntervalStyle=iso_8601 -c extra_float_digits=3 -c bytea_output=hex -c ' +
  'lc_monetary=C';

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
export function resolveEndpoint(source: Config['source'], env: NodeJS.ProcessEnv = process.env): SourceEndpoint {
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
  };
}

/** `user@host:port/database`: safe to print (never the password). */
export function describeEndpoint(endpoint: SourceEndpoint): string {
  const host = endpoint.host.includes(':') ? `[${endpoint.host}]` : endpoint.host;
  return `${endpoint.user}@${host}:${endpoint.port}/${endpoint.database}`;
}

/** libpq's default file for `name` under ~/.postgresql, when it exists (root.crt, postgresql.crt, postgresql.key). */
function defaultPgFile(name: string, env: NodeJS.ProcessEnv): string | undefined {
  const home = env.HOME ?? homedir();
  const file = path.join(home, '.postgresql', name);
  return existsSync(file) ? file : undefined;
}

/** What one TLS attempt verifies, decided as libpq decides it. */
export interface TlsPolicy {
  /** Check the chain against `ca` (or the system roots for sslrootcert=system). */
  verifyChain: boolean;
  /** Check the host name (`tlsHost` when set, else `host`) against the certificate. */
  verifyHost: boolean;
  /** The root certificate file in use, if any (explicit, PGSSLROOTCERT or ~/.postgresql/root.crt). */
  rootCert: string | undefined;
}

/**
 * libpq's rules: verify-full checks chain and host name; verify-ca the chain only; require checks
 * nothing unless a root certificate file is present, in which case it behaves as verify-ca;
 * prefer and allow never verify. sslrootcert=system (the system's trusted roots) needs verify-full.
 */
export function tlsPolicy(endpoint: SourceEndpoint, env: NodeJS.ProcessEnv = process.env): TlsPolicy {
  const mode = endpoint.sslmode;
  const rootCert = endpoint.sslrootcert ?? defaultPgFile('root.crt', env);
  if (rootCert === 'system' && mode !== 'verify-full' && mode !== 'disable') {
    throw new CdcError('CONFIG_INVALID', `sslmode=${mode} may not be used with sslrootcert=system`, {
      hint: 'use sslmode=verify-full with sslrootcert=system',
    });
  }
  if ((mode === 'verify-ca' || mode === 'verify-full') && rootCert === undefined) {
    throw new CdcError(
      'CONFIG_INVALID',
      `sslmode=${mode} needs the server's root certificate, and none is configured (~/.postgresql/root.crt ` +
        `does not exist)`,
      {
        hint:
          'set sslrootcert=<CA file> (or sslrootcert=system for the system trusted roots), or use ' +
          'sslmode=require to encrypt without verifying',
      },
    );
  }
  if (mode === 'verify-full') return { verifyChain: true, verifyHost: true, rootCert };
  if (mode === 'verify-ca' || (mode === 'require' && rootCert !== undefined))
    return { verifyChain: true, verifyHost: false, rootCert };
  return { verifyChain: false, verifyHost: false, rootCert: undefined };
}

/** TLS options for one attempt; `false` means plain TCP. */
function tlsFor(endpoint: SourceEndpoint, encrypted: boolean): false | ConnectionOptions {
  if (!encrypted) return false;
  const policy = tlsPolicy(endpoint);
  const read = (file: string | undefined, what: string): Buffer | undefined => {
    if (file === undefined) return undefined;
    try {
      return readFileSync(file);
    } catch (cause) {
      throw new CdcError('CONFIG_INVALID', `cannot read ${what} ${file}`, {
        cause,
        hint: `check ${what} (and its permissions)`,
      });
    }
  };
  const options: ConnectionOptions = { rejectUnauthorized: policy.verifyChain };
  if (policy.verifyChain && policy.rootCert !== 'system') options.ca = read(policy.rootCert, 'sslrootcert');
  const sslcert = endpoint.sslcert ?? defaultPgFile('postgresql.crt', process.env);
  const sslkey = endpoint.sslkey ?? defaultPgFile('postgresql.key', process.env);
  if (sslcert !== undefined && sslkey !== undefined) {
    options.cert = read(sslcert, 'sslcert');
    options.key = read(sslkey, 'sslkey');
  } else if (endpoint.sslcert !== undefined || endpoint.sslkey !== undefined) {
    throw new CdcError(
      'CONFIG_INVALID',
      `${endpoint.sslcert === undefined ? 'sslkey' : 'sslcert'} is set without ` +
        `${endpoint.sslcert === undefined ? 'sslcert' : 'sslkey'}`,
      {
        hint: 'a client certificate needs both sslcert and sslkey',
      },
    );
  }
  const name = endpoint.tlsHost ?? endpoint.host;
  if (endpoint.tlsHost !== undefined && isIP(endpoint.tlsHost) === 0) options.servername = endpoint.tlsHost;
  // Node checks the host name whenever the chain is verified; libpq only does for verify-full.
  options.checkServerIdentity = policy.verifyHost ? (_host, cert) => checkServerIdentity(name, cert) : () => undefined;
  return options;
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
): pg.ClientConfig {
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
    password: passwordFor(shown),
  };
  if (kind === 'replication') {
    // pg types `replication` loosely; it sends replication=database in the startup packet.
    (config as pg.ClientConfig & { replication: string }).replication = 'database';
  }
  return config;
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

/** Node's certificate-verification error codes, as a phrase a user can act on. */
const CERT_ERRORS: Record<string, string> = {
  ERR_TLS_CERT_ALTNAME_INVALID: 'the server certificate is not valid for this host name',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'the server certificate is self-signed and not trusted',
  SELF_SIGNED_CERT_IN_CHAIN: 'the server certificate chain ends in a root that is not in sslrootcert',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'the server certificate is not signed by a CA in sslrootcert',
  UNABLE_TO_GET_ISSUER_CERT: 'the server certificate is not signed by a CA in sslrootcert',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'the server certificate is not signed by a CA in sslrootcert',
  CERT_HAS_EXPIRED: 'the server certificate has expired',
  CERT_NOT_YET_VALID: 'the server certificate is not valid yet',
};

function tlsError(endpoint: SourceEndpoint, cause: unknown): CdcError | undefined {
  const err = cause as { code?: string; message?: string; reason?: string };
  const where = describeEndpoint(endpoint);
  const phrase = err.code === undefined ? undefined : CERT_ERRORS[err.code];
  if (phrase !== undefined) {
    const name = endpoint.tlsHost ?? endpoint.host;
    const detail =
      err.code === 'ERR_TLS_CERT_ALTNAME_INVALID'
        ? ` (${name}; ${(err.reason ?? '').replace(/^.*(?:altnames|list): /, 'it is for ')})`
        : '';
    return new CdcError(
      'CONNECT_FAILED',
      `TLS verification failed for ${where} (sslmode=${endpoint.sslmode}): ${phrase}${detail}`,
      {
        cause,
        hint:
          err.code === 'ERR_TLS_CERT_ALTNAME_INVALID'
            ? 'connect with a host name the certificate names (or fix the certificate); sslmode=verify-ca ' +
              'skips the host name check'
            : 'point sslrootcert at the CA that signed the server certificate (your provider publishes it)',
      },
    );
  }
  if (/does not support SSL/i.test(err.message ?? '')) {
    return new CdcError(
      'CONNECT_FAILED',
      `${where} does not accept TLS connections, but ` +
        `sslmode=${endpoint.sslmode} requires TLS (require is pgcdc's default)`,
      {
        cause,
        hint:
          'enable TLS on the server (ssl = on), or, for a local server you trust, add sslmode=disable to ' +
          'the URL (or set PGSSLMODE=disable)',
      },
    );
  }
  if (typeof err.code === 'string' && /^ERR_SSL_|^ERR_TLS_/.test(err.code)) {
    return new CdcError('CONNECT_FAILED', `TLS handshake with ${where} failed (${err.code})`, {
      cause,
      hint: 'check the server TLS configuration and sslcert/sslkey',
    });
  }
  return undefined;
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

/** A TLS-level failure: no TLS on the server, or a handshake that failed. */
function isTlsFailure(error: unknown): boolean {
  const err = error as { code?: string; message?: string };
  return (
    /does not support SSL|error establishing an SSL/i.test(err.message ?? '') ||
    (typeof err.code === 'string' && (/^ERR_SSL_|^ERR_TLS_/.test(err.code) || err.code in CERT_ERRORS))
  );
}

/**
 * Opens a connection, trying TLS as libpq does: disable plain only; allow plain, then TLS if the
 * server refused; prefer TLS, then plain if the server has no TLS, the handshake failed or the
 * server refused; require, verify-ca and verify-full TLS only (see tlsPolicy for what they verify).
 */
export async function openConnection(
  endpoint: SourceEndpoint,
  kind: ConnectionKind,
  applicationName = 'pgcdc',
): Promise<pg.Client> {
  if (endpoint.ssh === undefined) return connect(endpoint, endpoint, kind, applicationName);
  const lease = await leaseTunnel(endpoint.ssh, endpoint);
  try {
    const client = await connect(lease.tunnel.endpoint, endpoint, kind, applicationName);
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
    const client = new pg.Client(clientConfig(endpoint, kind, encrypted, applicationName, shown));
    try {
      await client.connect();
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
