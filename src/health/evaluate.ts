/**
 * The alerts of one sample: each watched value against its thresholds (alerts-config.ts), as pure
 * functions. A level keeps its `since` from the previous evaluation while it does not change, so
 * callers see state changes by comparing levels, never per tick.
 */
import type { AlertThresholds, SafeWalLimit } from './alerts-config.ts';
import type { AlertLevel, AlertName, AlertState, SlotSample } from './types.ts';
import { formatBytes, formatDuration } from './bytes.ts';

/** The alerts in the order they are always listed. */
export const ALERT_NAMES: readonly AlertName[] = [
  'slot',
  'safe_wal_size_bytes',
  'retained_wal_bytes',
  'lag_bytes',
  'lag_seconds',
];

const RANK: Readonly<Record<AlertLevel, number>> = { ok: 0, warning: 1, critical: 2 };

/** The worst of `levels` (ok when empty). */
export function worstLevel(levels: Iterable<AlertLevel>): AlertLevel {
  let worst: AlertLevel = 'ok';
  for (const level of levels) if (RANK[level] > RANK[worst]) worst = level;
  return worst;
}

type Judged = Omit<AlertState, 'since' | 'name'>;

/** A `safe_wal_size` limit in bytes; undefined when it is a share of an unlimited (or unknown) size. */
export function safeWalLimitBytes(
  limit: SafeWalLimit,
  maxSlotWalKeepSizeBytes: number | undefined,
): number | undefined {
  if ('bytes' in limit) return limit.bytes;
  return maxSlotWalKeepSizeBytes === undefined
    ? undefined
    : Math.floor((maxSlotWalKeepSizeBytes * limit.percent) / 100);
}

/** The slot alert has no value or threshold: only a level and its line. */
function slotState(level: AlertLevel, message: string): Judged {
  return { level, value: undefined, threshold: undefined, message };
}

function judgeSlot(sample: SlotSample): Judged {
  const slot = sample.slot;
  if (!sample.exists)
    return slotState(
      'critical',
      `slot ${slot} does not exist on the server: changes since the last checkpoint cannot be read any more; ` +
        'a capture with a stored checkpoint refuses to resume (docs/recovery.md: start over with snapshot ' +
        'mode when_needed)',
    );
  if (sample.walStatus === 'lost')
    return slotState(
      'critical',
      `slot ${slot} is lost (wal_status lost): the server removed WAL it still needed, the changes in it are gone; ` +
        'docs/recovery.md: drop the slot and start over with snapshot mode when_needed',
    );
  if (sample.walStatus === 'unreserved')
    return slotState(
      'warning',
      `slot ${slot} is unreserved (wal_status): it keeps more WAL than max_slot_wal_keep_size and the next ` +
        'checkpoint may invalidate it; start or unblock pgcdc now, or raise max_slot_wal_keep_size',
    );
  const state = sample.walStatus === undefined ? '' : ` (wal_status ${sample.walStatus})`;
  return slotState('ok', `slot ${slot} exists${state}, ${sample.active ? 'in use' : 'not in use'}`);
}

/** HIGH is bad: critical at or above `critical`, warning at or above `warning`. */
function judgeHigh(
  value: number | undefined,
  limits: { readonly warning: number; readonly critical: number },
  show: (n: number) => string,
  what: (value: string, threshold: string, level: AlertLevel) => string,
  unknown: string,
): Judged {
  if (value === undefined) return { level: 'ok', value, threshold: undefined, message: unknown };
  const level: AlertLevel = value >= limits.critical ? 'critical' : value >= limits.warning ? 'warning' : 'ok';
  const threshold = level === 'critical' ? limits.critical : level === 'warning' ? limits.warning : undefined;
  return {
    level,
    value,
    threshold,
    message: what(show(value), show(threshold ?? limits.warning), level),
  };
}

