/**
 * A file-level copy of a stopped cluster's data directory, and its restore: what an operator does
 * with a cold backup. The copy keeps owners and modes (cp -a), so the server (run as postgres when
 * we are root) starts from it; it lives in the cluster's base directory, removed with the cluster.
 */
import { execFile } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { promisify } from 'node:util';
import type { EmbeddedCluster } from '../../src/embedded/cluster.ts';

const run = promisify(execFile);

/** Copies the data directory of `cluster`, which must be stopped; returns the copy's path. */
export async function copyDataDir(cluster: EmbeddedCluster, name = 'copy'): Promise<string> {
  const copy = `${cluster.dataDir}.${name}`;
  await rm(copy, { recursive: true, force: true });
  await run('cp', ['-a', cluster.dataDir, copy]);
  return copy;
}

/** Replaces the data directory of `cluster`, which must be stopped, with a copy made by `copyDataDir`. */
export async function restoreDataDir(cluster: EmbeddedCluster, copy: string): Promise<void> {
  await rm(cluster.dataDir, { recursive: true, force: true });
  await run('cp', ['-a', copy, cluster.dataDir]);
}
