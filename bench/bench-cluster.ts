/**
 * The embedded PostgreSQL a bench measures against, with its temporary folder: started, its databases
 * created, then stopped and removed whatever the bench did. And the explicit exit of benches that load a
 * broker harness.
 */
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { EmbeddedCluster } from '../src/embedded/cluster.ts';

/**
 * Room for a whole backlog without checkpoints, and no background writes (autovacuum's analyze after a
 * load) that would land in the streams being measured.
 */
export const BACKLOG_SETTINGS: Readonly<Record<string, string>> = {
  shared_buffers: '1GB',
  max_wal_size: '16GB',
  min_wal_size: '1GB',
  checkpoint_timeout: '1h',
  wal_buffers: '64MB',
  autovacuum: 'off',
};

/** How a bench's cluster and folder are set up. */
export interface BenchClusterOptions {
  /** The temporary folder's name prefix, e.g. `pgcdc-bench-kafka-`. */
  readonly prefix: string;
  /** The PostgreSQL major (the embedded cluster's default when undefined). */
  readonly major?: number | undefined;
  /** `postgresql.conf` settings; BACKLOG_SETTINGS when undefined. */
  readonly settings?: Readonly<Record<string, string>> | undefined;
  /** Databases created before the bench runs. */
  readonly databases?: readonly string[] | undefined;
  /** Keep the folder afterwards (its path is printed) instead of removing it. */
  readonly keep?: boolean | undefined;
}

/** Creates database `name` in `cluster`. */
export async function createDatabase(cluster: EmbeddedCluster, name: string): Promise<void> {
  const admin = new pg.Client({ connectionString: cluster.url('postgres') });
  await admin.connect();
  try {
    await admin.query(`create database ${name}`);
  } finally {
    await admin.end();
  }
}

/**
 * Makes a temporary folder, starts the cluster and creates the databases, runs `bench` with them, then
 * destroys the cluster and removes the folder, also when `bench` fails.
 */
export async function withBenchCluster<T>(
  options: BenchClusterOptions,
  bench: (cluster: EmbeddedCluster, dir: string) => Promise<T>,
): Promise<T> {
  const dir = await mkdtemp(path.join(tmpdir(), options.prefix));
  let cluster: EmbeddedCluster | undefined;
  try {
    // Readable by the other tools a bench runs (mkdtemp makes it private to this user).
    await chmod(dir, 0o755);
    cluster = await EmbeddedCluster.start({
      ...(options.major === undefined ? {} : { major: options.major }),
      settings: { ...(options.settings ?? BACKLOG_SETTINGS) },
    });
    for (const database of options.databases ?? []) await createDatabase(cluster, database);
    return await bench(cluster, dir);
  } finally {
    await cluster?.destroy();
    if (options.keep === true) console.log(`kept: ${dir}`);
    else await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Runs a bench's `main` and exits explicitly: the broker harnesses (test/harness/kafka.ts, nats.ts) load
 * node:test, whose reporter would otherwise print a test summary after the ratio line; their exit hooks
 * delete the brokers' folders.
 */
export async function exitAfter(main: () => Promise<void>): Promise<never> {
  return main().then(
    () => process.exit(0),
    (error: unknown) => {
      process.stderr.write(`bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exit(1);
    },
  );
}
