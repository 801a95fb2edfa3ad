/**
 * PostgreSQL refuses to run as root, so when we are root the server and its tools run as the
 * `postgres` user (created if missing), which must be able to reach the directories they use.
 */
import { spawn, execFileSync } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { userInfo } from 'node:os';
import path from 'node:path';

/** The user and group the server runs as (when pgcdc runs as root). */
export interface RunAs {
  uid: number;
  gid: number;
}

/** `postgres` (created when missing) when we are root, else undefined: the server runs as we do. */
export function serverUser(): RunAs | undefined {
  if (userInfo().uid !== 0) return undefined;
  const lookup = (): RunAs | undefined => {
    try {
      const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
      const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
      return { uid, gid };
    } catch {
      return undefined;
    }
  };
  const found = lookup();
  if (found) return found;
  execFileSync('useradd', ['--system', '--user-group', '--no-create-home', 'postgres']);
  return lookup();
}

/** The first directory above `target` that `runAs` cannot traverse, if any. */
export async function unreachableAncestor(target: string, runAs: RunAs): Promise<string | undefined> {
  for (let current = path.dirname(path.resolve(target)); ; current = path.dirname(current)) {
    const info = await stat(current);
    const bit = info.uid === runAs.uid ? 0o100 : info.gid === runAs.gid ? 0o010 : 0o001;
    if ((info.mode & bit) === 0) return current;
    if (current === path.dirname(current)) return undefined;
  }
}

/**
 * When we are root the server runs as `postgres`, which must be able to traverse every directory
 * above its data directory; say so plainly instead of letting initdb fail with EACCES.
 */
export async function checkReachable(dir: string, runAs: RunAs): Promise<void> {
  const blocked = await unreachableAncestor(dir, runAs);
  if (blocked !== undefined) {
    throw new Error(
      `PostgreSQL runs as the postgres user, which cannot enter ` +
        `${blocked}: choose a directory it can reach (e.g. under /tmp) or run chmod o+x ${blocked}`,
    );
  }
}

/** Runs `file` as `runAs`; resolves with its output, rejects with it on a non-zero exit. */
export function runAsServer(
  file: string,
  args: string[],
  runAs: RunAs | undefined,
  env: NodeJS.ProcessEnv = {},
  cwd?: string,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      ...(runAs ?? {}),
      ...(cwd !== undefined ? { cwd } : {}),
      env: { ...process.env, LC_ALL: 'C', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve(output);
      else reject(new Error(`${path.basename(file)} exited with ${code}: ${output.trim()}`));
    });
  });
}
