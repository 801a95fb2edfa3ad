/**
 * pgbench as a load for fault tests: `pgbench -i` on a database of an embedded cluster, then the
 * tpcb-like mix (3 updates and 1 insert per transaction) from several real concurrent connections,
 * started again whenever it ends (a server restart aborts its clients) until stopped. The source
 * tables are the truth at the end, so transactions whose answer was lost need no bookkeeping.
 *
 * pgbench comes from the PATH (Debian: postgresql-client; the embedded packages ship none).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import type pg from 'pg';
import type { EmbeddedCluster } from '../../src/embedded/cluster.ts';
import { onProcessExit } from './tmp.ts';

/** True when a `pgbench` program runs here. */
export function pgbenchAvailable(): boolean {
  return spawnSync('pgbench', ['--version'], { stdio: 'ignore' }).status === 0;
}

function pgbenchArgs(cluster: EmbeddedCluster, database: string, args: readonly string[]): string[] {
  return ['-h', '127.0.0.1', '-p', String(cluster.port), '-U', 'postgres', ...args, database];
}

function pgbenchEnv(cluster: EmbeddedCluster): NodeJS.ProcessEnv {
  return { ...process.env, PGPASSWORD: cluster.password, PGSSLMODE: 'disable' };
}

/**
 * `pgbench -i -s 1`, then keeps `accounts` accounts (fewer rows: faster snapshots and verdicts; the
 * mix's updates of a missing account change nothing) and gives pgbench_history a key, so every table
 * of the mix replays by key. pgbench's own insert names its columns, so the new column is filled
 * by its default.
 */
export async function initPgbench(
  cluster: EmbeddedCluster,
  database: string,
  sql: pg.Client,
  accounts = 10_000,
): Promise<void> {
  const result = spawnSync('pgbench', pgbenchArgs(cluster, database, ['-i', '-q', '-s', '1']), {
    env: pgbenchEnv(cluster),
    encoding: 'utf8',
  });
  if (result.status !== 0) throw new Error(`pgbench -i failed (${result.status}): ${result.stderr}`);
  await sql.query(`delete from pgbench_accounts where aid > $1`, [accounts]);
  await sql.query(`alter table pgbench_history add column hid bigserial primary key`);
}

/**
 * The tpcb-like mix from `clients` connections at about `rate` transactions a second in all
 * (`pgbench -R`: a shared 2-core machine is not saturated), restarted whenever pgbench ends.
 */
export class PgbenchLoad {
  /** pgbench runs started (the first included). */
  runs = 0;
  private child: ChildProcess | undefined;
  private stopping = false;
  private readonly running: Promise<void>;
  private readonly forget: () => void;

  constructor(
    private readonly cluster: EmbeddedCluster,
    private readonly database: string,
    private readonly clients = 4,
    private readonly rate = 60,
  ) {
    this.forget = onProcessExit(() => this.child?.kill('SIGKILL'));
    this.running = this.loop();
  }

  private async loop(): Promise<void> {
    while (!this.stopping) {
      this.runs++;
      const child = spawn(
        'pgbench',
        pgbenchArgs(this.cluster, this.database, [
          '-n',
          '-c',
          String(this.clients),
          '-j',
          '2',
          '-R',
          String(this.rate),
          '-T',
          '86400',
        ]),
        { env: pgbenchEnv(this.cluster), stdio: 'ignore' },
      );
      this.child = child;
      await new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.once('error', () => resolve());
      });
      // A pgbench that ended because the server went away: a short pause before the next try, so a
      // server that is down is not hammered by a tight loop of failing starts.
      if (!this.stopping) await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.child?.kill('SIGKILL');
    await this.running;
    this.forget();
  }
}
