/**
 * The endpoint as the sink uses it: where requests go, the keep-alive agent, the configured headers
 * with their secrets read, the TLS settings, and the connection check at start. Messages name the
 * endpoint by its origin (scheme://host:port) only: a webhook URL's path or query often holds a token.
 */
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { CdcError } from '../../core/errors.ts';
import { readPem, readSecret } from '../secrets.ts';
import { laneCount, type HttpOptions } from './options.ts';

export interface Endpoint {
  readonly url: URL;
  /** scheme://host:port, for messages. */
  readonly origin: string;
  readonly https: boolean;
  readonly host: string;
  readonly port: number;
  readonly agent: http.Agent;
  /** The configured headers, secrets read. */
  readonly headers: Readonly<Record<string, string>>;
  /** The signing secret, when configured. */
  readonly secret: Buffer | undefined;
  /** Every secret value, to be blanked out of anything the endpoint sends back before it is printed. */
  readonly secrets: readonly string[];
  readonly tls: tls.ConnectionOptions | undefined;
}

function tlsSettings(options: HttpOptions, secrets: string[]): tls.ConnectionOptions {
  const settings: tls.ConnectionOptions = { rejectUnauthorized: true };
  const configured = options.tls;
  if (configured === undefined) return settings;
  if (configured.ca !== undefined) settings.ca = readPem(configured.ca, 'sink.tls.ca');
  if (configured.cert !== undefined) settings.cert = readPem(configured.cert, 'sink.tls.cert');
  if (configured.key !== undefined) settings.key = readPem(configured.key, 'sink.tls.key');
  if (configured.keyPassphrase !== undefined) {
    settings.passphrase = readSecret(configured.keyPassphrase, 'sink.tls.keyPassphrase', true);
    secrets.push(settings.passphrase);
  }
  if (!configured.verifyHostname) settings.checkServerIdentity = () => undefined;
  return settings;
}

/** Reads the secrets and builds the agent. Throws CONFIG_INVALID for a secret or PEM file it cannot read. */
export function openEndpoint(options: HttpOptions): Endpoint {
  const url = new URL(options.url);
  const isHttps = url.protocol === 'https:';
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const port = url.port === '' ? (isHttps ? 443 : 80) : Number(url.port);
  const secrets: string[] = [];
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(options.headers)) {
    if (typeof value === 'string') headers[name] = value;
    else {
      headers[name] = readSecret(value, `sink.headers.${name}`, true);
      secrets.push(headers[name]);
    }
  }
  let secret: Buffer | undefined;
  if (options.secret !== undefined) {
    const text = readSecret(options.secret, 'sink.secret', true);
    secrets.push(text);
    secret = Buffer.from(text, 'utf8');
  }
  const tlsOptions = isHttps ? tlsSettings(options, secrets) : undefined;
  // One socket per request in flight, kept open between requests.
  const agentOptions = { keepAlive: true, maxSockets: laneCount(options), maxFreeSockets: laneCount(options) };
  const agent = isHttps ? new https.Agent({ ...agentOptions, ...tlsOptions }) : new http.Agent(agentOptions);
  return {
    url,
    origin: `${url.protocol}//${url.host}`,
    https: isHttps,
    host,
    port,
    agent,
    headers,
    secret,
    secrets,
    tls: tlsOptions,
  };
}

/** Node's certificate-verification error codes, as a phrase a user can act on. */
const CERT_ERRORS: Readonly<Record<string, string>> = {
  ERR_TLS_CERT_ALTNAME_INVALID: 'the certificate is not valid for the host name in sink.url',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'the certificate is self-signed and not trusted',
  SELF_SIGNED_CERT_IN_CHAIN: 'the certificate chain ends in a root that is not trusted (sink.tls.ca)',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'the certificate is not signed by a trusted CA (sink.tls.ca)',
  UNABLE_TO_GET_ISSUER_CERT: 'the certificate is not signed by a trusted CA (sink.tls.ca)',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'the certificate is not signed by a trusted CA (sink.tls.ca)',
  CERT_HAS_EXPIRED: 'the certificate has expired',
  CERT_NOT_YET_VALID: 'the certificate is not valid yet',
};

/** The TLS verification failure `error` names, as a phrase, or undefined for any other error. */
export function certificateProblem(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? CERT_ERRORS[code] : undefined;
}

/**
 * The check at start: a TCP connection to the endpoint (and the TLS handshake, verified, for
 * https), closed again. A host that does not resolve or a certificate that does not verify is a
 * wrong setting (CONNECT_FAILED, exit 2); anything else (refused, unreachable, no answer) is
 * SINK_FAILED and retryable: pgcdc starts again with a backoff until retry.giveUpAfterMs, then
 * stops with one line. Later connection errors are retried by the sink itself.
 */
export function checkReachable(endpoint: Endpoint, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const settings = { host: endpoint.host, port: endpoint.port };
    const socket = endpoint.https
      ? tls.connect({
          ...endpoint.tls,
          ...settings,
          // SNI with the host name; an IP address may not be sent as one (RFC 6066).
          ...(net.isIP(endpoint.host) === 0 ? { servername: endpoint.host } : {}),
        })
      : net.connect(settings);
    const timer = setTimeout(
      () => socket.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })),
      timeoutMs,
    );
    socket.once(endpoint.https ? 'secureConnect' : 'connect', () => {
      clearTimeout(timer);
      socket.destroy();
      resolve();
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      socket.destroy();
      reject(connectError(endpoint, error));
    });
  });
}

function connectError(endpoint: Endpoint, error: NodeJS.ErrnoException): CdcError {
  const doing = `connecting to the HTTP endpoint ${endpoint.origin}`;
  const certificate = certificateProblem(error);
  if (certificate !== undefined)
    return new CdcError('CONNECT_FAILED', `${doing}: TLS verification failed: ${certificate}`, {
      hint:
        error.code === 'ERR_TLS_CERT_ALTNAME_INVALID'
          ? 'use the host name the certificate names in sink.url (or fix the certificate)'
          : 'point sink.tls.ca at the CA that signed the endpoint certificate',
      cause: error,
    });
  if (error.code === 'ENOTFOUND')
    return new CdcError('CONNECT_FAILED', `${doing}: cannot resolve the host ${endpoint.host}`, {
      hint: 'check the host name in sink.url (--http-url)',
      cause: error,
    });
  const reason = error.code === 'ETIMEDOUT' ? 'no answer' : (error.code ?? error.message);
  return new CdcError('SINK_FAILED', `${doing}: ${reason}`, {
    retryable: true,
    hint: 'check that the endpoint is up and that sink.url (--http-url) names its host and port',
    cause: error,
  });
}

/** `text` with every secret value blanked out, for printing what an endpoint answered. */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) if (secret.length >= 4) out = out.split(secret).join('[redacted]');
  return out;
}
