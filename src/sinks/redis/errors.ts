/**
 * The Redis client's failures as pgcdc's errors: one line naming what failed (the server as
 * host:port, never the URL; the stream key for a refused write) and what to do, with `retryable`
 * saying whether the supervisor may start the capture again (lifecycle/supervisor.ts).
 *
 * Retried: the server unreachable, restarting, timing out or closing the connection; replies that
 * say the server is busy or not ready (LOADING, BUSY, TRYAGAIN, MASTERDOWN, READONLY during a
 * failover, MISCONF: it cannot persist, OOM: maxmemory reached). Not retried: a refused login
 * (AUTH_FAILED, exit 2), a host that does not resolve or a certificate that does not verify
 * (CONNECT_FAILED, exit 2), and refusals a retry cannot cure: WRONGTYPE, NOPERM, a Redis Cluster
 * redirection, any other error reply (SINK_FAILED, exit 1).
 */
import { CdcError } from '../../core/errors.ts';
import { RedisConnectionError, RedisHandshakeError } from './client.ts';
import { RespError } from './resp.ts';

/** Error replies that say "not now": the same command may succeed later. */
const TRANSIENT_REPLIES: ReadonlySet<string> = new Set([
  'LOADING',
  'BUSY',
  'TRYAGAIN',
  'MASTERDOWN',
  'READONLY',
  'MISCONF',
  'OOM',
  'CLUSTERDOWN',
]);

/** Node's certificate-verification error codes, as a phrase a user can act on. */
const CERT_ERRORS: Readonly<Record<string, string>> = {
  ERR_TLS_CERT_ALTNAME_INVALID: 'the server certificate is not valid for the host name',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'the server certificate is self-signed and not trusted',
  SELF_SIGNED_CERT_IN_CHAIN: 'the server certificate chain ends in a root that is not in sink.tls.ca',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'the server certificate is not signed by a CA in sink.tls.ca',
  UNABLE_TO_GET_ISSUER_CERT: 'the server certificate is not signed by a CA in sink.tls.ca',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'the server certificate is not signed by a CA in sink.tls.ca',
  CERT_HAS_EXPIRED: 'the server certificate has expired',
  CERT_NOT_YET_VALID: 'the server certificate is not valid yet',
};

/** What the sink knows of where it writes, for messages. */
export interface RedisWhere {
  /** host:port */
  readonly server: string;
  readonly username: string | undefined;
}

/** An error reply to a write (XADD) or a check (TYPE) on stream key `key`. */
export function replyError(reply: RespError, doing: string, key: string | undefined, where: RedisWhere): CdcError {
  const on = key === undefined ? `on ${where.server}` : `on stream ${key} at ${where.server}`;
  const text = reply.message.replace(/\.$/, '');
  if (TRANSIENT_REPLIES.has(reply.prefix))
    return new CdcError('SINK_FAILED', `${doing} ${on}: the server refused for now (${text})`, {
      retryable: true,
      hint:
        reply.prefix === 'OOM'
          ? 'the server reached maxmemory: let consumers trim the streams (or set sink.maxLen) or raise maxmemory'
          : 'pgcdc retries; nothing after the last checkpoint was acknowledged',
      cause: reply,
    });
  if (reply.prefix === 'WRONGTYPE')
    return new CdcError('SINK_FAILED', `${doing} ${on}: the key holds another type than a stream (${text})`, {
      hint:
        'delete or rename that key, or point sink.key elsewhere; nothing after the last checkpoint was ' +
        'acknowledged',
      cause: reply,
    });
  if (reply.prefix === 'NOPERM')
    return new CdcError(
      'SINK_FAILED',
      `${doing} ${on}: user ${where.username ?? 'default'} is not allowed to (${text})`,
      {
        hint:
          'grant the user +xadd +type +ping (+select for a database other than 0, +wait with sink.wait) and the ' +
          'key pattern (~<prefix>.*) in its ACL',
        cause: reply,
      },
    );
  if (reply.prefix === 'NOAUTH' || reply.prefix === 'WRONGPASS')
    return new CdcError('AUTH_FAILED', `${doing} ${on}: Redis authentication failed (${text})`, {
      hint: 'check sink.username and the password in sink.passwordFile or sink.passwordEnv',
      cause: reply,
    });
  if (reply.prefix === 'MOVED' || reply.prefix === 'ASK' || reply.prefix === 'CROSSSLOT')
    return new CdcError('CONFIG_INVALID', `${doing} ${on}: the server is a Redis Cluster node (${text})`, {
      hint: 'pgcdc writes to a single Redis server (with replicas, see sink.wait), not to a Redis Cluster',
      cause: reply,
    });
  return new CdcError('SINK_FAILED', `${doing} ${on}: ${text}`, {
    hint: 'nothing after the last checkpoint was acknowledged',
    cause: reply,
  });
}

/** Any failure while `doing` something with the server, as a CdcError. */
export function redisError(error: unknown, doing: string, where: RedisWhere, key?: string): CdcError {
  if (error instanceof CdcError) return error;
  if (error instanceof RespError) return replyError(error, doing, key, where);
  if (error instanceof RedisHandshakeError) {
    const reply = error.reply;
    if (reply.prefix === 'NOAUTH')
      return new CdcError('AUTH_FAILED', `${doing}: Redis at ${where.server} requires a password`, {
        hint: 'put it in a file named by sink.passwordFile or a variable named by sink.passwordEnv',
        cause: error,
      });
    if (error.step === 'AUTH')
      return new CdcError(
        'AUTH_FAILED',
        `${doing}: Redis authentication failed for user ${where.username ?? 'default'} at ${where.server} ` +
          `(${reply.message.replace(/\.$/, '')})`,
        { hint: 'check sink.username and the password in sink.passwordFile or sink.passwordEnv', cause: error },
      );
    if (error.step === 'SELECT' && reply.prefix !== 'NOPERM')
      return new CdcError(
        'CONFIG_INVALID',
        `${doing}: Redis at ${where.server} refused the database of sink.url (${reply.message})`,
        { hint: 'use a database number below the server setting databases (16 by default)', cause: error },
      );
    return replyError(reply, error.step === 'SELECT' ? `${doing}: SELECT` : doing, undefined, where);
  }
  if (error instanceof RedisConnectionError) {
    const phrase = error.code === undefined ? undefined : CERT_ERRORS[error.code];
    if (phrase !== undefined)
      return new CdcError('CONNECT_FAILED', `${doing}: TLS verification of ${where.server} failed: ${phrase}`, {
        hint:
          error.code === 'ERR_TLS_CERT_ALTNAME_INVALID'
            ? 'use the host name the certificate names in sink.url, or set sink.tls.serverName'
            : 'point sink.tls.ca at the CA that signed the server certificate',
        cause: error,
      });
    if (error.code === 'ENOTFOUND')
      return new CdcError('CONNECT_FAILED', `${doing}: cannot resolve the Redis host of ${where.server}`, {
        hint: 'check the host in sink.url (--redis-url)',
        cause: error,
      });
    // The errno in the cause (ECONNREFUSED, ECONNRESET, ETIMEDOUT...) makes the error policy retry it.
    return new CdcError('SINK_FAILED', `${doing}: Redis at ${where.server}: ${error.message}`, {
      retryable: true,
      hint: 'check that the server is up and reachable; pgcdc retries, nothing unconfirmed is lost',
      cause: error,
    });
  }
  const message = error instanceof Error ? error.message : String(error);
  return new CdcError('SINK_FAILED', `${doing}: Redis at ${where.server}: ${message}`, { cause: error });
}
