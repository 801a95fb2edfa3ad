/**
 * The `http` section of the configuration: where `pgcdc run`'s HTTP server listens, its bearer
 * token's source, and whether recent events show their values. The token itself is never written in
 * the configuration nor given as a flag: only the file or the environment variable holding it.
 */
import { isIP } from 'node:net';
import { z } from 'zod';

/** The environment variable read for the token when neither `tokenFile` nor `tokenEnv` is set. */
export const DEFAULT_TOKEN_ENV = 'PGCDC_HTTP_TOKEN';

/** A listen address: `host:port`, `[v6]:port`. */
export interface ListenAddress {
  /** An IP address or a host name, without brackets. */
  readonly host: string;
  readonly port: number;
}

/** `127.0.0.1:9187` -> {host, port}; `[::1]:9187` for IPv6; undefined when malformed. */
export function parseListen(text: string): ListenAddress | undefined {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(text);
  if (match === null) return undefined;
  const host = match[1] ?? match[2] ?? '';
  const port = Number(match[3]);
  if (port > 65_535 || host === '') return undefined;
  if (match[1] !== undefined && isIP(host) !== 6) return undefined;
  return { host, port };
}

/** Whether `host` only ever reaches this machine: 127.0.0.0/8, ::1 (and its IPv4-mapped form), localhost. */
export function isLoopback(host: string): boolean {
  const lower = host.toLowerCase();
  if (lower === 'localhost' || lower === '::1' || lower === '0:0:0:0:0:0:0:1') return true;
  const v4 = lower.startsWith('::ffff:') ? lower.slice('::ffff:'.length) : lower;
  return isIP(v4) === 4 && v4.startsWith('127.');
}

export const httpSchema = z.strictObject({
  /**
   * `host:port` to listen on (`127.0.0.1:9187`; `[::1]:9187`). A non-loopback address needs a token
   * (tokenFile, tokenEnv or PGCDC_HTTP_TOKEN): pgcdc refuses to start without one.
   */
  listen: z
    .string({ error: 'required: the address to listen on, host:port (flag --http)' })
    .refine((text) => parseListen(text) !== undefined, {
      message: 'must be host:port (127.0.0.1:9187, [::1]:9187), with a port from 0 to 65535',
    }),
  /** A file holding the bearer token (one line). */
  tokenFile: z.string().min(1).optional(),
  /** An environment variable holding the bearer token (default: PGCDC_HTTP_TOKEN, when set). */
  tokenEnv: z.string().min(1).optional(),
  /** Recent events (`/api/events`, the dashboard) show row values; off: keys only. */
  showValues: z.boolean().default(false),
  /**
   * `/readyz` answers 503 (stalled) when, while streaming, the acknowledged position has not moved
   * for this long with received WAL waiting behind it, or no status update was sent for this long.
   */
  stallAfterMs: z.number().int().min(1_000).max(86_400_000).default(60_000),
});

export type HttpSettings = z.infer<typeof httpSchema>;
