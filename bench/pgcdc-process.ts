/**
 * For the benches (kafka.ts, sinks.ts): the real pgcdc CLI (compiled, as after `npm ci`) as a child process,
 * streaming into the sink its arguments name.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { EmbeddedCluster } from '../src/embedded/cluster.ts';
import { parseLsn } from '../src/protocol/lsn.ts';
import type { Lsn } from '../src/protocol/messages.ts';
import { spawnMeasured, type ProcessUsage } from './process-usage.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** A clean stop (SIGTERM) that takes longer is reported as a hang. */
const STOP_TIMEOUT_MS = 30_000;

export type Delivery = 'exactly-once' | 'at-least-once';

export interface PgcdcOptions {
  cluster: EmbeddedCluster;
  database: string;
  /** The sink's flags: `['--sink', 'kafka', '--kafka-bootstrap', ...]` (kafkaSinkArgs). */
  sink: readonly string[];
  slot: string;
  publication: string;
  tables: string;
  prefix: string;
  workDir: string;
  /** Longest an event waits for its batch (batch.maxDelayMs); pgcdc's default when absent. */
  maxDelayMs?: number;
  /** Writes a V8 CPU profile of the pgcdc process there. */
  profileDir?: string | undefined;
  /** `--snapshot-mode` (default `never`: the bench created the slot, stream only). */
  snapshotMode?: string;
  /** Runs pgcdc under GNU time, whose report goes there: `usage()` reads it (bench/process-usage.ts). */
  usageFile?: string;
}

let built = false;
/** Builds dist/ once so bin/pgcdc.js runs compiled JavaScript, as after `npm ci`. */
function buildDist(): void {
  if (built) return;
  const result = spawnSync(
    process.execPath,
    [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', path.join(ROOT, 'tsconfig.build.json')],
    { stdio: 'inherit' },
  );
  if (result.status !== 0) throw new Error('bench: building dist/ failed');
  built = true;
}

export interface RunningPgcdc {
  child: ChildProcess;
  started: number;
  offsets: string;
  /** ms from spawn until pgcdc logged that it streams (0 while it has not). */
  startupMs: () => number;
  stderr: () => string;
  exited: Promise<number | null>;
  /** SIGTERM, and throws unless it exits 0. */
  stop: () => Promise<void>;
  /** CPU and peak memory once it exited (only with `usageFile`). */
  usage?: () => Promise<ProcessUsage>;
}

/** The flags of the Kafka sink in one delivery mode. */
export function kafkaSinkArgs(bootstrap: string, mode: Delivery): string[] {
  return ['--sink', 'kafka', '--kafka-bootstrap', bootstrap, '--kafka-delivery', mode];
}

/** Spawns `pgcdc run --sink ... ` (stream only: the bench created the slot). */
export async function startPgcdc(o: PgcdcOptions): Promise<RunningPgcdc> {
  buildDist();
  await mkdir(o.workDir, { recursive: true });
  const offsets = path.join(o.workDir, 'offsets.json');
  const config = path.join(o.workDir, 'pgcdc.yaml');
  await writeFile(config, o.maxDelayMs === undefined ? '{}\n' : `batch:\n  maxDelayMs: ${o.maxDelayMs}\n`);
  const nodeArgs = o.profileDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', o.profileDir];
  const args = [
    ...nodeArgs,
    path.join(ROOT, 'bin/pgcdc.js'),
    'run',
    '--config',
    config,
    '--source',
    // Loopback to an embedded cluster without TLS; pgcdc's default is sslmode=require.
    `postgres://postgres@127.0.0.1:${o.cluster.port}/${o.database}?sslmode=disable`,
    '--snapshot-mode',
    o.snapshotMode ?? 'never',
    '--slot',
    o.slot,
    '--publication',
    o.publication,
    '--tables',
    o.tables,
    ...o.sink,
    '--topic-prefix',
    o.prefix,
    '--offsets',
    offsets,
  ];
  const spawnOptions = {
    cwd: ROOT,
    env: { ...process.env, PGPASSWORD: o.cluster.password },
    stdio: ['ignore', 'inherit', 'pipe'] as ['ignore', 'inherit', 'pipe'],
  };
  const measured =
    o.usageFile === undefined ? undefined : spawnMeasured(process.execPath, args, o.usageFile, spawnOptions);
  const started = measured?.started ?? performance.now();
  const child = measured?.child ?? spawn(process.execPath, args, spawnOptions);
  // Under GNU time the signal goes to pgcdc itself, time's child.
  const signal = async (name: NodeJS.Signals): Promise<void> => {
    if (measured === undefined) child.kill(name);
    else process.kill(await measured.target(), name);
  };
  let startupMs = 0;
  let stderr = '';
  // Also kept in <workDir>/pgcdc.log, for a run that hangs.
  const log = createWriteStream(path.join(o.workDir, 'pgcdc.log'));
  child.stderr?.on('data', (chunk: Buffer) => {
    const text = chunk.toString();
    if (startupMs === 0 && text.includes('streaming')) startupMs = performance.now() - started;
    stderr += text;
    log.write(chunk);
  });
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  return {
    child,
    started,
    offsets,
    startupMs: () => startupMs,
    stderr: () => stderr,
    exited,
    ...(measured === undefined ? {} : { usage: measured.usage }),
    stop: async () => {
      await signal('SIGTERM');
      let hung = false;
      const timer = setTimeout(() => {
        hung = true;
        void signal('SIGKILL');
      }, STOP_TIMEOUT_MS);
      const code = await exited;
      clearTimeout(timer);
      if (hung) throw new Error(`pgcdc did not exit within ${STOP_TIMEOUT_MS} ms of SIGTERM:\n${stderr}`);
      if (code !== 0) throw new Error(`pgcdc exited with ${code} after SIGTERM:\n${stderr}`);
    },
  };
}

/** The LSN of the checkpoint in pgcdc's offsets file (replaced atomically: a read sees a whole one). */
export async function checkpointLsn(offsets: string): Promise<Lsn | undefined> {
  const text = await readFile(offsets, 'utf8').catch(() => '');
  const lsn = text ? (JSON.parse(text) as { lsn?: string }).lsn : undefined;
  return lsn === undefined ? undefined : parseLsn(lsn);
}

/** pgcdc from spawn until its checkpoint reaches `threshold`, then SIGTERM (usage only with `usageFile`). */
export async function runPgcdc(
  o: PgcdcOptions & { threshold: string },
): Promise<{ totalMs: number; startupMs: number; usage?: ProcessUsage }> {
  const pgcdc = await startPgcdc(o);
  const target = parseLsn(o.threshold);
  let done = false;
  void pgcdc.exited.then(() => (done = true));
  for (;;) {
    if (done) throw new Error(`pgcdc exited before draining the backlog:\n${pgcdc.stderr()}`);
    const lsn = await checkpointLsn(pgcdc.offsets);
    if (lsn !== undefined && lsn >= target) break;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  const totalMs = performance.now() - pgcdc.started;
  await pgcdc.stop();
  const usage = await pgcdc.usage?.();
  return { totalMs, startupMs: pgcdc.startupMs(), ...(usage === undefined ? {} : { usage }) };
}
