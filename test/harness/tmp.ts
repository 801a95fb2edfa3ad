/**
 * One temporary root per test process, removed when the process ends, however it ends.
 *
 * Importing this module (test/harness/pg.ts does; unit tests that write files import it directly)
 * creates `<TMPDIR>/pgcdc-test-<pid>-XXXXXX` and points TMPDIR at it, so everything that asks
 * `os.tmpdir()` afterwards lands under it: the tests' own mkdtemp folders, the harness's clusters,
 * sshd and pgbouncer folders, and the pgcdc processes the tests start (they inherit TMPDIR). A
 * test that forgets to clean up therefore leaves nothing behind once its process ends.
 *
 * At exit (normal end, an uncaught error, or SIGINT/SIGTERM/SIGHUP such as `timeout` sends), the
 * synchronous steps registered with `onProcessExit` run first (they kill child processes and stop
 * clusters that are still running: their files are under the root), then the root is removed.
 * A SIGKILLed test process cannot clean up: `npm test` (test/run.ts) reports what such a process
 * left behind.
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { linkSharedCaches, TEST_ROOT_PREFIX } from './temp-names.ts';

/** This process's temporary root (TMPDIR points here once this module is loaded). */
export const TEST_TMP_ROOT = mkdtempSync(path.join(tmpdir(), `${TEST_ROOT_PREFIX}${process.pid}-`));
// As root, clusters run as the postgres user, which must be able to traverse the root.
chmodSync(TEST_TMP_ROOT, 0o755);
linkSharedCaches(TEST_TMP_ROOT, tmpdir());
process.env.TMPDIR = TEST_TMP_ROOT;

const exitSteps = new Set<() => void>();

/**
 * Registers a synchronous step for the end of the process (nothing can be awaited then). Returns
 * a function that unregisters it, for when the thing it stops was stopped the ordinary way.
 */
export function onProcessExit(step: () => void): () => void {
  exitSteps.add(step);
  return () => exitSteps.delete(step);
}

let cleaned = false;
function cleanUp(): void {
  if (cleaned) return;
  cleaned = true;
  for (const step of [...exitSteps].reverse()) {
    try {
      step();
    } catch {
      // Best effort: the next steps and the removal of the root must still run.
    }
  }
  exitSteps.clear();
  rmSync(TEST_TMP_ROOT, { recursive: true, force: true, maxRetries: 3 });
}

process.on('exit', cleanUp);
const SIGNALS: Partial<Record<NodeJS.Signals, number>> = { SIGINT: 2, SIGTERM: 15, SIGHUP: 1 };
for (const [signal, number] of Object.entries(SIGNALS)) {
  // `on`, not `once`: a second signal while cleaning up (the test runner passes on the one it got
  // too) would otherwise kill the process with the default action halfway through.
  process.on(signal, () => {
    cleanUp();
    process.exit(128 + (number ?? 0));
  });
}