function judgeSafeWal(sample: SlotSample, limits: AlertThresholds['safeWalSizeBytes']): Judged {
  const value = sample.safeWalSizeBytes;
  const keep = sample.maxSlotWalKeepSizeBytes;
  if (value === undefined || !sample.exists || sample.walStatus === 'lost')
    return {
      level: 'ok',
      value,
      threshold: undefined,
      message:
        !sample.exists || sample.walStatus === 'lost'
          ? 'safe_wal_size: not applicable (see the slot alert)'
          : 'safe_wal_size: no limit (max_slot_wal_keep_size is -1, or the server is older than PostgreSQL 13)',
    };
  const critical = safeWalLimitBytes(limits.critical, keep);
  const warning = safeWalLimitBytes(limits.warning, keep);
  const level: AlertLevel =
    critical !== undefined && value <= critical
      ? 'critical'
      : warning !== undefined && value <= warning
        ? 'warning'
        : 'ok';
  const threshold = level === 'critical' ? critical : level === 'warning' ? warning : undefined;
  const of = keep === undefined ? '' : ` of max_slot_wal_keep_size ${formatBytes(keep)}`;
  const left = value < 0 ? `none (${formatBytes(-value)} past the limit)` : `only ${formatBytes(value)}`;
  const message =
    level === 'ok'
      ? `safe_wal_size ${formatBytes(value)}${of} may still be written before slot ${sample.slot} is at risk`
      : `safe_wal_size: ${left}${of} may still be written before the server may invalidate slot ` +
        `${sample.slot} (${level} at ${formatBytes(threshold ?? 0)}); start or unblock pgcdc now so it ` +
        'confirms WAL, or raise max_slot_wal_keep_size';
  return { level, value, threshold, message };
}

function judge(name: AlertName, sample: SlotSample, t: AlertThresholds): Judged {
  switch (name) {
    case 'slot':
      return judgeSlot(sample);
    case 'safe_wal_size_bytes':
      return judgeSafeWal(sample, t.safeWalSizeBytes);
    case 'retained_wal_bytes':
      return judgeHigh(
        sample.retainedWalBytes,
        t.retainedWalBytes,
        formatBytes,
        (v, at, level) =>
          level === 'ok'
            ? `slot ${sample.slot} keeps ${v} of WAL on the server's disk (warning at ${at})`
            : `slot ${sample.slot} keeps ${v} of WAL on the server's disk (${level} at ${at}); the server removes ` +
              'it only once pgcdc confirms it: start or unblock pgcdc, or drop the slot if the capture is abandoned',
        'retained WAL: unknown (no slot)',
      );
    case 'lag_bytes':
      return judgeHigh(
        sample.lagBytes,
        t.lagBytes,
        formatBytes,
        (v, at, level) =>
          level === 'ok'
            ? `the capture is ${v} behind the server's WAL (warning at ${at})`
            : `the capture is ${v} behind the server's WAL (${level} at ${at}): check that pgcdc runs and its ` +
              'sink accepts writes (its log says why it is behind)',
        'lag: unknown (no slot)',
      );
    case 'lag_seconds':
      return judgeHigh(
        sample.lagSeconds,
        t.lagSeconds,
        formatDuration,
        (v, at, level) =>
          level === 'ok'
            ? `the oldest unconfirmed change has waited ${v} (warning at ${at})`
            : `the oldest unconfirmed change has waited ${v} (${level} at ${at}): check that pgcdc runs and ` +
              'its sink accepts writes',
        'lag in seconds: unknown (no commit time known yet)',
      );
  }
}

/**
 * The alerts of `sample`, in ALERT_NAMES order. `previous` (the last evaluation) keeps each
 * unchanged level's `since`; `now` is the time of a level that changed (ISO).
 */
export function evaluateAlerts(
  sample: SlotSample,
  thresholds: AlertThresholds,
  previous: readonly AlertState[] = [],
): AlertState[] {
  return ALERT_NAMES.map((name) => {
    const judged = judge(name, sample, thresholds);
    const before = previous.find((p) => p.name === name);
    const since = before !== undefined && before.level === judged.level ? before.since : sample.at;
    return { name, ...judged, since };
  });
}

/** The alerts whose level differs from `previous` (a missing previous alert counts as ok). */
export function changedAlerts(previous: readonly AlertState[], current: readonly AlertState[]): AlertState[] {
  return current.filter((alert) => (previous.find((p) => p.name === alert.name)?.level ?? 'ok') !== alert.level);
}
