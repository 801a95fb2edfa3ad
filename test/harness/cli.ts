/**
 * Drives the real `pgcdc` CLI as a child process, and reads back what it delivered.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { assertTeardownPending, eventually, onTeardown } from './pg.ts';
import { logRecords } from './process.ts';
import { onProcessExit } from './tmp.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const MAIN = path.join(ROOT, 'src', 'cli', 'main.ts');

export interface PgcdcProcess {
  readonly child: ChildProcess;
  /** Everything written to stdout / stderr so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code (or 128+signal number when killed). */
  readonly exited: Promise<number>;
  kill(signal: NodeJS.Signals): void;
}

const SIGNAL_NUMBERS: Partial<Record<NodeJS.Signals, number>> = { SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };

export function startPgcdc(args: string[], env: NodeJS.ProcessEnv = {}): PgcdcProcess {
  assertTeardownPending();
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], {
    cwd: ROOT,
    env: { ...process.env, PGCDC_TEST: undefined, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const exited = new Promise<number>((resolve) => {
    child.on('exit', (code, signal) => resolve(code ?? 128 + (signal ? (SIGNAL_NUMBERS[signal] ?? 0) : 0)));
  });
  const forget = onProcessExit(() => child.kill('SIGKILL'));
  void exited.then(forget);
  onTeardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  return { child, stdout: () => out, stderr: () => err, exited, kill: (signal) => child.kill(signal) };
}

/** Runs pgcdc to completion. */
export async function runPgcdc(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const proc = startPgcdc(args, env);
  const code = await proc.exited;
  return { code, stdout: proc.stdout(), stderr: proc.stderr() };
}

/** One delivered event, parsed. */
export interface DeliveredEvent {
  id: string;
  topic: string;
  key: Record<string, unknown> | null;
  /** Only on the two events of a primary-key change: `__debezium.newkey` (on the delete) or `__debezium.oldkey`. */
  headers?: Record<string, unknown>;
  value: {
    before: Record<string, unknown> | null;
    after: Record<string, unknown> | null;
    op: string;
    ts_ms: number;
    source: Record<string, unknown> & { lsn: number; commit_lsn: string; txId: number; table: string; schema: string };
    transaction: { id: string; total_order: number; data_collection_order: number };
  };
}

export function parseLines(text: string): DeliveredEvent[] {
  return text
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => JSON.parse(line) as DeliveredEvent);
}

/** Every event in every JSONL file of `dir` (file order within a topic). */
export async function readJsonl(dir: string): Promise<DeliveredEvent[]> {
  let files: string[];
  try {
    files = (await readdir(dir)).filter((f) => f.endsWith('.jsonl')).sort();
  } catch {
    return [];
  }
  const events: DeliveredEvent[] = [];
  // A loop, not push(...all): spreading 100k+ elements overflows the call stack.
  for (const file of files)
    for (const event of parseLines(await readFile(path.join(dir, file), 'utf8'))) events.push(event);
  return events;
}

