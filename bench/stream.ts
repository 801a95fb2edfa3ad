/**
 * Change-stream throughput: pgcdc against pg_recvlogical, on the same machine in the same run.
 *
 *   npm run bench:stream -- [--rows 1000000] [--tx-size 1000] [--pg 18] [--cpu-prof <dir>] [--shaping]
 *
 * Both consumers drain the same backlog: two pgoutput slots exist at the same LSN (the second is
 * a copy of the first) before any row is inserted, then the rows are inserted in --tx-size
 * transactions, then each consumer drains its slot alone (one after the other, so they do not
 * share the two cores with each other; the walsender is part of both measurements).
 *
 * - Reference: `pg_recvlogical --start --endpos=<end> -f /dev/null` with pgoutput proto_version 1,
 *   timed from spawn to exit.
 * - pgcdc: the real CLI (`bin/pgcdc.js run ...`, the compiled build the bench makes first) with the
 *   flags a user would pass, as a child process: that is what users run, it includes process
 *   start-up, and it can be
 *   profiled with --cpu-prof without profiling the bench. Timed from spawn until the offsets file
 *   says every row is durable (checkpoint lsn past the last transaction's rows), then SIGTERM.
 *   Its output line count must equal --rows.
 *
 * With --shaping, pgcdc also drains two more copies of the slot, with the same flags plus a config:
 * `flat` (envelope.type flat) and `rules` (the Debezium envelope with a rule that hashes `v` with a
 * salt, truncates `t` to 4 characters and routes the table by a topic template), and prints each
 * one's rows/s next to the unshaped run's (docs/shaping.md, "Cost").
 *
 * The last line is `ratio <pgcdc rows/s / pg_recvlogical rows/s>`.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { SourceMap, type SourceMapPayload } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import type { EmbeddedCluster } from '../src/embedded/cluster.ts';
import { parseLsn } from '../src/protocol/lsn.ts';
import { withBenchCluster } from './bench-cluster.ts';
import { wholeNumber } from './flags.ts';
import { countLines } from './output.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DATABASE = 'bench';
const PUBLICATION = 'bench_pub';
const SLOT_PGCDC = 'bench_pgcdc';
const SLOT_REFERENCE = 'bench_reference';
const SALT_VARIABLE = 'PGCDC_BENCH_SALT';

/** The shaped runs of --shaping: a name, its YAML config. */
const SHAPINGS: readonly { readonly name: string; readonly yaml: string }[] = [
  { name: 'flat', yaml: 'envelope:\n  type: flat\n' },
  {
    name: 'rules',
    yaml:
      `shaping:\n  salt:\n    env: ${SALT_VARIABLE}\n  rules:\n    - tables: [public.bench]\n` +
      `      mask: { v: hash }\n      truncate: { t: 4 }\n      topic: '{prefix}.routed.{table}'\n`,
  },
];

const { values: flags } = parseArgs({
  options: {
    rows: { type: 'string', default: '1000000' },
    'tx-size': { type: 'string', default: '1000' },
    pg: { type: 'string', default: '18' },
    'cpu-prof': { type: 'string' },
    shaping: { type: 'boolean', default: false },
  },
});

const ROWS = wholeNumber(flags.rows, '--rows');
const TX_SIZE = wholeNumber(flags['tx-size'], '--tx-size');
const MAJOR = wholeNumber(flags.pg, '--pg');
const PROFILE_DIR = flags['cpu-prof'] === undefined ? undefined : path.resolve(flags['cpu-prof']);

function findRecvlogical(): string | undefined {
  const candidates = [
    process.env.PG_RECVLOGICAL,
    '/usr/bin/pg_recvlogical',
    spawnSync('sh', ['-c', 'command -v pg_recvlogical']).stdout.toString().trim(),
  ];
  return candidates.find((c): c is string => c !== undefined && c.length > 0 && existsSync(c));
}

const rate = (rows: number, ms: number): string => `${Math.round((rows / ms) * 1000).toLocaleString('en-US')} rows/s`;
const seconds = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;

