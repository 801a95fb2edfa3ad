/**
 * Connection settings for the official NATS client from the sink's options, and the translation of
 * the client's errors into pgcdc's: one line naming what failed and what to do, with `retryable`
 * saying whether the supervisor may try again (lifecycle/supervisor.ts). Server URLs are printed as
 * host:port only.
 */
import {
  connect,
  credsAuthenticator,
  nkeyAuthenticator,
  nkeys,
  type ConnectionOptions,
  type NatsConnection,
} from '@nats-io/transport-node';
import { CdcError } from '../../core/errors.ts';
import { readPem, readSecret, type SecretSource } from '../secrets.ts';
import type { NatsOptions } from './options.ts';

/** Where a secret comes from, for messages (never its value). */
function secretOrigin(source: SecretSource): string {
  return source.env !== undefined ? `the environment variable ${source.env}` : `${source.file as string}`;
}

/**
 * The NKey seed of sink.auth.nkeySeed, checked here: the client would otherwise fail to decode it on
 * every connection attempt, which pgcdc would retry as a transient fault instead of stopping.
 */
function nkeySeed(source: SecretSource): Uint8Array {
  const seed = new TextEncoder().encode(readSecret(source, 'sink.auth.nkeySeed').trim());
  checkSeed(seed, `sink.auth.nkeySeed: ${secretOrigin(source)} does not hold an NKey seed`);
  return seed;
}

function checkSeed(seed: Uint8Array, problem: string): void {
  try {
    nkeys.fromSeed(seed);
  } catch {
    // The decoder's message may quote characters of the seed: not repeated.
    throw new CdcError('CONFIG_INVALID', problem, {
      hint: 'put the NATS user seed (one line starting with SU, as nk -gen user or nsc write it) there',
    });
  }
}

/**
 * A credentials file's content, checked as the client parses it (a JWT block, then a seed block):
 * a file that does not parse fails at start, not on every connection attempt.
 */
function credentials(source: SecretSource): Uint8Array {
  // The client's parser wants a newline after the seed block's closing line; readSecret took it off.
  const text = `${readSecret(source, 'sink.auth.credentials')}\n`;
  const block = /\s*(?:(?:-{3,}[^\n]*-{3,}\n)(.+)(?:\n\s*-{3,}[^\n]*-{3,}\n))/g;
  const jwt = block.exec(text);
  const seed = block.exec(text);
  const problem = `sink.auth.credentials: ${secretOrigin(source)} is not a NATS credentials file`;
  if (jwt === null || seed === null)
    throw new CdcError('CONFIG_INVALID', `${problem} (a user JWT block, then a user NKEY seed block)`, {
      hint: 'point it at the .creds file nsc generate creds (or your NATS operator) made for the user',
    });
  checkSeed(new TextEncoder().encode((seed[1] ?? '').trim()), `${problem}: its seed block holds no NKey seed`);
  return new TextEncoder().encode(text);
}

