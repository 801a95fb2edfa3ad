/**
 * What the test harness names in a temp directory: the per-process test roots (test/harness/tmp.ts)
 * and the shared caches linked into them. No side effects (test/run.ts imports it).
 *
 * Caches that live in the temp directory and are meant to outlive a process: tsx's compile cache
 * (`<tmpdir>/tsx-<euid>`) and the copy of the PostgreSQL binaries made when the checkout is private
 * (`<tmpdir>/pgcdc-embedded-binaries`, see src/embedded/cluster.ts). A process whose TMPDIR is a fresh
 * test root would build them again, each time: linking their names to the caches of the surrounding
 * temp directory keeps them shared. Removing the root removes the links, not the caches.
 */
import { mkdirSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { EMBEDDED_BINARIES_DIR } from '../../src/embedded/cluster.ts';

/** The prefix of every per-process test root, followed by the process id and a dash. */
export const TEST_ROOT_PREFIX = 'pgcdc-test-';

/** The caches' names under a temp directory. */
export const SHARED_CACHES: readonly string[] = [`tsx-${process.geteuid?.() ?? 0}`, EMBEDDED_BINARIES_DIR];

/** Makes each `<root>/<cache>` a link to `<outer>/<cache>` (created if missing). */
export function linkSharedCaches(root: string, outer: string): void {
  for (const name of SHARED_CACHES) {
    const cache = path.join(outer, name);
    mkdirSync(cache, { recursive: true, mode: 0o755 });
    symlinkSync(cache, path.join(root, name));
  }
}
