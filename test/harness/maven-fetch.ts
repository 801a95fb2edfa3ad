/**
 * Jars the tests need from Maven Central, fetched on first use when `npm run kafka:fetch` has not
 * fetched them (.ci/run does). Test files run in parallel: the first takes a lock folder, fetches into
 * a private staging folder and renames it into place; the others wait for the rename.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';

/** Whether `program` is on the PATH. */
export function onPath(program: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${program}`], { stdio: 'ignore' }).status === 0;
}

export interface MavenFetch {
  /** The pom whose `dependency:copy-dependencies` writes the jars. */
  readonly pom: string;
  /** The pom property naming the output folder (`-D<property>=<staging>` redirects it). */
  readonly property: string;
  /** Where the jars end up. */
  readonly target: string;
  /** Whether `target` holds the jars already. */
  readonly present: () => boolean;
}

/** `fetch.target`, fetched with Maven when `fetch.present()` says it is missing. */
export function fetchWithMaven(fetch: MavenFetch): string {
  if (fetch.present()) return fetch.target;
  const parent = path.dirname(fetch.target);
  const lock = path.join(parent, `.fetching-${path.basename(fetch.target)}`);
  mkdirSync(parent, { recursive: true });
  let owner = false;
  try {
    mkdirSync(lock);
    owner = true;
  } catch {
    // Another test process is fetching: wait for its rename below.
  }
  if (owner) {
    try {
      const staging = `${fetch.target}-${process.pid}`;
      execFileSync(
        'mvn',
        ['-q', '-B', '-f', fetch.pom, 'dependency:copy-dependencies', `-D${fetch.property}=${staging}`],
        {
          stdio: ['ignore', 'ignore', 'inherit'],
        },
      );
      if (!fetch.present()) renameSync(staging, fetch.target);
      else rmSync(staging, { recursive: true, force: true });
    } finally {
      rmSync(lock, { recursive: true, force: true });
    }
  } else {
    const deadline = Date.now() + 600_000;
    while (!fetch.present() && existsSync(lock) && Date.now() < deadline) spawnSync('sleep', ['0.2']);
    if (!fetch.present()) throw new Error(`the jars are not in ${fetch.target}: run npm run kafka:fetch`);
  }
  return fetch.target;
}
