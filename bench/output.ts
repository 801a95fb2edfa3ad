/** Shared by the benches: reading back what pgcdc (or a peer) wrote. */
import { createReadStream } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';

/** Lines (events) in one file, counted without parsing them. */
export async function countFileLines(file: string): Promise<number> {
  let lines = 0;
  for await (const chunk of createReadStream(file)) {
    const buffer = chunk as Buffer;
    for (let at = buffer.indexOf(10); at !== -1; at = buffer.indexOf(10, at + 1)) lines++;
  }
  return lines;
}

/** Lines (events) in every file of `dir`, counted without parsing them. */
export async function countLines(dir: string): Promise<number> {
  let lines = 0;
  for (const name of await readdir(dir)) lines += await countFileLines(path.join(dir, name));
  return lines;
}