/** Inserts the backlog; returns the LSN reached after the last commit and a threshold inside the last transaction. */
async function loadBacklog(client: pg.Client): Promise<{ endLsn: string; lastRowsLsn: string }> {
  let lastRowsLsn = '0/0';
  for (let first = 1; first <= ROWS; first += TX_SIZE) {
    const last = Math.min(ROWS, first + TX_SIZE - 1);
    await client.query('begin');
    await client.query(
      `insert into bench select g, (g * 7919) % 1000003, substr(md5(g::text), 1, 8) from ` +
        `generate_series($1::bigint, $2::bigint) g`,
      [first, last],
    );
    // Past the last transaction's rows but before its commit record: a checkpoint at or after it
    // can only be that commit's end (or later), i.e. every row is durable.
    if (last === ROWS)
      lastRowsLsn =
        (await client.query<{ lsn: string }>('select pg_current_wal_insert_lsn()::text as lsn')).rows[0]?.lsn ?? '0/0';
    await client.query('commit');
  }
  const endLsn =
    (await client.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn')).rows[0]?.lsn ?? '0/0';
  return { endLsn, lastRowsLsn };
}

function runReference(recvlogical: string, cluster: EmbeddedCluster, endLsn: string): Promise<number> {
  const args = [
    '-d',
    `host=127.0.0.1 port=${cluster.port} user=postgres dbname=${DATABASE}`,
    '--slot',
    SLOT_REFERENCE,
    '--start',
    '--no-loop',
    '-o',
    'proto_version=1',
    '-o',
    `publication_names=${PUBLICATION}`,
    `--endpos=${endLsn}`,
    '-f',
    '/dev/null',
  ];
  const started = performance.now();
  const child = spawn(recvlogical, args, {
    env: { ...process.env, PGPASSWORD: cluster.password },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve(performance.now() - started) : reject(new Error(`pg_recvlogical exited with ${code}`)),
    );
  });
}

interface PgcdcRun {
  totalMs: number;
  /** Until the engine logged `streaming` (process start, tsx, connections, startup checks). */
  startupMs: number;
}

/** Builds dist/ so bin/pgcdc.js runs compiled JavaScript, as after `npm ci`. */
function buildDist(): void {
  const result = spawnSync(
    process.execPath,
    [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', path.join(ROOT, 'tsconfig.build.json')],
    { stdio: 'inherit' },
  );
  if (result.status !== 0) throw new Error('bench: building dist/ failed');
}

/** One pgcdc run on `slot`, writing into `<workDir>/<name>/`, with `config` (a YAML file) when given. */
async function runPgcdc(
  cluster: EmbeddedCluster,
  workDir: string,
  threshold: string,
  slot = SLOT_PGCDC,
  config?: string,
): Promise<PgcdcRun> {
  const offsets = path.join(workDir, `offsets-${slot}.json`);
  const nodeArgs = PROFILE_DIR === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', PROFILE_DIR];
  const args = [
    ...nodeArgs,
    path.join(ROOT, 'bin/pgcdc.js'),
    'run',
    '--source',
    // Loopback to an embedded cluster without TLS; pgcdc's default is sslmode=require.
    `postgres://postgres@127.0.0.1:${cluster.port}/${DATABASE}?sslmode=disable`,
    // The bench creates the slot itself (before the load): stream only, no online snapshot of the table.
    '--snapshot-mode',
    'never',
    '--slot',
    slot,
    ...(config === undefined ? [] : ['--config', config]),
    '--publication',
    PUBLICATION,
    '--tables',
    'public.bench',
    '--out',
    path.join(workDir, `events-${slot}`),
    '--offsets',
    offsets,
  ];
  const target = parseLsn(threshold);
  const started = performance.now();
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { ...process.env, PGPASSWORD: cluster.password, [SALT_VARIABLE]: 'bench-salt' },
    stdio: ['ignore', 'inherit', 'pipe'],
  });
  let startupMs = 0;
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    const text = chunk.toString();
    if (startupMs === 0 && text.includes('streaming')) startupMs = performance.now() - started;
    stderr += text;
  });
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  let done = false;
  void exited.then(() => (done = true));
  // Poll the checkpoint: the offsets file is replaced atomically (rename), so a read sees a whole one.
  for (;;) {
    if (done) throw new Error(`pgcdc exited before draining the backlog:\n${stderr}`);
    const text = await readFile(offsets, 'utf8').catch(() => '');
    const lsn = text ? (JSON.parse(text) as { lsn?: string }).lsn : undefined;
    if (lsn !== undefined && parseLsn(lsn) >= target) break;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  const totalMs = performance.now() - started;
  child.kill('SIGTERM');
  const code = await exited;
  if (code !== 0) throw new Error(`pgcdc exited with ${code} after SIGTERM:\n${stderr}`);
  return { totalMs, startupMs };
}

