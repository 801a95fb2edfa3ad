/**
 * The `sink` section for `kind: http` (docs/sinks.md, "http"). Secrets (the signing secret, header
 * values such as Authorization, a TLS key's passphrase) come from a file or an environment
 * variable, never from the configuration or a flag, so they are never in a process listing or a
 * log; a URL with user:password is refused for the same reason.
 */
import { z } from 'zod';
import { secretSourceSchema, certAndKeyTogether, tlsFileFields } from '../secrets.ts';

/** Headers pgcdc sets itself on every request; a configured header may not replace them. */
export const RESERVED_HEADERS: ReadonlySet<string> = new Set([
  'host',
  'content-length',
  'transfer-encoding',
  'connection',
  'idempotency-key',
  'x-pgcdc-signature',
  'x-pgcdc-events',
]);

/** An HTTP token (RFC 9110 field-name). */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * The endpoint: http or https, without credentials. Messages never repeat the URL (its path or
 * query may hold a token, as many webhook URLs do).
 */
const endpointUrl = z
  .string({ error: 'is required: the URL events are POSTed to (--http-url)' })
  .superRefine((value, ctx) => {
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      ctx.addIssue({ code: 'custom', message: 'is not a valid URL (http://host[:port]/path or https://...)' });
      return;
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:')
      ctx.addIssue({ code: 'custom', message: `must be an http:// or https:// URL, not ${url.protocol}//` });
    if (url.username !== '' || url.password !== '')
      ctx.addIssue({
        code: 'custom',
        message:
          'must not hold credentials (user:password@): send them in a header whose value comes from a file or an ' +
          'environment variable, such as headers: { Authorization: { env: WEBHOOK_AUTH } }',
      });
  });

export const HTTP_FORMATS = ['json-array', 'ndjson'] as const;
export type HttpFormat = (typeof HTTP_FORMATS)[number];

export const httpOptionsSchema = z
  .strictObject({
    kind: z.literal('http'),
    url: endpointUrl,
    /** json-array: `[event,event,...]` (application/json); ndjson: one event per line (application/x-ndjson). */
    format: z.enum(HTTP_FORMATS).default('json-array'),
    /** Most events in one request. */
    maxEvents: z.number().int().min(1).max(1_000_000).default(1000),
    /** Most bytes of events in one request (one larger event is sent alone). */
    maxBytes: z
      .number()
      .int()
      .min(1024)
      .max(256 * 1024 * 1024)
      .default(1024 * 1024),
    /** When set, the longest an event waits for its request to fill up (overrides batch.maxDelayMs). */
    lingerMs: z.number().int().min(0).max(60_000).optional(),
    /** A request not answered within this long is abandoned and retried. */
    timeoutMs: z.number().int().min(100).max(600_000).default(30_000),
    /** Extra request headers: literal text, or a secret's source (Authorization: { env: WEBHOOK_AUTH }). */
    headers: z
      .record(z.string(), z.union([z.string().regex(/^[^\r\n]*$/, 'must be one line'), secretSourceSchema]))
      .superRefine((headers, ctx) => {
        for (const name of Object.keys(headers)) {
          if (!HEADER_NAME.test(name))
            ctx.addIssue({ code: 'custom', path: [name], message: 'is not a valid header name' });
          else if (RESERVED_HEADERS.has(name.toLowerCase()))
            ctx.addIssue({ code: 'custom', path: [name], message: 'is set by pgcdc itself and cannot be configured' });
        }
      })
      .default({}),
    /** The shared secret of the X-Pgcdc-Signature HMAC-SHA256 (no signature without it). */
    secret: secretSourceSchema.optional(),
    tls: z
      .strictObject({
        ...tlsFileFields,
        keyPassphrase: secretSourceSchema.optional(),
      })
      .refine(...certAndKeyTogether)
      .optional(),
    /** Backoff of the retries: full jitter up to min(maxMs, initialMs * 2^attempt). */
    retry: z
      .strictObject({
        initialMs: z.number().int().min(1).max(60_000).default(200),
        maxMs: z.number().int().min(1).max(3_600_000).default(30_000),
      })
      .refine((retry) => retry.maxMs >= retry.initialMs, {
        message: 'maxMs must be at least initialMs',
        path: ['maxMs'],
      })
      .default({ initialMs: 200, maxMs: 30_000 }),
    /**
     * strict: one request in flight, events in commit order. { lanes: N }: N requests in flight,
     * events split by a hash of topic and key, so each row's changes stay in order.
     */
    ordering: z
      .union(
        [
          z.literal('strict'),
          z.strictObject({ lanes: z.number().int().min(1, 'must be from 1 to 64').max(64, 'must be from 1 to 64') }),
        ],
        {
          error: 'must be strict or { lanes: N } (N from 1 to 64)',
        },
      )
      .default('strict'),
  })
  .superRefine((options, ctx) => {
    if (options.tls !== undefined && URL.canParse(options.url) && new URL(options.url).protocol !== 'https:')
      ctx.addIssue({ code: 'custom', path: ['tls'], message: 'applies to https:// URLs only' });
  });

export type HttpOptions = z.infer<typeof httpOptionsSchema>;

/** Requests in flight at most: 1 for strict ordering. */
export function laneCount(options: HttpOptions): number {
  return options.ordering === 'strict' ? 1 : options.ordering.lanes;
}

export type { SecretSource } from '../secrets.ts';