/** `nats://user:pw@host:4222` -> `host:4222`, for messages. */
export function serverHosts(options: NatsOptions): string {
  return options.servers.map((url) => url.replace(/^[a-z]+:\/\//i, '').replace(/^.*@/, '')).join(', ');
}

/**
 * The client's options. No reconnection: a connection that drops fails the sink (retryable), and the
 * supervisor starts the capture again from the checkpoint with a new connection. A client that
 * reconnected by itself would send the publishes it buffered meanwhile after the ones lost with the
 * old connection, landing events after a gap.
 */
export function connectionOptions(options: NatsOptions): ConnectionOptions {
  const settings: ConnectionOptions = {
    servers: options.servers,
    name: options.name,
    reconnect: false,
    timeout: options.connectTimeoutMs,
    // Ping every 10 s: a server that stops answering (a half-open connection) is noticed.
    pingInterval: 10_000,
    maxPingOut: 2,
    noAsyncTraces: true,
  };
  const auth = options.auth;
  if (auth !== undefined) {
    if ('user' in auth) {
      settings.user = auth.user;
      settings.pass = readSecret(auth.password, 'sink.auth.password');
    } else if ('token' in auth) settings.token = readSecret(auth.token, 'sink.auth.token');
    else if ('nkeySeed' in auth) settings.authenticator = nkeyAuthenticator(nkeySeed(auth.nkeySeed));
    else settings.authenticator = credsAuthenticator(credentials(auth.credentials));
  }
  const tls = options.tls;
  if (tls !== undefined || options.servers.some((url) => url.startsWith('tls://'))) {
    // Node's TLS options pass through the client; the server's certificate is verified against the
    // host name unless verifyHostname is off.
    const tlsSettings: Record<string, unknown> = {};
    if (tls?.ca !== undefined) tlsSettings.ca = readPem(tls.ca, 'sink.tls.ca');
    if (tls?.cert !== undefined) tlsSettings.cert = readPem(tls.cert, 'sink.tls.cert');
    if (tls?.key !== undefined) tlsSettings.key = readPem(tls.key, 'sink.tls.key');
    if (tls !== undefined && !tls.verifyHostname) tlsSettings.checkServerIdentity = () => undefined;
    settings.tls = tlsSettings;
  }
  return settings;
}

/** Connects, mapping a failure to a CdcError. */
export async function connectNats(options: NatsOptions): Promise<NatsConnection> {
  const settings = connectionOptions(options);
  try {
    return await connect(settings);
  } catch (error) {
    throw natsError(error, 'connecting to NATS', options);
  }
}

/** `error` and its causes. */
function* causes(error: unknown): Generator<Record<string, unknown>> {
  let current = error;
  for (let depth = 0; depth < 8 && current !== null && typeof current === 'object'; depth++) {
    const record = current as Record<string, unknown>;
    yield record;
    current = record.cause;
  }
}

function deepestMessage(error: unknown): string {
  let message = error instanceof Error ? error.message : String(error);
  for (const record of causes(error))
    if (typeof record.message === 'string' && record.message !== '') message = record.message;
  return message.replace(/\.$/, '');
}

/** Node's certificate-verification error codes, as a phrase a user can act on. */
const CERT_ERRORS: Readonly<Record<string, string>> = {
  ERR_TLS_CERT_ALTNAME_INVALID: 'the server certificate is not valid for the server host name',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'the server certificate is self-signed and not trusted',
  SELF_SIGNED_CERT_IN_CHAIN: 'the server certificate chain ends in a root that is not in sink.tls.ca',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'the server certificate is not signed by a CA in sink.tls.ca',
  UNABLE_TO_GET_ISSUER_CERT: 'the server certificate is not signed by a CA in sink.tls.ca',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'the server certificate is not signed by a CA in sink.tls.ca',
  CERT_HAS_EXPIRED: 'the server certificate has expired',
  CERT_NOT_YET_VALID: 'the server certificate is not valid yet',
};

/**
 * TLS alerts a server sends when it refuses pgcdc's client certificate (a server with verify on):
 * missing, from a CA it does not trust, expired. Retrying cannot help.
 */
const CLIENT_CERT_ALERTS: Readonly<Record<string, string>> = {
  ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE: 'bad certificate',
  ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED: 'certificate required',
  ERR_SSL_TLSV1_ALERT_UNKNOWN_CA: 'unknown CA',
  ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN: 'certificate unknown',
  ERR_SSL_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE: 'unsupported certificate',
  ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED: 'certificate expired',
  ERR_SSL_SSLV3_ALERT_CERTIFICATE_REVOKED: 'certificate revoked',
};

/** `Nats-Expected-Last-Msg-Id` did not match (stream.exclusive). */
const WRONG_LAST_MSG_ID = 10070;

/** JetStream API error codes that are the user's to fix, with what to do. */
const API_ERRORS: Readonly<Record<number, string>> = {
  10023: 'the NATS cluster has not the resources for the stream: lower sink.stream.replicas or free resources',
  10039: 'enable JetStream on the server (jetstream {} in its configuration) or for the account',
  10047: 'raise the account or server JetStream storage limits, or lower sink.stream.replicas',
  10054: "raise the stream's max_msg_size (and the server's max_payload): an event is larger",
  10065: 'choose stream subjects that no other stream of the account covers (sink.stream.subjects)',
  10074: 'lower sink.stream.replicas to 1 on a server that is not clustered',
  10077: "raise the stream's limits (max_msgs, max_bytes) or set its discard policy to old: it refuses new messages",
};

/**
 * `error` from the client as a CdcError. `doing` says what pgcdc was doing ("publishing to NATS").
 * A server down or unreachable, a dropped connection, a timeout and a JetStream still starting are
 * SINK_FAILED and retried; a host that does not resolve, TLS that cannot be verified, refused
 * credentials, a permission denied and a JetStream API refusal are the user's to fix.
 */
export function natsError(error: unknown, doing: string, options: NatsOptions): CdcError {
  if (error instanceof CdcError) return error;
  const hosts = serverHosts(options);
  for (const record of causes(error)) {
    const name = typeof record.name === 'string' ? record.name : '';
    const code = record.code;
    const phrase = typeof code === 'string' ? CERT_ERRORS[code] : undefined;
    if (phrase !== undefined)
      return new CdcError('CONNECT_FAILED', `${doing}: TLS verification failed: ${phrase}`, {
        hint:
          code === 'ERR_TLS_CERT_ALTNAME_INVALID'
            ? 'use the host names the certificate names in sink.servers (or fix the certificate)'
            : 'point sink.tls.ca at the CA that signed the server certificate',
        cause: error,
      });
    const alert = typeof code === 'string' ? CLIENT_CERT_ALERTS[code] : undefined;
    if (alert !== undefined)
      return new CdcError(
        'AUTH_FAILED',
        `${doing}: the NATS server at ${hosts} refused pgcdc's client certificate (TLS alert: ${alert})`,
        {
          hint:
            options.tls?.cert === undefined
              ? 'the server requires a client certificate: give sink.tls.cert and sink.tls.key'
              : 'give in sink.tls.cert a certificate signed by a CA the server trusts (its tls ca_file), not expired',
          cause: error,
        },
      );
    if (code === 'ENOTFOUND')
      return new CdcError(
        'CONNECT_FAILED',
        `${doing}: cannot resolve NATS server host ${typeof record.hostname === 'string' ? record.hostname : hosts}`,
        { hint: 'check the host names in sink.servers (--nats-url)', cause: error },
      );
    if (name === 'AuthorizationError' || name === 'UserAuthenticationExpiredError')
      return new CdcError(
        'AUTH_FAILED',
        `${doing}: the NATS server at ${hosts} refused the login (${deepestMessage(error)})`,
        {
          hint:
            'check sink.auth (user, token, NKey seed or credentials file) and the secret in its file or ' +
            'environment variable',
          cause: error,
        },
      );
    if (name === 'PermissionViolationError')
      return new CdcError('SINK_FAILED', `${doing}: ${deepestMessage(error)}`, {
        retryable: false,
        hint: 'allow the NATS user to publish on the subjects (and on $JS.API.> for the stream and KV checks)',
        cause: error,
      });
    if (name === 'JetStreamApiError' || name === 'StreamNotFoundError') {
      const apiCode = Number(code);
      const hint = API_ERRORS[apiCode];
      if (hint !== undefined || name === 'StreamNotFoundError')
        return new CdcError('SINK_FAILED', `${doing}: JetStream refused: ${deepestMessage(error)} (${apiCode})`, {
          retryable: false,
          hint: hint ?? 'check sink.stream',
          cause: error,
        });
      if (apiCode === WRONG_LAST_MSG_ID)
        return new CdcError(
          'SINK_FAILED',
          `${doing}: the stream's last message is not pgcdc's previous event (${deepestMessage(error)})`,
          {
            retryable: true,
            hint:
              'an earlier publish was lost (pgcdc retries from the checkpoint), or something else publishes to ' +
              'the stream: then set sink.stream.exclusive: false',
            cause: error,
          },
        );
      // Others (a leader election and the like): transient.
      return new CdcError('SINK_FAILED', `${doing}: JetStream answered: ${deepestMessage(error)} (${apiCode})`, {
        retryable: true,
        hint: 'pgcdc retries from the last checkpoint; if it persists, check the stream on the server',
        cause: error,
      });
    }
    if (name === 'JetStreamNotEnabled' || name === 'NoResponders')
      return new CdcError('SINK_FAILED', `${doing}: no JetStream stream answered (${deepestMessage(error)})`, {
        retryable: true,
        hint: `check that JetStream is enabled on ${hosts} and that a stream covers the subject (sink.stream.subjects)`,
        cause: error,
      });
  }
  return new CdcError('SINK_FAILED', `${doing}: ${deepestMessage(error)}`, {
    retryable: true,
    hint: `check that the NATS servers (${hosts}) are up and reachable`,
    cause: error,
  });
}
