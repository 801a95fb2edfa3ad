/**
 * What `pgcdc demo` prints: one line per durable event, and the verification summary.
 *
 * An event line is a pure function of the event (no memory of earlier events), so every value on
 * it is in that event: snapshot reads, inserts and updates show the row from `after`; an update
 * shows `old→new` only for the columns whose old value the event itself carries in `before`
 * (REPLICA IDENTITY FULL); deletes and truncates say so. test/integration/demo.test.ts re-renders
 * the JSONL files with `renderEvent` and compares them with the demo's output line by line.
 */
import pc from 'picocolors';
import type { VerifyReport } from './demo-verify.ts';

type Row = Record<string, unknown>;
export type Colours = ReturnType<typeof pc.createColors>;

/** The ops the demo's tables produce, in the order the summary counts them. */
export const DEMO_OPS = ['r', 'c', 'u', 'd', 't'] as const;

const ISO_INSTANT = /^\d{4}-\d{2}-\d{2}T(\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?)\d*Z$/;

/** A value shortened for one line; timestamps of a live demo are all today, so the time of day is shown. */
export function short(value: unknown, max = 24): string {
  const instant = typeof value === 'string' ? ISO_INSTANT.exec(value)?.[1] : undefined;
  if (instant !== undefined) return instant;
  const text = typeof value === 'string' ? value : (JSON.stringify(value) ?? 'null');
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function isRow(value: unknown): value is Row {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

const OP_COLOUR: Record<string, (c: Colours) => (text: string) => string> = {
  r: (c) => c.blue,
  c: (c) => c.green,
  u: (c) => c.yellow,
  d: (c) => c.red,
  t: (c) => c.magenta,
};

export interface RenderOptions {
  readonly colours: Colours;
  /** Width of the topic column. */
  readonly topicWidth: number;
  /** Terminal width: the line is cut to it. */
  readonly columns: number;
}

/** One event (a JSONL line of `topic`) as `time op topic key summary`. */
export function renderEvent(topic: string, line: string, options: RenderOptions): string {
  const { colours: c, topicWidth, columns } = options;
  const parsed = JSON.parse(line) as {
    key: unknown;
    value: { op: string; before: unknown; after: unknown; source: { ts_ms: number } };
  };
  const { op, before, after, source } = parsed.value;
  const key = isRow(parsed.key) ? parsed.key : {};
  const keyText =
    Object.entries(key)
      .map(([k, v]) => `${k}=${short(v, 13)}`)
      .join(',') || '-';
  let summary: string;
  if (op === 'd') summary = 'deleted';
  else if (op === 't') summary = 'table truncated';
  else {
    const row = isRow(after) ? after : {};
    const columnsShown = Object.entries(row).filter(([name]) => !(name in key));
    if (op === 'u' && isRow(before)) {
      const old = before;
      const changed = columnsShown.filter(([name, value]) => JSON.stringify(old[name]) !== JSON.stringify(value));
      summary =
        changed.map(([name, value]) => `${name} ${short(old[name], 16)}→${short(value, 28)}`).join('  ') ||
        '(no column changed)';
    } else summary = columnsShown.map(([name, value]) => `${name}=${short(value)}`).join(' ');
  }
  const time = new Date(source.ts_ms).toTimeString().slice(0, 8) + `.${String(source.ts_ms % 1000).padStart(3, '0')}`;
  const head = `${time} ${op} ${topic.padEnd(topicWidth)} ${keyText.padEnd(20)} `;
  const room = Math.max(20, columns - head.length - 1);
  const body = summary.length > room ? `${summary.slice(0, room - 1)}…` : summary;
  const opText = OP_COLOUR[op]?.(c)(c.bold(op)) ?? c.bold(op);
  return `${c.dim(time)} ${opText} ${c.cyan(topic.padEnd(topicWidth))} ${keyText.padEnd(20)} ${c.dim(body)}`;
}

/** The report's columns rows, matched, lost, extra, mismatched, right-aligned to their headers' widths. */
const COUNT_WIDTHS = [6, 8, 5, 6, 11] as const;

function countColumns(values: readonly (string | number)[]): string {
  return values.map((v, i) => String(v).padStart(COUNT_WIDTHS[i] ?? 0)).join(' ');
}

/** The verification summary (demo-verify.ts) as a small table and one verdict line. */
export function printReport(say: (text: string) => void, c: Colours, report: VerifyReport, eventsDir: string): void {
  say('');
  say(c.bold('verification'));
  say(
    `replayed ${report.events} events from ` +
      `${eventsDir} onto empty tables (r/c/u: key -> after, d: remove, t: clear) and compared`,
  );
  say(
    'every source row by primary key and every column, read in the event encoding (numeric as text, bytea as ' +
      'base64, timestamps as instants)',
  );
  const opsHeader = `events ${DEMO_OPS.join('/')}`;
  say(
    c.dim(
      `  ${'table'.padEnd(20)} ${opsHeader.padEnd(24)} ` +
        countColumns(['rows', 'matched', 'lost', 'extra', 'mismatched']),
    ),
  );
  let rows = 0;
  let matched = 0;
  let lost = 0;
  let extra = 0;
  let mismatched = 0;
  for (const t of report.tables) {
    const ops = DEMO_OPS.map((op) => t.ops[op] ?? 0).join('/');
    const total = Object.values(t.ops).reduce((a, b) => a + b, 0);
    say(
      `  ${t.table.padEnd(20)} ${`${total} (${ops})`.padEnd(24)} ` +
        countColumns([t.sourceRows, t.matched, t.lost, t.extra, t.mismatched]),
    );
    for (const example of t.examples) say(c.red(`    ${example}`));
    rows += t.sourceRows;
    matched += t.matched;
    lost += t.lost;
    extra += t.extra;
    mismatched += t.mismatched;
  }
  const verdict = report.ok ? c.green('OK') : c.red('DIFFERENCES FOUND');
  const malformed = report.malformed > 0 ? `, ${report.malformed} malformed lines` : '';
  say(
    `verified: ${report.tables.length} tables, ` +
      (`${rows} source rows, ` +
        (`${matched} matched, ` +
          (`${lost} lost, ` +
            (`${extra} extra, ` +
              `${mismatched} mismatched, ${report.duplicates} duplicate events${malformed}: ${verdict}`)))),
  );
}
