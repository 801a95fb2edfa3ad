/**
 * The hand-over between the JsonlSinks of one process in one directory: a sink's `open` waits for
 * the writes of the sink before it there.
 *
 * Why: after a fault the engine closes the old sink within a bound and starts a new attempt with a
 * new sink, whose `open` truncates the files to the checkpoint. A write of the old sink still
 * running then (a slow fdatasync on a loaded machine) would land after the truncation, at its old
 * offsets, under the new attempt's events (seen as lost rows in a chaos run).
 */
import path from 'node:path';

/** Per directory (resolved), the writes of the latest sink there (a promise that never rejects). */
const writesByDir = new Map<string, Promise<unknown>>();

/** Waits for the writes of the sink before in `dir`, then makes `writes` the ones the next sink waits for. */
export async function takeOverDirectory(dir: string, writes: Promise<unknown>): Promise<void> {
  const key = path.resolve(dir);
  await writesByDir.get(key);
  writesByDir.set(key, writes);
}

/** The sink in `dir` now has `writes` running (its serialized write chain, never rejecting). */
export function noteDirectoryWrites(dir: string, writes: Promise<unknown>): void {
  writesByDir.set(path.resolve(dir), writes);
}
