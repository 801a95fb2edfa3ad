/**
 * Signals: rows inserted into the signal table (`<schema>.pgcdc_signal (id, type, data)`, the
 * shape Debezium users know) and `pgcdc snapshot` requests, parsed into one union.
 *
 * Signals are structured JSON only. Nothing in a signal is ever executed as SQL: Debezium's
 * `additional-conditions` (a WHERE clause) is refused for that reason. A malformed signal is a
 * `rejected` value that the capture logs and otherwise ignores: a bad row written by someone must
 * not stop the capture.
 */
import { z } from 'zod';
import { parseTableName } from '../selection/table-name.ts';
import type { TableName } from './initial-reader.ts';

/** The `type` of the rows pgcdc itself writes to delimit an incremental snapshot window. */
export const WINDOW_OPEN = 'snapshot-window-open';
export const WINDOW_CLOSE = 'snapshot-window-close';
/** The logical message prefix of watermarks written by the message method. */
export const WATERMARK_MESSAGE_PREFIX = 'pgcdc.watermark';

export type Signal =
  | { readonly kind: 'execute-snapshot'; readonly tables: readonly TableName[] }
  /** `tables` undefined: stop the whole incremental snapshot. */
  | { readonly kind: 'stop-snapshot'; readonly tables: readonly TableName[] | undefined }
  /** A watermark of an incremental snapshot window. */
  | { readonly kind: 'watermark'; readonly window: string; readonly edge: 'low' | 'high' }
  | { readonly kind: 'rejected'; readonly reason: string };

const collections = z.array(z.string().min(1).max(400)).max(10_000);

const executeData = z.looseObject({
  'data-collections': collections.min(1),
  type: z.string().optional(),
  'additional-conditions': z.unknown().optional(),
  'additional-condition': z.unknown().optional(),
});

const stopData = z.looseObject({
  'data-collections': collections.optional(),
  type: z.string().optional(),
});

function tableNames(list: readonly string[]): TableName[] | string {
  const out: TableName[] = [];
  for (const text of list) {
    try {
      out.push(parseTableName(text));
    } catch {
      return `${JSON.stringify(text)} is not a schema.table name`;
    }
  }
  return out;
}

function parseJson(data: string | null): unknown {
  if (data === null || data.trim() === '') return {};
  try {
    return JSON.parse(data) as unknown;
  } catch {
    return undefined;
  }
}

/** A signal from its `type` and `data` text (a signal table row, or a `pgcdc snapshot` request). */
export function parseSignal(type: string, data: string | null, id: string): Signal {
  switch (type) {
    case WINDOW_OPEN:
    case WINDOW_CLOSE: {
      const suffix = type === WINDOW_OPEN ? '-open' : '-close';
      if (!id.endsWith(suffix))
        return { kind: 'rejected', reason: `a ${type} row must have an id ending in ${suffix}` };
      return { kind: 'watermark', window: id.slice(0, -suffix.length), edge: type === WINDOW_OPEN ? 'low' : 'high' };
    }
    case 'execute-snapshot': {
      const parsed = executeData.safeParse(parseJson(data));
      if (!parsed.success)
        return {
          kind: 'rejected',
          reason:
            `execute-snapshot data must be JSON like {"data-collections": ["public.orders"], "type": ` +
            `"incremental"}`,
        };
      const value = parsed.data;
      if (value['additional-conditions'] !== undefined || value['additional-condition'] !== undefined) {
        return {
          kind: 'rejected',
          reason: 'additional-conditions are not supported: pgcdc executes no SQL taken from a signal',
        };
      }
      const kind = (value.type ?? 'incremental').toLowerCase();
      if (kind !== 'incremental')
        return {
          kind: 'rejected',
          reason: `snapshot type ${JSON.stringify(value.type)} is not supported (only "incremental")`,
        };
      const tables = tableNames(value['data-collections']);
      if (typeof tables === 'string') return { kind: 'rejected', reason: tables };
      return { kind: 'execute-snapshot', tables };
    }
    case 'stop-snapshot': {
      const parsed = stopData.safeParse(parseJson(data));
      if (!parsed.success)
        return {
          kind: 'rejected',
          reason:
            'stop-snapshot data must be JSON like {"data-collections": ["public.orders"], "type": ' +
            '"incremental"} or empty',
        };
      const list = parsed.data['data-collections'];
      if (list === undefined || list.length === 0) return { kind: 'stop-snapshot', tables: undefined };
      const tables = tableNames(list);
      if (typeof tables === 'string') return { kind: 'rejected', reason: tables };
      return { kind: 'stop-snapshot', tables };
    }
    default:
      return {
        kind: 'rejected',
        reason:
          `unknown signal type ` +
          `${JSON.stringify(type.slice(0, 64))} (pgcdc knows execute-snapshot and stop-snapshot)`,
      };
  }
}

/**
 * An execute-snapshot signal naming tables outside the capture's selection (`uncaptured` lists
 * them) becomes a rejected one, saying which and what is captured: reading a table that is not
 * captured, or does not exist, must neither deliver it nor stop the capture.
 */
export function capturedOnly(
  signal: Signal,
  uncaptured: ((tables: readonly TableName[]) => { names: string; captured: string } | undefined) | undefined,
): Signal {
  if (signal.kind !== 'execute-snapshot' || uncaptured === undefined) return signal;
  const outside = uncaptured(signal.tables);
  if (outside === undefined) return signal;
  return {
    kind: 'rejected',
    reason:
      `execute-snapshot names ` +
      `${outside.names}, which this capture does not capture (it captures ${outside.captured})`,
  };
}

/** A watermark message of the message method: `<window>:low` or `<window>:high`. */
export function parseWatermarkMessage(content: Buffer): Signal {
  const text = content.toString('utf8');
  const colon = text.lastIndexOf(':');
  const edge = text.slice(colon + 1);
  if (colon <= 0 || (edge !== 'low' && edge !== 'high'))
    return { kind: 'rejected', reason: `malformed watermark message ${JSON.stringify(text.slice(0, 80))}` };
  return { kind: 'watermark', window: text.slice(0, colon), edge };
}
