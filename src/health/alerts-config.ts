/**
 * The `alerts` section of the configuration (src/config.ts composes it): how often a running
 * capture samples its slot, the warning and critical thresholds of each watched value, and the
 * optional webhook told of every state change. `pgcdc status` judges with the same thresholds.
 *
 * Sizes are bytes or text (`512MB`, `1GiB`: powers of 1024). `safeWalSizeBytes` is the one where LOW
 * values are bad; its thresholds may also be a share of the server's `max_slot_wal_keep_size`
 * (`"20%"`), which is what the defaults are, so they suit any server.
 */
import { z } from 'zod';
import { parseByteSize } from './bytes.ts';

/** A `safe_wal_size` threshold: bytes, or a percentage of `max_slot_wal_keep_size`. */
export type SafeWalLimit = { readonly bytes: number } | { readonly percent: number };

const GIB = 1024 ** 3;

export const ALERT_DEFAULTS = {
  intervalMs: 10_000,
  lagBytes: { warning: GIB, critical: 10 * GIB },
  lagSeconds: { warning: 300, critical: 1800 },
  retainedWalBytes: { warning: 2 * GIB, critical: 20 * GIB },
  safeWalSizeBytes: { warning: '50%', critical: '20%' },
} as const;

const SAFE_WAL_DEFAULTS: { readonly warning: SafeWalLimit; readonly critical: SafeWalLimit } = {
  warning: { percent: 50 },
  critical: { percent: 20 },
};

const byteSize = z.union([z.number(), z.string()]).transform((value, ctx): number => {
  const bytes = typeof value === 'number' ? value : parseByteSize(value);
  if (bytes === undefined || !Number.isSafeInteger(bytes) || bytes < 0) {
    ctx.addIssue({
      code: 'custom',
      message: `must be a size in bytes: a whole number or text like "512MB" or "1GiB", not ${JSON.stringify(value)}`,
    });
    return z.NEVER;
  }
  return bytes;
});

const safeWalLimit = z.union([z.number(), z.string()]).transform((value, ctx): SafeWalLimit => {
  if (typeof value === 'string') {
    const percent = /^\s*(\d+(?:\.\d+)?)\s*%\s*$/.exec(value);
    if (percent !== null && Number(percent[1]) <= 100) return { percent: Number(percent[1]) };
  }
  const bytes = typeof value === 'number' ? value : parseByteSize(value);
  if (bytes === undefined || !Number.isSafeInteger(bytes) || bytes < 0) {
    ctx.addIssue({
      code: 'custom',
      message:
        `must be a size ("256MB", "1GiB", bytes) or a share of max_slot_wal_keep_size ("20%"), ` +
        `not ${JSON.stringify(value)}`,
    });
    return z.NEVER;
  }
  return { bytes };
});

/** Warning and critical where HIGH values are bad: critical must not be below warning. */
function highIsBad(value: z.ZodType<number, number | string>, defaults: { warning: number; critical: number }) {
  return z
    .strictObject({ warning: value.optional(), critical: value.optional() })
    .transform((t) => ({ warning: t.warning ?? defaults.warning, critical: t.critical ?? defaults.critical }))
    .refine((t) => t.critical >= t.warning, { message: 'must be at least the warning threshold', path: ['critical'] })
    .default({ ...defaults });
}

const seconds = z
  .number()
  .min(0)
  .max(365 * 86_400);

const webhookSchema = z
  .strictObject({
    /** Where each alert state change is POSTed as JSON. */
    url: z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' }),
    /** A file whose first line is a bearer token (sent as `Authorization: Bearer ...`). */
    tokenFile: z.string().min(1).optional(),
    /** The environment variable holding that token (instead of a file). */
    tokenEnv: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name')
      .optional(),
    /** Each attempt's limit; a failed POST is tried again a few times with a growing delay. */
    timeoutMs: z.number().int().min(100).max(120_000).default(5000),
  })
  .refine((w) => w.tokenFile === undefined || w.tokenEnv === undefined, {
    message: 'set tokenFile or tokenEnv, not both',
    path: ['tokenEnv'],
  });

export const alertsSchema = z
  .strictObject({
    /** How often a running capture samples its slot (on a connection of its own). */
    intervalMs: z.number().int().min(100).max(3_600_000).default(ALERT_DEFAULTS.intervalMs),
    /** WAL written that the capture has not confirmed (pg_current_wal_lsn() - confirmed_flush_lsn). */
    lagBytes: highIsBad(byteSize, ALERT_DEFAULTS.lagBytes),
    /** Seconds the oldest unconfirmed change has been waiting (see health/slot-probe.ts). */
    lagSeconds: highIsBad(seconds, ALERT_DEFAULTS.lagSeconds),
    /** WAL the slot keeps on the server's disk (pg_current_wal_lsn() - restart_lsn). */
    retainedWalBytes: highIsBad(byteSize, ALERT_DEFAULTS.retainedWalBytes),
    /** WAL that may still be written before the slot may be invalidated: LOW is bad. */
    safeWalSizeBytes: z
      .strictObject({ warning: safeWalLimit.optional(), critical: safeWalLimit.optional() })
      .transform((t) => ({
        warning: t.warning ?? SAFE_WAL_DEFAULTS.warning,
        critical: t.critical ?? SAFE_WAL_DEFAULTS.critical,
      }))
      .refine(
        (t) =>
          !('bytes' in t.warning && 'bytes' in t.critical && t.critical.bytes > t.warning.bytes) &&
          !('percent' in t.warning && 'percent' in t.critical && t.critical.percent > t.warning.percent),
        { message: 'must not be above the warning threshold (low safe_wal_size is bad)', path: ['critical'] },
      )
      .default({ ...SAFE_WAL_DEFAULTS }),
    webhook: webhookSchema.optional(),
  })
  .default({
    intervalMs: ALERT_DEFAULTS.intervalMs,
    lagBytes: { ...ALERT_DEFAULTS.lagBytes },
    lagSeconds: { ...ALERT_DEFAULTS.lagSeconds },
    retainedWalBytes: { ...ALERT_DEFAULTS.retainedWalBytes },
    safeWalSizeBytes: { ...SAFE_WAL_DEFAULTS },
  });

export type AlertsConfig = z.infer<typeof alertsSchema>;
export type AlertThresholds = Omit<AlertsConfig, 'intervalMs' | 'webhook'>;