/**
 * tsx compiles each file to one line and caches `{ code, map }` under <tmpdir>/tsx-<uid>; its maps
 * turn a profile's (line 0, column) back into a source line. Private to tsx, so best effort: a
 * frame without a map keeps its transformed position.
 */
async function tsxSourceMaps(): Promise<Map<string, SourceMap>> {
  const dir = path.join(tmpdir(), `tsx-${process.getuid?.() ?? 0}`);
  const newest = new Map<string, { map: SourceMap; mtime: number }>();
  for (const name of await readdir(dir).catch(() => [])) {
    try {
      const file = path.join(dir, name);
      const info = await stat(file);
      if (!info.isFile()) continue;
      const entry = JSON.parse(await readFile(file, 'utf8')) as { map?: SourceMapPayload };
      const source = entry.map?.sources[0];
      if (entry.map === undefined || source === undefined) continue;
      const seen = newest.get(source);
      if (seen === undefined || seen.mtime < info.mtimeMs)
        newest.set(source, { map: new SourceMap(entry.map), mtime: info.mtimeMs });
    } catch {
      // Not a cache entry.
    }
  }
  return new Map([...newest].map(([source, { map }]) => [source, map]));
}

/** Self time per function (where it is defined) from the child's .cpuprofile, for the report when the ratio is low. */
async function summariseProfile(dir: string): Promise<void> {
  // CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile: thread 0 is the main thread (1 is tsx's loader).
  const files = (await readdir(dir)).filter((f) => /\.0\.\d+\.cpuprofile$/.test(f)).sort();
  const file = files[files.length - 1];
  if (file === undefined) return;
  interface Frame {
    functionName: string;
    url: string;
    lineNumber: number;
    columnNumber: number;
  }
  const profile = JSON.parse(await readFile(path.join(dir, file), 'utf8')) as {
    nodes: { id: number; callFrame: Frame }[];
    samples: number[];
    timeDeltas: number[];
  };
  const maps = await tsxSourceMaps();
  const where = (frame: Frame): string => {
    if (!frame.url) return '';
    const source = frame.url.startsWith('file://') ? fileURLToPath(frame.url) : frame.url;
    const entry = maps.get(source)?.findEntry(frame.lineNumber, frame.columnNumber);
    const line =
      entry !== undefined && 'originalLine' in entry
        ? `${entry.originalLine + 1}`
        : `${frame.lineNumber + 1}:${frame.columnNumber + 1}`;
    return ` ${path.relative(ROOT, source) || source}:${line}`;
  };
  const byId = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
  const self = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const frame = byId.get(id);
    const delta = profile.timeDeltas[i] ?? 0;
    total += delta;
    if (!frame) return;
    const name = `${frame.functionName || '(anonymous)'}${where(frame)}`;
    self.set(name, (self.get(name) ?? 0) + delta);
  });
  console.log(
    `\nprofile ${path.join(dir, file)} (${seconds(total / 1000)} sampled): top self time, at the line where ` +
      `each function starts`,
  );
  for (const [name, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 20))
    console.log(`  ${((us / total) * 100).toFixed(1).padStart(5)}%  ${name}`);
}

async function main(): Promise<void> {
  const recvlogical = findRecvlogical();
  if (recvlogical === undefined) {
    process.stderr.write(
      'bench: pg_recvlogical is not installed (Debian: apt-get install postgresql-client); it is the reference ' +
        'this bench compares with\n',
    );
    process.exit(1);
  }
  await withBenchCluster({ prefix: 'pgcdc-bench-', major: MAJOR, databases: [DATABASE] }, (cluster, workDir) =>
    compare(recvlogical, cluster, workDir),
  );
}

