/**
 * For the benches: a child process run under GNU time (`/usr/bin/time`, Debian package `time`), so
 * its CPU time (user + system, its waited-for descendants included) and its peak resident set
 * come from the kernel's own accounting (wait4's rusage) rather than from polling /proc, which
 * would miss whatever the process does between the last poll and its exit.
 *
 * time itself is the direct child; signals meant for the tool go to `target()`, time's own child
 * (time would die of a SIGTERM instead of passing it on).
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';

const TIME = '/usr/bin/time';

/** What the kernel accounted for one process (and the descendants it waited for). */
export interface ProcessUsage {
  /** User + system CPU seconds. */
  readonly cpuSeconds: number;
  /** Peak resident set size, KiB (ru_maxrss: the largest single process, not a sum). */
  readonly maxRssKb: number;
}

export interface MeasuredChild {
  /** GNU time, whose child is the tool. */
  readonly child: ChildProcess;
  /** performance.now() at spawn. */
  readonly started: number;
  /** The exit code of the tool (time passes it on). */
  readonly exited: Promise<number | null>;
  /** The tool's pid, once time has forked it. */
  target: () => Promise<number>;
  /** The tool's usage, after it exited. */
  usage: () => Promise<ProcessUsage>;
}

/** Whether GNU time is installed (the benches that report CPU and memory need it). */
export function timeAvailable(): boolean {
  return existsSync(TIME);
}

/** Spawns `program args` under GNU time, which writes its report into `usageFile`. */
export function spawnMeasured(
  program: string,
  args: readonly string[],
  usageFile: string,
  options: SpawnOptions,
): MeasuredChild {
  if (!timeAvailable()) throw new Error(`bench: ${TIME} is missing (Debian: apt-get install time)`);
  const started = performance.now();
  const child = spawn(TIME, ['-f', '%U %S %M', '-o', usageFile, program, ...args], options);
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
  let pid: number | undefined;
  let ended = false;
  void exited.then(() => (ended = true)).catch(() => undefined);
  return {
    child,
    started,
    exited,
    target: async () => {
      while (pid === undefined) {
        if (ended) throw new Error(`bench: ${program} exited at once`);
        // Linux lists a task's children in /proc/<pid>/task/<tid>/children.
        const text = await readFile(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').catch(() => '');
        const first = Number(text.trim().split(/\s+/)[0]);
        if (Number.isInteger(first) && first > 0) pid = first;
        else await new Promise((resolve) => setTimeout(resolve, 2));
      }
      return pid;
    },
    usage: async () => {
      await exited;
      // With -o, time also writes "Command exited with non-zero status N" before the format line.
      const lines = (await readFile(usageFile, 'utf8')).trim().split('\n');
      const [user, system, rss] = (lines[lines.length - 1] ?? '').split(' ').map(Number);
      if (user === undefined || system === undefined || rss === undefined || [user, system, rss].some(Number.isNaN))
        throw new Error(`bench: unreadable report of ${TIME}: ${lines.join(' | ')}`);
      return { cpuSeconds: user + system, maxRssKb: rss };
    },
  };
}