export function lsnValue(text: string): bigint {
  const [hi = '0', lo = '0'] = text.split('/');
  return (BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`);
}

/** Orders events as PostgreSQL committed them: by commit LSN, then ordinal in the transaction. */
export function commitOrder(events: readonly DeliveredEvent[]): DeliveredEvent[] {
  return [...events].sort((a, b) => {
    const [al = '', ao = '0'] = a.id.split(':');
    const [bl = '', bo = '0'] = b.id.split(':');
    const d = lsnValue(al) - lsnValue(bl);
    // Snapshot reads (`<lsn>:r:...`) come before anything streamed at the same position; the sort is
    // stable, so reads keep their delivery order. A non-transactional message (`<lsn>:message`) is
    // decoded before the transaction that commits at its LSN.
    const ordinal = (o: string): number => (o === 'r' ? -2 : o === 'message' ? -1 : Number(o));
    return d !== 0n ? (d < 0n ? -1 : 1) : ordinal(ao) - ordinal(bo);
  });
}

export interface ReplayResult {
  /** topic -> key JSON -> row */
  tables: Map<string, Map<string, Record<string, unknown>>>;
  duplicates: number;
}

/**
 * Applies events onto empty maps in the order the sink delivered them (file order per topic),
 * as a consumer does; counts events whose id was already seen. Incremental snapshot reads are
 * placed in the stream where their window closed, so delivery order, not commit LSN, is the truth.
 */
export function replay(events: readonly DeliveredEvent[]): ReplayResult {
  const tables = new Map<string, Map<string, Record<string, unknown>>>();
  const seen = new Set<string>();
  let duplicates = 0;
  for (const event of events) {
    if (seen.has(event.id)) {
      duplicates++;
      continue;
    }
    seen.add(event.id);
    let rows = tables.get(event.topic);
    if (!rows) tables.set(event.topic, (rows = new Map<string, Record<string, unknown>>()));
    const op = event.value.op;
    if (op === 't') rows.clear();
    else if (op === 'd') rows.delete(JSON.stringify(event.key));
    else if (op === 'c' || op === 'u' || op === 'r') {
      if (op === 'u' && event.value.before) rows.delete(JSON.stringify(keyOf(event.value.before, event.key)));
      rows.set(JSON.stringify(event.key), event.value.after ?? {});
    }
  }
  return { tables, duplicates };
}

function keyOf(row: Record<string, unknown>, key: Record<string, unknown> | null): Record<string, unknown> | null {
  if (!key) return null;
  return Object.fromEntries(Object.keys(key).map((k) => [k, row[k]]));
}

export interface Comparison {
  lost: number;
  extra: number;
  mismatched: number;
}

/** Compares replayed rows with source rows (both keyed by the event key JSON). */
export function compareRows(
  replayed: Map<string, Record<string, unknown>> | undefined,
  source: Map<string, Record<string, unknown>>,
): Comparison {
  const got = replayed ?? new Map<string, Record<string, unknown>>();
  let lost = 0;
  let mismatched = 0;
  for (const [key, row] of source) {
    const other = got.get(key);
    if (!other) lost++;
    else if (JSON.stringify(other) !== JSON.stringify(row)) mismatched++;
  }
  let extra = 0;
  for (const key of got.keys()) if (!source.has(key)) extra++;
  return { lost, extra, mismatched };
}

/** `url` without its password (and as `user`, when given): what a command line may show. */
export function withoutPassword(url: string, user?: string): string {
  const u = new URL(url);
  u.password = '';
  if (user) u.username = user;
  return u.toString();
}

/** A test database as the commands see it: its URL and its name (which names its slot and publication). */
export type CommandTarget = { readonly url: string; readonly name: string };

/**
 * `--source`, `--slot s_<db>` and `--publication p_<db>`: where every command of a test points
 * (`source` instead of the database's own URL, e.g. without the password).
 */
export function sourceArgs(db: CommandTarget, source: string = db.url): string[] {
  return ['--source', source, '--slot', `s_${db.name}`, '--publication', `p_${db.name}`];
}

/** JSONL output under `dir` (`events/`, `offsets.json`) and JSON logs: what a test reads back. */
export function jsonlArgs(dir: string): string[] {
  return ['--out', path.join(dir, 'events'), '--offsets', path.join(dir, 'offsets.json'), '--log-format', 'json'];
}

/**
 * The arguments of a `pgcdc run` (or `drain`, the same capture stopped once caught up) capturing
 * `tables` of `db` into JSONL under `dir` (`events/`, `offsets.json`), slot `s_<db>` and publication
 * `p_<db>`, with JSON logs; `extra` follows.
 */
export function captureArgs(
  db: CommandTarget,
  dir: string,
  tables: string,
  extra: readonly string[] = [],
  command: 'run' | 'drain' = 'run',
): string[] {
  return [command, ...sourceArgs(db), '--tables', tables, ...jsonlArgs(dir), ...extra];
}

/** What `setupArgs` is told beside the database. */
export interface SetupOptions {
  readonly platform: string;
  /** The capture user setup creates. */
  readonly user: string;
  readonly tables: string;
  /** Also `--publication p_<db>` (else setup's default name). */
  readonly publication?: boolean;
  /** `--apply` (else setup prints its plan). */
  readonly apply?: boolean;
}

/**
 * The arguments of `pgcdc setup` on `db` by its admin URL without the password (the password comes
 * from PGCDC_ADMIN_PASSWORD), slot `s_<db>`; `extra` follows.
 */
export function setupArgs(db: CommandTarget, options: SetupOptions, extra: readonly string[] = []): string[] {
  return [
    'setup',
    '--platform',
    options.platform,
    '--user',
    options.user,
    '--tables',
    options.tables,
    '--slot',
    `s_${db.name}`,
    ...(options.publication ? ['--publication', `p_${db.name}`] : []),
    ...(options.apply ? ['--apply'] : []),
    '--admin-url',
    withoutPassword(db.url),
    ...extra,
  ];
}

/** Resolves once `proc` logged that it streams (its slot is read again), or rejects if it exited. */
export async function awaitStreaming(proc: PgcdcProcess, what: string): Promise<void> {
  await eventually(
    () => {
      if (proc.child.exitCode !== null) throw new Error(`pgcdc exited (${proc.child.exitCode}): ${proc.stderr()}`);
      return logRecords(proc.stderr()).some((r) => r.msg === 'streaming') ? true : undefined;
    },
    what,
    120_000,
  );
}