/** Loads the backlog, streams it with pg_recvlogical then with pgcdc (and each --shaping), prints the ratio. */
async function compare(recvlogical: string, cluster: EmbeddedCluster, workDir: string): Promise<void> {
  const client = new pg.Client({ connectionString: cluster.url(DATABASE) });
  await client.connect();
  const version =
    (await client.query<{ v: string }>("select current_setting('server_version') as v")).rows[0]?.v ?? '?';
  await client.query('create table bench (id bigint primary key, v integer not null, t text not null)');
  await client.query(`create publication ${PUBLICATION} for table bench`);
  await client.query(`select pg_create_logical_replication_slot('${SLOT_PGCDC}', 'pgoutput')`);
  // Same LSN, same backlog (pg_copy_logical_replication_slot needs PostgreSQL 12).
  const shapedSlots = flags.shaping ? SHAPINGS.map((s) => `bench_${s.name}`) : [];
  for (const copy of [SLOT_REFERENCE, ...shapedSlots])
    if (MAJOR >= 12) await client.query(`select pg_copy_logical_replication_slot('${SLOT_PGCDC}', '${copy}')`);
    else await client.query(`select pg_create_logical_replication_slot('${copy}', 'pgoutput')`);
  const startLsn =
    (await client.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn')).rows[0]?.lsn ?? '0/0';

  const loadStarted = performance.now();
  const { endLsn, lastRowsLsn } = await loadBacklog(client);
  const walMb = (parseLsn(endLsn) - parseLsn(startLsn)) / 1024 / 1024;
  console.log(
    `PostgreSQL ${version}: ` +
      (`${ROWS.toLocaleString('en-US')} rows in ` +
        (`${Math.ceil(ROWS / TX_SIZE)} transactions of ` +
          (`${TX_SIZE}, ` +
            (`${walMb.toFixed(0)} MB of WAL ` +
              `(${startLsn} -> ${endLsn}), loaded in ${seconds(performance.now() - loadStarted)}`)))),
  );
  await client.end();

  const referenceMs = await runReference(recvlogical, cluster, endLsn);
  console.log(
    `pg_recvlogical: ` +
      (`${seconds(referenceMs)}, ` +
        `${rate(ROWS, referenceMs)} (${(walMb / (referenceMs / 1000)).toFixed(0)} MB/s of WAL)`),
  );

  buildDist();
  const run = await runPgcdc(cluster, workDir, lastRowsLsn);
  const report = async (label: string, slot: string, measured: PgcdcRun): Promise<void> => {
    const lines = await countLines(path.join(workDir, `events-${slot}`));
    if (lines !== ROWS) throw new Error(`pgcdc (${label}) wrote ${lines} lines, expected ${ROWS}`);
    console.log(
      `${`pgcdc${label === '' ? '' : ` (${label})`}:`.padEnd(16)}${seconds(measured.totalMs)}, ` +
        (`${rate(ROWS, measured.totalMs)} (start-up ${seconds(measured.startupMs)}; ` +
          (`${rate(ROWS, measured.totalMs - measured.startupMs)} after it), ` +
            `${lines.toLocaleString('en-US')} lines checked`)),
    );
  };
  await report('', SLOT_PGCDC, run);
  for (const shaping of flags.shaping ? SHAPINGS : []) {
    const config = path.join(workDir, `${shaping.name}.yaml`);
    await writeFile(config, shaping.yaml);
    const slot = `bench_${shaping.name}`;
    const shaped = await runPgcdc(cluster, workDir, lastRowsLsn, slot, config);
    await report(shaping.name, slot, shaped);
    console.log(
      `  ${shaping.name}: ${((run.totalMs - run.startupMs) / (shaped.totalMs - shaped.startupMs)).toFixed(2)} ` +
        `times the unshaped rate after start-up`,
    );
  }
  if (PROFILE_DIR !== undefined) await summariseProfile(PROFILE_DIR);
  console.log(`ratio ${(referenceMs / run.totalMs).toFixed(2)}`);
}

await main();
