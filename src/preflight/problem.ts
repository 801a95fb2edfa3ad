/**
 * What `pgcdc check` reports: problems as data. Each one names what is wrong and how to fix it, so
 * the same list prints for people (grouped errors, then warnings) and as JSON for machines.
 */

export type Severity = 'error' | 'warning';

export interface Problem {
  readonly severity: Severity;
  /** Stable, kebab-case: scripts may match on it (e.g. `wal-level`, `replica-identity-missing`). */
  readonly code: string;
  /** What is wrong, naming the object (never a password or a full connection string). */
  readonly message: string;
  /** What to do: SQL to run, a parameter to set, a flag to change. */
  readonly fix: string;
}

export interface CheckReport {
  /** `user@host:port/database`, safe to print. */
  readonly target: string;
  /** Facts worth showing even when all is well (server version, TLS, tables captured). */
  readonly notes: readonly string[];
  readonly problems: readonly Problem[];
}

export function errorsOf(report: CheckReport): Problem[] {
  return report.problems.filter((p) => p.severity === 'error');
}

export function warningsOf(report: CheckReport): Problem[] {
  return report.problems.filter((p) => p.severity === 'warning');
}

function indent(text: string, prefix: string): string {
  return text
    .split('\n')
    .map((line) => `${prefix}${line}`)
    .join('\n');
}

/** The human form: a header, notes, then errors and warnings each with its fix, then a verdict. */
export function formatReport(report: CheckReport): string {
  const lines: string[] = [`pgcdc check: ${report.target}`];
  for (const note of report.notes) lines.push(`  ${note}`);
  const groups: [string, Problem[]][] = [
    ['Errors', errorsOf(report)],
    ['Warnings', warningsOf(report)],
  ];
  for (const [title, problems] of groups) {
    if (problems.length === 0) continue;
    lines.push('', `${title} (${problems.length}):`);
    for (const p of problems) {
      lines.push(`  - [${p.code}] ${p.message}`);
      lines.push(indent(`fix: ${p.fix}`, '      '));
    }
  }
  const errors = errorsOf(report).length;
  const warnings = warningsOf(report).length;
  lines.push(
    '',
    errors > 0
      ? `FAILED: ${errors} error${errors === 1 ? '' : 's'}, ${warnings} warning${warnings === 1 ? '' : 's'}`
      : `OK${warnings > 0 ? ` with ${warnings} warning${warnings === 1 ? '' : 's'}` : ''}: pgcdc can capture ` +
          `from this database`,
  );
  return `${lines.join('\n')}\n`;
}

/** The machine form: `{ ok, target, notes, errors, warnings }`. */
export function reportJson(report: CheckReport): string {
  return `${JSON.stringify(
    {
      ok: errorsOf(report).length === 0,
      target: report.target,
      notes: report.notes,
      errors: errorsOf(report),
      warnings: warningsOf(report),
    },
    null,
    2,
  )}\n`;
}
