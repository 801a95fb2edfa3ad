/**
 * The chaos scenarios: each builds a ChaosBench, lets pgcdc stream under load, injects its fault at
 * random moments `iterations` times, and returns the verdict and the recovery times. A scenario
 * whose tools are missing here says why instead of running (`unavailable`).
 *
 * Every iteration: a marker is delivered first (pgcdc is streaming: the previous fault is over),
 * then a random pause (the random moment), the fault, and a marker inserted once the fault is
 * lifted must be delivered. Recovery is measured from the end of the fault (the moment of a kill,
 * or when the server, the network, the sink or the disk is back) to pgcdc's next `streaming` line
 * (to the marker's delivery when pgcdc never lost its stream, e.g. a short stall).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { appendFile, mkdtemp, rmdir, unlink } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { MAIN } from '../harness/cli.ts';
import { eventually } from '../harness/pg.ts';
import { pgbenchAvailable } from '../harness/pgbench.ts';
import { natsAvailable } from '../harness/nats.ts';
import { onProcessExit } from '../harness/tmp.ts';
import { ChaosBench, type BenchOptions, type Verdict } from './bench.ts';

export type Rng = () => number;

/** A deterministic generator (mulberry32): the same seed gives the same random moments. */
export function seeded(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A whole number in [min, max]. */
const between = (rng: Rng, min: number, max: number): number => min + Math.floor(rng() * (max - min + 1));

export interface Iteration {
  readonly iteration: number;
  /** What was done (the kind of network fault, how long an outage lasted...). */
  readonly fault: string;
  /** End of the fault -> pgcdc's next `streaming` line (or the marker's delivery when it kept streaming). */
  readonly recoveryMs: number;
  /** End of the fault -> a change made after it was in the sink. */
  readonly deliveredMs: number;
  /** pgcdc started its stream again (a `streaming` line after the fault). */
  readonly reconnected: boolean;
}

export interface ScenarioResult {
  readonly scenario: string;
  readonly iterations: Iteration[];
  readonly verdict: Verdict;
  /** Exit codes of pgcdc processes that ended by themselves (restarted as a service manager would). */
  readonly unplannedExits: number[];
  /** The last stderr line of each of those processes. */
  readonly exitLines: string[];
}

/** One fault: returns once the fault is lifted, with a description. */
type Fault = (bench: ChaosBench, rng: Rng, iteration: number) => Promise<string>;

export interface Scenario {
  readonly name: string;
  readonly defaultIterations: number;
  readonly what: string;
  /** Why the scenario cannot run here, or undefined. */
  unavailable(): string | undefined;
  run(iterations: number, rng: Rng, log: (line: string) => void): Promise<ScenarioResult>;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The fault loop shared by the scenarios; `expected` names the extra acct rows the fault explains. */
async function runScenario(
  name: string,
  options: BenchOptions,
  iterations: number,
  rng: Rng,
  log: (line: string) => void,
  fault: Fault,
  expected: (bench: ChaosBench, windows: [number, number][]) => Promise<Set<string>> = () => Promise.resolve(new Set()),
): Promise<ScenarioResult> {
  const bench = await ChaosBench.create(options);
  const done: Iteration[] = [];
  const windows: [number, number][] = [];
  try {
    await bench.start();
    for (let i = 1; i <= iterations; i++) {
      await bench.markerDelivered();
      // The random moment: somewhere in the next 0.2-3 s of load.
      await sleep(between(rng, 200, 3000));
      const t0 = Date.now();
      const what = await fault(bench, rng, i);
      const end = Date.now();
      const delivered = await bench.markerDelivered();
      // The stream that delivered the marker: pgcdc's last `streaming` line since the fault. One
      // that began while the fault lasted (a disk still full, say) did not end it: then the
      // delivery of the marker is when pgcdc was back.
      const streaming = bench.lastStreamingWithin(t0, delivered);
      windows.push([t0, streaming ?? delivered]);
      const iteration: Iteration = {
        iteration: i,
        fault: what,
        recoveryMs: streaming !== undefined && streaming >= end ? streaming - end : delivered - end,
        deliveredMs: delivered - end,
        reconnected: streaming !== undefined,
      };
      done.push(iteration);
      log(
        `${name} #${i}: ${what}; ${iteration.reconnected ? 'streaming again' : 'stream kept'} after ` +
          `${iteration.recoveryMs} ms, change delivered after ${iteration.deliveredMs} ms`,
      );
    }
    const verdict = await bench.finish(await expected(bench, windows));
    return {
      scenario: name,
      iterations: done,
      verdict,
      unplannedExits: bench.unplannedExits,
      exitLines: bench.exitLines,
    };
  } catch (error) {
    const tail = bench.processes.at(-1)?.stderr().slice(-3000) ?? '';
    throw new Error(`${name}: ${error instanceof Error ? error.message : String(error)}\npgcdc's last words:\n${tail}`);
  } finally {
    await bench.close();
  }
}

const needsPgbench = (): string | undefined => (pgbenchAvailable() ? undefined : 'pgbench is not installed');

function scenario(
  name: string,
  defaultIterations: number,
  what: string,
  fault: Fault,
  options: () => BenchOptions = () => ({}),
  unavailable: () => string | undefined = needsPgbench,
): Scenario {
  return {
    name,
    defaultIterations,
    what,
    unavailable,
    run: (iterations, rng, log) => runScenario(name, options(), iterations, rng, log, fault),
  };
}

async function terminateWalsender(bench: ChaosBench): Promise<void> {
  await eventually(async () => {
    const rows = await bench.query<{ done: boolean | null }>(
      `select pg_terminate_backend(active_pid) as done from pg_replication_slots ` +
        `where slot_name = $1 and active_pid is not null`,
      [bench.slot],
    );
    return rows[0]?.done ? true : undefined;
  }, 'an active walsender to terminate');
}

/** Fills the file system of `file` until a write fails with ENOSPC. */
async function fill(file: string): Promise<void> {
  const chunk = Buffer.alloc(256 * 1024);
  for (let size = chunk.length; size >= 1; size = Math.floor(size / 2)) {
    for (;;) {
      try {
        await appendFile(file, chunk.subarray(0, size));
      } catch (error) {
        if (error instanceof Error && 'code' in error && error.code === 'ENOSPC') break;
        throw error;
      }
    }
  }
}

/** `pgcdc run --help` names `--on-lost` (the lost-slot policy is built). */
let onLost: boolean | undefined;
export function onLostAvailable(): boolean {
  if (onLost !== undefined) return onLost;
  const help = spawnSync(process.execPath, ['--import', 'tsx', MAIN, 'run', '--help'], { encoding: 'utf8' });
  onLost = help.stdout.includes('--on-lost');
  return onLost;
}

const sigkill = scenario('sigkill', 50, 'SIGKILL pgcdc; a service manager starts it again', async (bench) => {
  await bench.kill();
  return 'SIGKILL';
});

const pgRestart = scenario('pg-restart', 20, 'PostgreSQL immediate stop, then start', async (bench) => {
  await bench.cluster.restart('immediate');
  return 'immediate restart';
});

const walsenderKill = scenario('walsender-kill', 20, "pg_terminate_backend on pgcdc's walsender", async (bench) => {
  await terminateWalsender(bench);
  return 'walsender terminated';
});

const network = scenario(
  'network',
  20,
  'through a loopback TCP proxy: connections reset, all traffic stalled, the replication connection half-open',
  async (bench, rng) => {
    const proxy = bench.proxy;
    if (!proxy) throw new Error('the network scenario needs the proxy');
    const kind = between(rng, 0, 3);
    if (kind === 0) return `cut: ${proxy.cut('replication')} replication connection(s) reset`;
    if (kind === 1) return `cut: all ${proxy.cut()} connection(s) reset`;
    if (kind === 2) {
      const ms = between(rng, 1000, 8000);
      await proxy.stall(ms);
      return `stall ${ms} ms`;
    }
    return `half-open: ${proxy.halfOpen('replication')} replication connection(s)`;
  },
  () => ({ proxy: true }),
);

const sinkOutage = scenario(
  'sink-outage',
  10,
  'nats-server (the sink: JetStream) SIGKILLed, started again on the same port and store',
  async (bench, rng) => {
    const nats = bench.nats;
    if (!nats) throw new Error('the sink-outage scenario needs NATS');
    const ms = between(rng, 1000, 6000);
    await nats.kill();
    // The outage's duration, drawn at random: the fault itself, not a wait for some state.
    await sleep(ms);
    await nats.restart();
    return `nats down ${ms} ms`;
  },
  () => ({ sink: 'nats' }),
  () => needsPgbench() ?? (natsAvailable() ? undefined : 'nats-server is not installed'),
);

/** A tmpfs of 256 MB for the JSONL directory, unmounted by `release`. */
async function smallDisk(): Promise<{ mountPoint: string; release: () => Promise<void> }> {
  const mountPoint = await mkdtemp(path.join(tmpdir(), 'pgcdc-chaos-disk-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256m', 'tmpfs', mountPoint]);
  // Should the runner die first: unmounted at exit, before the temp root is removed.
  const forget = onProcessExit(() => spawnSync('umount', ['-l', mountPoint]));
  return {
    mountPoint,
    release: async () => {
      execFileSync('umount', ['-l', mountPoint]);
      forget();
      await rmdir(mountPoint);
    },
  };
}

const diskFull: Scenario = {
  name: 'disk-full',
  defaultIterations: 10,
  what: "the JSONL sink's directory (a 256 MB tmpfs) filled to the last byte, then freed",
  unavailable: () => needsPgbench() ?? (userInfo().uid === 0 ? undefined : 'root is needed to mount a small tmpfs'),
  async run(iterations, rng, log) {
    const disk = await smallDisk();
    try {
      return await runScenario(
        'disk-full',
        { out: path.join(disk.mountPoint, 'events') },
        iterations,
        rng,
        log,
        async () => {
          const filler = path.join(disk.mountPoint, 'filler');
          await fill(filler);
          const ms = between(rng, 1000, 5000);
          // The disk stays full for a random while under load, then space is freed.
          await sleep(ms);
          await unlink(filler);
          return `full for ${ms} ms`;
        },
      );
    } finally {
      await disk.release();
    }
  },
};

/**
 * The slot is dropped under pgcdc (its walsender terminated first, as often as needed): with
 * `--on-lost resnapshot` pgcdc creates a new slot and snapshots again. Rows deleted between the
 * fault and the new snapshot (or shortly before the fault, not yet streamed) stay in the sink as
 * extras: counted apart, as the policy documents.
 */
const slotLoss: Scenario = {
  name: 'slot-loss',
  defaultIterations: 10,
  what: 'the replication slot dropped at a random moment, pgcdc run with --on-lost resnapshot',
  unavailable: () =>
    needsPgbench() ?? (onLostAvailable() ? undefined : 'not available: `pgcdc run --help` has no --on-lost option yet'),
  run: (iterations, rng, log) =>
    runScenario(
      'slot-loss',
      { extra: ['--on-lost', 'resnapshot'] },
      iterations,
      rng,
      log,
      async (bench) => {
        await eventually(async () => {
          await bench.query(
            `select pg_terminate_backend(active_pid) from pg_replication_slots ` +
              `where slot_name = $1 and active_pid is not null`,
            [bench.slot],
          );
          const rows = await bench.query<{ n: string }>(
            `select count(*)::text as n from (select pg_drop_replication_slot(slot_name) from pg_replication_slots ` +
              `where slot_name = $1 and active_pid is null) d`,
            [bench.slot],
          );
          return rows[0]?.n === '1' ? true : undefined;
        }, 'the slot dropped');
        return 'slot dropped';
      },
      // A delete committed up to 5 s before the drop may not have been streamed yet.
      (bench, windows) => bench.deletedWithin(windows.map(([from, to]) => [from - 5000, to])),
    ),
};

export const SCENARIOS: readonly Scenario[] = [
  sigkill,
  pgRestart,
  walsenderKill,
  network,
  sinkOutage,
  diskFull,
  slotLoss,
];
