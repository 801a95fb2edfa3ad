/**
 * `npm test`: runs `node --test` with the given arguments under a temporary directory of its own
 * (TMPDIR), then checks that the tests left nothing behind there.
 *
 * Each test process keeps its files under its own root in that directory and removes it when it
 * ends (test/harness/tmp.ts). Whatever is still there after the run escaped that: a test process
 * that was killed, or a test that wrote temporary files without the harness. The check names what
 * was left and its size, stops PostgreSQL servers still running from there, removes it all, and
 * fails the run, so a leak cannot come back silently.
 *
 * Usage: node --import tsx test/run.ts [node --test options] <test files...>
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, chmodSync, readdirSync, readFileSync, rmSync, statSync, lstatSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { linkSharedCaches, SHARED_CACHES, TEST_ROOT_PREFIX } from './harness/temp-names.ts';

const runRoot = mkdtempSync(path.join(tmpdir(), 'pgcdc-test-run-'));
// As root the clusters run as the postgres user, which must be able to traverse it.
chmodSync(runRoot, 0o755);
linkSharedCaches(runRoot, tmpdir());

/** Bytes under `file`, symbolic links not followed. */
function sizeOf(file: string): number {
  const info = lstatSync(file, { throwIfNoEntry: false });
  if (!info) return 0;
  if (!info.isDirectory()) return info.size;
  let total = 0;
  for (const name of readdirSync(file)) total += sizeOf(path.join(file, name));
  return total;
}

/** PostgreSQL servers (postmasters) whose data directory is under `root`. */
function serversUnder(root: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let args: string[];
    try {
      args = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    const dataDir = args[args.indexOf('-D') + 1];
    if (path.basename(args[0] ?? '') === 'postgres' && args.includes('-D') && dataDir?.startsWith(`${root}/`))
      found.push(Number(entry));
  }
  return found;
}

function alive(pid: number): boolean {
  try {
    statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

async function stopServers(pids: number[]): Promise<void> {
  for (const pid of pids) process.kill(pid, 'SIGQUIT'); // immediate shutdown: the files go next
  for (let i = 0; i < 200 && pids.some(alive); i++) await new Promise((resolve) => setTimeout(resolve, 50));
}

/**
 * Test processes still cleaning up (after Ctrl-C the runner may end before them): their roots are
 * named after their pid (test/harness/tmp.ts). Waits for them, up to a minute.
 */
async function awaitTestProcesses(): Promise<void> {
  const pids = readdirSync(runRoot).flatMap((name) => {
    const match = new RegExp(`^${TEST_ROOT_PREFIX}(\\d+)-`).exec(name);
    return match ? [Number(match[1])] : [];
  });
  for (let i = 0; i < 1200 && pids.some(alive); i++) await new Promise((resolve) => setTimeout(resolve, 50));
}

/** Reports and removes what the run left; true when it left nothing. */
async function checkLeftovers(): Promise<boolean> {
  await awaitTestProcesses();
  const servers = serversUnder(runRoot);
  const entries = readdirSync(runRoot).filter((name) => !SHARED_CACHES.includes(name));
  const sizes = entries.map((name) => ({ name, bytes: sizeOf(path.join(runRoot, name)) }));
  if (servers.length > 0) await stopServers(servers);
  rmSync(runRoot, { recursive: true, force: true, maxRetries: 3 });
  if (entries.length === 0 && servers.length === 0) {
    process.stderr.write('test run: no temporary files or servers left behind\n');
    return true;
  }
  const total = sizes.reduce((sum, s) => sum + s.bytes, 0);
  process.stderr.write(
    `test run: LEFT BEHIND ` +
      (`${entries.length} temporary entries ` +
        (`(${(total / 1024 / 1024).toFixed(1)} MB) and ` +
          `${servers.length} running PostgreSQL servers; removed and stopped now:\n`)) +
      sizes.map((s) => `  ${s.name} (${(s.bytes / 1024 / 1024).toFixed(1)} MB)\n`).join('') +
      ('a test process was killed, or a test writes temporary files without test/harness/tmp.ts (import it, or ' +
        'remove what the test creates)\n'),
  );
  return false;
}

const child = spawn(process.execPath, ['--import', 'tsx', '--test', ...process.argv.slice(2)], {
  stdio: 'inherit',
  env: { ...process.env, TMPDIR: runRoot },
});
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => child.kill(signal));
child.on('exit', (code, signal) => {
  void checkLeftovers().then((clean) => {
    process.exitCode = code ?? (signal ? 1 : 0);
    if (!clean && process.exitCode === 0) process.exitCode = 1;
  });
});
