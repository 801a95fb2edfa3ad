/**
 * The offsets file as a test sees it: read it, or rewrite it consistently (sealed with a valid
 * checksum), as another pgcdc or a restore would leave it, unlike a hand edit.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { checkpointChecksum } from '../../src/offsets/file.ts';

export async function readOffsets(file: string): Promise<Record<string, unknown>> {
  return JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
}

/** Rewrites the offsets file with `changes` applied and a checksum that matches. */
export async function resealOffsets(file: string, changes: Record<string, unknown>): Promise<void> {
  const { checksum: _old, ...fields } = { ...(await readOffsets(file)), ...changes };
  await writeFile(file, `${JSON.stringify({ ...fields, checksum: checkpointChecksum(fields) }, null, 2)}\n`);
}
