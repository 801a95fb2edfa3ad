/**
 * The pure parts of `pgcdc teardown` (teardown-command.ts runs it): what it will remove, as a plan
 * printed before anything happens, and the SQL of each step, every identifier quoted
 * (postgres/quote.ts).
 *
 * What it removes: the replication slot, the publication, the signal and heartbeat tables that
 * `pgcdc setup` created for this publication (marked by its comment: selection/own-tables.ts), and
 * with --remove-offsets the local offsets file and its side files. Tables without the mark are the
 * user's: they are listed as kept, never dropped.
 */
import { quoteIdent, quoteLiteral, quoteQualified } from '../postgres/quote.ts';
import type { OwnTable } from '../selection/own-tables.ts';

export interface TeardownSlot {
  readonly name: string;
  /** The database the slot belongs to (pg_replication_slots.database). */
  readonly database: string | null;
  readonly plugin: string | null;
  readonly confirmed: string | null;
  /** WAL the slot keeps on the server (current WAL position minus restart_lsn), bytes. */
  readonly retainedBytes: number | null;
}

export interface TeardownPlan {
  /** Undefined: no such slot (nothing to drop). */
  readonly slot: TeardownSlot | undefined;
  readonly slotName: string;
  /** The publication exists. */
  readonly publication: boolean;
  readonly publicationName: string;
  /** pgcdc's own tables, dropped. */
  readonly tables: readonly OwnTable[];
  /** Configured signal/heartbeat tables that setup did not create: kept. */
  readonly kept: readonly string[];
  /** Local files removed (--remove-offsets), those that exist. */
  readonly files: readonly string[];
  /** Why some offsets are not removed here (e.g. they are kept in the sink), if so. */
  readonly filesNote: string | undefined;
}

export type TeardownStep =
  | { readonly kind: 'sql'; readonly title: string; readonly sql: string }
  | { readonly kind: 'file'; readonly title: string; readonly path: string };

/** The steps of a plan, in order: slot, publication, tables, files. */
export function teardownSteps(plan: TeardownPlan): TeardownStep[] {
  const steps: TeardownStep[] = [];
  if (plan.slot !== undefined)
    steps.push({
      kind: 'sql',
      title: `replication slot ${plan.slot.name}`,
      sql: `select pg_drop_replication_slot(${quoteLiteral(plan.slot.name)})`,
    });
  if (plan.publication)
    steps.push({
      kind: 'sql',
      title: `publication ${plan.publicationName}`,
      sql: `DROP PUBLICATION IF EXISTS ${quoteIdent(plan.publicationName)}`,
    });
  for (const t of plan.tables)
    steps.push({
      kind: 'sql',
      title: `${t.kind} table ${t.schema}.${t.table} (created by pgcdc setup)`,
      sql: `DROP TABLE IF EXISTS ${quoteQualified(t.schema, t.table)}`,
    });
  for (const file of plan.files) steps.push({ kind: 'file', title: `local file ${file}`, path: file });
  return steps;
}

function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

/** The plan as printed before anything happens (and alone with --dry-run). */
export function formatPlan(plan: TeardownPlan, dryRun: boolean): string {
  const lines: string[] = [dryRun ? 'pgcdc teardown (dry run: nothing is removed):' : 'pgcdc teardown will remove:'];
  const steps = teardownSteps(plan);
  for (const step of steps) {
    let detail = '';
    if (step.kind === 'sql' && step.title.startsWith('replication slot') && plan.slot !== undefined) {
      const s = plan.slot;
      detail =
        ` (${s.plugin ?? 'physical'}` +
        `${s.database === null ? '' : `, database ${s.database}`}` +
        `${s.confirmed === null ? '' : `, confirmed ${s.confirmed}`}` +
        `${s.retainedBytes === null ? '' : `, holding ${bytes(s.retainedBytes)} of WAL`}): changes not yet ` +
        'captured are lost with it';
    }
    lines.push(`  - ${step.title}${detail}`);
  }
  if (steps.length === 0) lines.push('  nothing: no slot, publication or table of pgcdc was found');
  if (plan.slot === undefined) lines.push(`  (no replication slot ${plan.slotName})`);
  if (!plan.publication) lines.push(`  (no publication ${plan.publicationName})`);
  for (const name of plan.kept) lines.push(`  kept: ${name} (not created by pgcdc setup: yours)`);
  if (plan.filesNote !== undefined) lines.push(`  note: ${plan.filesNote}`);
  return `${lines.join('\n')}\n`;
}
