/**
 * Connection settings for the Kafka client (@platformatic/kafka) from the sink's options, and the
 * translation of the client's errors into pgcdc's: one line naming what failed and what to do, with
 * `retryable` saying whether the supervisor may try again (lifecycle/supervisor.ts).
 */
import { isIP } from 'node:net';
import type { ConnectionOptions as TlsOptions } from 'node:tls';
import { CdcError } from '../../core/errors.ts';
import { readPem, readSecret } from '../secrets.ts';
import type { KafkaOptions } from './options.ts';

/** The part of the client's options that says where and how to connect. */
export interface KafkaConnection {
  clientId: string;
  bootstrapBrokers: string[];
  connectTimeout: number;
  requestTimeout: number;
  tls?: TlsOptions;
  tlsServerName?: boolean;
  sasl?: { mechanism: 'PLAIN' | 'SCRAM-SHA-256' | 'SCRAM-SHA-512'; username: string; password: string };
}

export function connectionOptions(options: KafkaOptions): KafkaConnection {
  const connection: KafkaConnection = {
    clientId: options.clientId,
    bootstrapBrokers: options.bootstrapServers,
    connectTimeout: Math.min(options.requestTimeoutMs, 10_000),
    requestTimeout: options.requestTimeoutMs,
  };
  const tls = options.tls;
  if (tls?.enabled) {
    const settings: TlsOptions = { rejectUnauthorized: true };
    if (tls.ca !== undefined) settings.ca = readPem(tls.ca, 'sink.tls.ca');
    if (tls.cert !== undefined) settings.cert = readPem(tls.cert, 'sink.tls.cert');
    if (tls.key !== undefined) settings.key = readPem(tls.key, 'sink.tls.key');
    if (tls.keyPassphrase !== undefined) settings.passphrase = readSecret(tls.keyPassphrase, 'sink.tls.keyPassphrase');
    if (!tls.verifyHostname) settings.checkServerIdentity = () => undefined;
    connection.tls = settings;
    // SNI with the broker's host name; an IP address may not be sent as one (RFC 6066, Node warns),
    // and the certificate is checked against the host either way.
    const firstHost = options.bootstrapServers[0]?.replace(/:\d+$/, '').replace(/^\[|\]$/g, '') ?? '';
    if (isIP(firstHost) === 0) connection.tlsServerName = true;
  }
  if (options.sasl) {
    connection.sasl = {
      mechanism: options.sasl.mechanism,
      username: options.sasl.username,
      password: readSecret(options.sasl.password, 'sink.sasl.password'),
    };
  }
  return connection;
}

/** Every error inside `error` (the client nests them: AggregateError, cause). */
function* nested(error: unknown, depth = 0): Generator<Record<string, unknown>> {
  if (error === null || typeof error !== 'object' || depth > 6) return;
  const record = error as Record<string, unknown>;
  yield record;
  if (Array.isArray(record.errors)) for (const inner of record.errors) yield* nested(inner, depth + 1);
  if (record.cause !== undefined) yield* nested(record.cause, depth + 1);
}

/** The Kafka protocol error names (`PRODUCER_FENCED`, ...) found in a client error. */
export function kafkaErrorNames(error: unknown): Set<string> {
  const names = new Set<string>();
  for (const record of nested(error)) if (typeof record.apiId === 'string') names.add(record.apiId);
  return names;
}

function firstMessage(error: unknown): string {
  let deepest = error instanceof Error ? error.message : String(error);
  for (const record of nested(error)) {
    if (typeof record.message === 'string' && record.message !== '' && !/failed \d+ times/.test(record.message))
      deepest = record.message;
  }
  return deepest.replace(/\.$/, '');
}

/** Node's certificate-verification error codes, as a phrase a user can act on. */
const CERT_ERRORS: Readonly<Record<string, string>> = {
  ERR_TLS_CERT_ALTNAME_INVALID: 'the broker certificate is not valid for the broker host name',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'the broker certificate is self-signed and not trusted',
  SELF_SIGNED_CERT_IN_CHAIN: 'the broker certificate chain ends in a root that is not in sink.tls.ca',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'the broker certificate is not signed by a CA in sink.tls.ca',
  UNABLE_TO_GET_ISSUER_CERT: 'the broker certificate is not signed by a CA in sink.tls.ca',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'the broker certificate is not signed by a CA in sink.tls.ca',
  CERT_HAS_EXPIRED: 'the broker certificate has expired',
  CERT_NOT_YET_VALID: 'the broker certificate is not valid yet',
};

