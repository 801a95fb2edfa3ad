/**
 * tsx keeps its compile cache in `<tmpdir>/tsx-<euid>`. A process started with TMPDIR pointing at a
 * fresh test root (the pgcdc processes the tests start) would compile everything again, each time:
 * linking that name to the cache of the surrounding temp directory keeps it warm. Removing the
 * root removes the link, not the cache.
 */
import { mkdirSync, symlinkSync } from 'node:fs';
import path from 'node:path';

/** The cache's name under a temp directory, as tsx computes it. */
export const TSX_CACHE_NAME = `tsx-${process.geteuid?.() ?? 0}`;

/** Makes `<root>/tsx-<euid>` a link to `<outer>/tsx-<euid>` (created if missing). */
export function linkTsxCache(root: string, outer: string): void {
  const cache = path.join(outer, TSX_CACHE_NAME);
  mkdirSync(cache, { recursive: true });
  symlinkSync(cache, path.join(root, TSX_CACHE_NAME));
}
