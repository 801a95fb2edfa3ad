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
  try {
    // Built once here so that a key that does not match its certificate, a wrong passphrase or a
    // file that is not PEM is a configuration error at start, not a connection error on every retry.
    tls.createSecureContext(settings);
  } catch (error) {
    throw new CdcError('CONFIG_INVALID', `sink.tls: the certificate files cannot be used (${tlsProblem(error)})`, {
      hint:
        'sink.tls.ca, cert and key must be PEM files, cert and key one pair ' +
        '(with keyPassphrase when the key is encrypted)',
      cause: error,
    });
  }
  return settings;
}

/** OpenSSL's reason, without its internal error number (`error:05800074:x509 certificate routines::`). */
function tlsProblem(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.replace(/^error:[0-9A-F]+:[^:]*::?/i, '');
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

/** The code checkReachable gives a fresh TLS connection the endpoint closed without a word. */
const CLOSED_AFTER_HANDSHAKE = 'PGCDC_CLOSED_AFTER_TLS_HANDSHAKE';

/**
 * The alerts an endpoint sends when it refuses pgcdc's client certificate (or its absence): TLS 1.3
 * sends them after the client saw its handshake complete, TLS 1.2 during the handshake.
 */
const CLIENT_CERT_ALERTS: Readonly<Record<string, string>> = {
  ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED: 'the endpoint requires a client certificate',
  ERR_SSL_TLSV1_ALERT_UNKNOWN_CA: 'the endpoint does not trust the client certificate (unknown CA)',
  ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE: 'the endpoint refused the client certificate',
  ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN: 'the endpoint refused the client certificate',
  ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED: 'the endpoint refused the client certificate as expired',
  ERR_SSL_TLSV1_ALERT_ACCESS_DENIED: 'the endpoint refused the client certificate (access denied)',
  ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE:
    'the endpoint refused the TLS handshake (a client certificate it requires, or no common protocol or cipher)',
  [CLOSED_AFTER_HANDSHAKE]:
    'the endpoint closed the connection right after the TLS handshake, before any request ' +
    '(it does not accept the client certificate, or requires one)',
};

/** The TLS verification failure `error` names, as a phrase, or undefined for any other error. */
export function certificateProblem(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? CERT_ERRORS[code] : undefined;
}

/** The endpoint's refusal of the client certificate that `error` reports, as a phrase, or undefined. */
export function clientCertificateProblem(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? CLIENT_CERT_ALERTS[code] : undefined;
}

/**
 * After a completed TLS handshake, how long the check listens for the endpoint refusing the client
 * certificate before it takes silence as acceptance (see checkReachable).
 */
const CLIENT_CERT_VERDICT_MS = 2000;

/**
 * The check at start: a TCP connection to the endpoint (and the TLS handshake, verified, for
 * https), closed again. A host that does not resolve, a certificate that does not verify or a
 * client certificate the endpoint refuses is a wrong setting (CONNECT_FAILED, exit 2); anything
 * else (refused, unreachable, no answer) is SINK_FAILED and retryable: pgcdc starts again with a
 * backoff until retry.giveUpAfterMs, then stops with one line. Later connection errors are retried
 * by the sink itself.
 *
 * With TLS 1.3 the client's handshake completes before the server has checked the client's
 * certificate, so a refusal comes afterwards: as an alert (OpenSSL, Go), or as the connection
 * closed without a word (Node's https server). So after `secureConnect` the check listens on: a
 * TLS 1.3 session ticket means the server accepted the client's Finished and certificate; an alert
 * or the fresh connection closed before any request means it refused them; silence for
 * CLIENT_CERT_VERDICT_MS (a server that sends no tickets, or TLS 1.2, where the handshake itself
 * carries a refusal) is acceptance. (An endpoint that answers a refused certificate with an HTTP
 * status, as nginx does with 400, is seen at the first request: a final status.)
 */
export function checkReachable(endpoint: Endpoint, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const settings = { host: endpoint.host, port: endpoint.port };
    let settled = false;
    const settle = (error?: NodeJS.ErrnoException): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (error === undefined) resolve();
      else reject(connectError(endpoint, error));
    };
    const socket = endpoint.https
      ? tls.connect({
          ...endpoint.tls,
          ...settings,
          // SNI with the host name; an IP address may not be sent as one (RFC 6066).
          ...(net.isIP(endpoint.host) === 0 ? { servername: endpoint.host } : {}),
        })
      : net.connect(settings);
    let timer = setTimeout(() => settle(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })), timeoutMs);
    socket.on('error', (error: NodeJS.ErrnoException) => settle(error));
    if (!(socket instanceof tls.TLSSocket)) {
      socket.once('connect', () => settle());
      return;
    }
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      timer = setTimeout(() => settle(), CLIENT_CERT_VERDICT_MS);
      // In TLS 1.2 a ticket comes inside the handshake, before the server's own verdict.
      if (socket.getProtocol() === 'TLSv1.3') socket.once('session', () => settle());
      socket.once('close', () =>
        settle(Object.assign(new Error('closed after the handshake'), { code: CLOSED_AFTER_HANDSHAKE })),
      );
      // Reads on, so that an alert or the close after the handshake is seen.
      socket.resume();
    });
  });
}
function connectError(endpoint: Endpoint, error: NodeJS.ErrnoException): CdcError {
  const doing = `connecting to the HTTP endpoint ${endpoint.origin}`;
  const refused = clientCertificateProblem(error);
  if (refused !== undefined)
    return new CdcError('CONNECT_FAILED', `${doing}: TLS handshake refused: ${refused}`, {
      hint: 'set sink.tls.cert and sink.tls.key to a client certificate signed by a CA the endpoint trusts',
      cause: error,
    });
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