const FENCED = ['PRODUCER_FENCED', 'INVALID_PRODUCER_EPOCH', 'TRANSACTIONAL_ID_AUTHORIZATION_FAILED'];
const AUTHORIZATION = ['TOPIC_AUTHORIZATION_FAILED', 'CLUSTER_AUTHORIZATION_FAILED', 'GROUP_AUTHORIZATION_FAILED'];
const TOO_LARGE = ['MESSAGE_TOO_LARGE', 'RECORD_LIST_TOO_LARGE'];

/**
 * `error` from the client as a CdcError. `doing` says what pgcdc was doing ("writing to Kafka").
 * Fencing is SINK_FENCED; authentication, authorization, a record the broker finds too large, a
 * broker host that does not resolve and an unknown compression are the user's to fix (not
 * retried); the rest (a broker down, a timeout,
 * a leader moving) is SINK_FAILED and retried.
 */
export function kafkaError(error: unknown, doing: string, options: KafkaOptions, transactionalId?: string): CdcError {
  if (error instanceof CdcError) return error;
  const names = kafkaErrorNames(error);
  const has = (list: readonly string[]): string | undefined => list.find((name) => names.has(name));
  const fenced = has(FENCED);
  if (fenced === 'TRANSACTIONAL_ID_AUTHORIZATION_FAILED')
    return new CdcError('SINK_FAILED', `${doing}: not authorized to use transactional id ${transactionalId ?? ''}`, {
      hint: 'grant the user WRITE and DESCRIBE on that TransactionalId (or use delivery: at-least-once)',
      cause: error,
    });
  if (fenced !== undefined)
    return new CdcError(
      'SINK_FENCED',
      `another pgcdc took over Kafka transactional id ${transactionalId ?? '(idempotent producer)'} (${fenced}): ` +
        'this one stops without acknowledging more',
      {
        hint: 'run one pgcdc per slot; the newer one continues from the checkpoint in Kafka',
        cause: error,
      },
    );
  const denied = has(AUTHORIZATION);
  if (denied !== undefined)
    return new CdcError('SINK_FAILED', `${doing}: ${denied} (${firstMessage(error)})`, {
      hint: 'grant the pgcdc user WRITE and DESCRIBE (and CREATE to create topics) on its topics',
      cause: error,
    });
  const tooLarge = has(TOO_LARGE);
  if (tooLarge !== undefined)
    return new CdcError('SINK_FAILED', `${doing}: the broker refused a record batch as too large (${tooLarge})`, {
      hint:
        `lower sink.batchBytes (now ${options.batchBytes}) and sink.messageMaxBytes, or raise the topic's ` +
        'max.message.bytes',
      cause: error,
    });
  for (const record of nested(error)) {
    const code = record.code;
    const phrase = typeof code === 'string' ? CERT_ERRORS[code] : undefined;
    if (phrase !== undefined)
      return new CdcError('CONNECT_FAILED', `${doing}: TLS verification failed: ${phrase}`, {
        hint:
          code === 'ERR_TLS_CERT_ALTNAME_INVALID'
            ? 'use the host names the certificates name in sink.bootstrapServers (or fix the certificates)'
            : 'point sink.tls.ca at the CA that signed the brokers certificates',
        cause: error,
      });
    if (code === 'PLT_KFK_AUTHENTICATION' || names.has('SASL_AUTHENTICATION_FAILED'))
      return new CdcError('AUTH_FAILED', `${doing}: Kafka authentication failed (${firstMessage(error)})`, {
        hint: 'check sink.sasl (mechanism, username) and the password in its file or environment variable',
        cause: error,
      });
    // A broker host that does not resolve is a wrong setting, not an outage (EAI_AGAIN, a temporary
    // DNS failure, stays retryable below), as for PostgreSQL's host.
    if (code === 'ENOTFOUND')
      return new CdcError(
        'CONNECT_FAILED',
        `${doing}: cannot resolve Kafka broker host ${typeof record.hostname === 'string' ? record.hostname : ''}`,
        { hint: 'check the host names in sink.bootstrapServers (--kafka-bootstrap)', cause: error },
      );
    if (code === 'PLT_KFK_UNSUPPORTED_COMPRESSION')
      return new CdcError('CONFIG_INVALID', `${doing}: compression ${options.compression} is not supported here`, {
        hint: 'use none, gzip, snappy, lz4 or zstd',
        cause: error,
      });
  }
  return new CdcError('SINK_FAILED', `${doing}: ${firstMessage(error)}`, {
    retryable: true,
    hint: `check that the brokers (${options.bootstrapServers.join(', ')}) are up and reachable`,
    cause: error,
  });
}
