/**
 * The `sink` section for `kind: redis` (docs/redis.md has every option with its default).
 * The password comes from a file or an environment variable, never from the configuration, the URL
 * or a flag, so it is never in a process listing or a log.
 */
import { z } from 'zod';
import { certAndKeyTogether, tlsFileFields } from '../secrets.ts';

/** Where the server is, as parsed from `url` (no credentials: a password in the URL is refused). */
export interface RedisEndpoint {
  readonly tls: boolean;
  /** Without brackets for IPv6. */
  readonly host: string;
  readonly port: number;
  readonly db: number;
  /** The ACL user named in the URL (`redis://pgcdc@host`), if any. */
  readonly username: string | undefined;
}

const DEFAULT_PORT = 6379;

/** `url` as an endpoint, or the one sentence saying what is wrong with it. */
export function parseRedisUrl(url: string): RedisEndpoint | string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return 'must be a URL such as redis://host:6379/0 or rediss://host:6380/0';
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:')
    return `must start with redis:// or rediss:// (TLS), not ${parsed.protocol}//`;
  if (parsed.password !== '')
    return (
      'must not hold a password (it would show in process listings and logs): put it in a file named by ' +
      'sink.passwordFile, or in an environment variable named by sink.passwordEnv'
    );
  if (parsed.hostname === '') return 'must name a host: redis://host:6379/0';
  if (parsed.search !== '' || parsed.hash !== '') return 'takes no query or fragment: redis://host:port/db';
  const path = parsed.pathname.replace(/^\//, '');
  if (path !== '' && !/^\d{1,5}$/.test(path)) return `must end with a database number (/0, /1, ...), not /${path}`;
  const port = parsed.port === '' ? DEFAULT_PORT : Number(parsed.port);
  return {
    tls: parsed.protocol === 'rediss:',
    host: parsed.hostname.replace(/^\[|\]$/g, ''),
    port,
    db: path === '' ? 0 : Number(path),
    username: parsed.username === '' ? undefined : decodeURIComponent(parsed.username),
  };
}

/** `host:port` for messages (IPv6 in brackets): never the URL, which may carry a user name. */
export function describeRedis(endpoint: Pick<RedisEndpoint, 'host' | 'port'>): string {
  return endpoint.host.includes(':') ? `[${endpoint.host}]:${endpoint.port}` : `${endpoint.host}:${endpoint.port}`;
}

const redisUrl = z
  .string({ error: 'is required: redis://host:port/db or rediss://host:port/db (--redis-url)' })
  .superRefine((url, ctx) => {
    const endpoint = parseRedisUrl(url);
    if (typeof endpoint === 'string') ctx.addIssue({ code: 'custom', message: endpoint });
  });

export const redisOptionsSchema = z
  .strictObject({
    kind: z.literal('redis'),
    /** `redis://host:port/db` or `rediss://host:port/db` (TLS); a user name may be given, a password never. */
    url: redisUrl,
    /** ACL user (AUTH <username> <password>); the URL's user name when absent, else the default user. */
    username: z.string().min(1).optional(),
    /** A file holding the password (its content, without a trailing newline). */
    passwordFile: z.string().min(1).optional(),
    /** An environment variable holding the password. */
    passwordEnv: z.string().min(1).optional(),
    /**
     * The stream key of each event: `{topic}` is replaced by the event's topic
     * (`<prefix>.<schema>.<table>`). Default: the topic itself.
     */
    key: z
      .string()
      .min(1)
      .refine((template) => template.includes('{topic}'), {
        message: 'must contain {topic} (one stream per table), such as cdc:{topic}',
      })
      .default('{topic}'),
    /** Approximate trimming: `XADD <key> MAXLEN ~ <maxLen>`; absent: streams are never trimmed. */
    maxLen: z.number().int().min(1).optional(),
    /**
     * After each batch, WAIT until this many replicas hold it; fewer within timeoutMs is a failure
     * that is retried (nothing of the batch is acknowledged to PostgreSQL meanwhile).
     */
    wait: z
      .strictObject({
        replicas: z.number().int().min(1).max(100),
        timeoutMs: z.number().int().min(1).max(600_000).default(5000),
      })
      .optional(),
    /** TLS settings for a rediss:// URL (the system's CAs and host name verification by default). */
    tls: z
      .strictObject({
        ...tlsFileFields,
        /** The name to verify (and send as SNI) instead of the URL's host. */
        serverName: z.string().min(1).optional(),
      })
      .refine(...certAndKeyTogether)
      .optional(),
    /** Connecting (TCP, TLS, AUTH, SELECT) longer than this fails (retried). */
    connectTimeoutMs: z.number().int().min(100).max(600_000).default(10_000),
    /** Replies pending and nothing received for this long: the server is treated as failed (retried). */
    requestTimeoutMs: z.number().int().min(100).max(600_000).default(30_000),
    /** CLIENT SETNAME, so the connection is recognisable in CLIENT LIST. */
    clientName: z
      .string()
      .regex(/^[!-~]+$/, 'must be printable ASCII without spaces')
      .default('pgcdc'),
  })
  .superRefine((options, ctx) => {
    if (options.passwordFile !== undefined && options.passwordEnv !== undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['passwordEnv'],
        message: 'give passwordFile or passwordEnv, not both',
      });
    const endpoint = parseRedisUrl(options.url);
    if (typeof endpoint !== 'string' && !endpoint.tls && options.tls !== undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['tls'],
        message: 'TLS settings need a rediss:// URL (sink.url is redis://)',
      });
  });

export type RedisOptions = z.infer<typeof redisOptionsSchema>;
