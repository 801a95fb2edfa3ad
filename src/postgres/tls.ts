/**
 * TLS for connections to the source, decided as libpq decides it (sslmode, sslrootcert, client
 * certificates), and TLS failures as one line a user can act on.
 */
import { existsSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { homedir } from 'node:os';
import path from 'node:path';
import { checkServerIdentity, type ConnectionOptions } from 'node:tls';
import { CdcError } from '../core/errors.ts';
import { describeEndpoint, type SourceEndpoint } from './endpoint.ts';

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
export function tlsFor(endpoint: SourceEndpoint, encrypted: boolean): false | ConnectionOptions {
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

export function tlsError(endpoint: SourceEndpoint, cause: unknown): CdcError | undefined {
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

/** A TLS-level failure: no TLS on the server, or a handshake that failed. */
export function isTlsFailure(error: unknown): boolean {
  const err = error as { code?: string; message?: string };
  return (
    /does not support SSL|error establishing an SSL/i.test(err.message ?? '') ||
    (typeof err.code === 'string' && (/^ERR_SSL_|^ERR_TLS_/.test(err.code) || err.code in CERT_ERRORS))
  );
}
