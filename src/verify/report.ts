/**
 * The text report of `pgcdc verify`: one line for the outcome, one per table with its counts, then
 * the first keys of each kind. Keys only: row values appear only when asked (--show-values).
 */
import { tableDifferent, type TableReport, type VerifyReport } from './verify.ts';

function keys(label: string, list: readonly string[], total: number, values: Readonly<Record<string, string>>): string {
  if (list.length === 0) return '';
  const more = total > list.length ? ` (and ${total - list.length} more)` : '';
  const lines = list.map((k) => `      ${k}${values[k] === undefined ? '' : `  source row: ${values[k]}`}\n`);
  return `    ${label}${more}:\n${lines.join('')}`;
}

function tableLines(t: TableReport): string {
  const status = tableDifferent(t) ? 'DIFFERENT' : 'equal';
  let out =
    `  ${t.table}: ${status}: source ${t.sourceRows} rows, sink ${t.sinkRows} rows; ` +
    `missing ${t.missing}, extra ${t.extra}, different ${t.different}` +
    `${t.keyed ? '' : ' (keyless: compared as multisets of rows)'}` +
    `${t.partial > 0 ? `; ${t.partial} rows with unchanged TOAST columns not compared` : ''}\n`;
  if (t.sink === 'absent') out += `    missing table: the sink holds nothing for it (${t.detail ?? 'no output'})\n`;
  else if (t.detail !== undefined) out += `    damaged: ${t.detail}\n`;
  if (t.malformed > 0) out += `    ${t.malformed} lines are not events of this table's format\n`;
  if (t.unreplayable !== undefined) out += `    cannot be replayed: ${t.unreplayable}\n`;
  out += keys('missing keys', t.missingKeys, t.missing, t.sourceValues);
  out += keys('extra keys', t.extraKeys, t.extra, {});
  out += keys('different keys', t.differentKeys, t.different, t.sourceValues);
  return out;
}

export function formatVerifyReport(report: VerifyReport): string {
  const where = `source at ${report.lsn}, ${report.sink} sink checkpoint ${report.sinkLsn}`;
  if (report.outcome === 'behind' && report.behind !== undefined)
    return (
      `verify: the sink is behind the source (${where}, ${report.behind.walBytes} bytes of WAL): ` +
      `${report.behind.reason}; nothing compared\n`
    );
  const differing = report.tables.filter(tableDifferent).length;
  const head =
    report.outcome === 'equal'
      ? `verify: equal: ${report.tables.length} tables (${where}) in ${report.seconds.toFixed(1)}s\n`
      : `verify: DIFFERENT: ${differing} of ${report.tables.length} tables differ (${where}) in ` +
        `${report.seconds.toFixed(1)}s\n`;
  return head + report.tables.map(tableLines).join('');
}
