/**
 * A full disk under the offsets file (issue 9, item 11): storing the checkpoint and taking the
 * offsets lock fail with LOCAL_IO and exit 1 (a supervisor keeps restarting; exit 2 would mean bad
 * input and stop it), in one line naming the path and the free space; once space is freed, the
 * same command resumes with nothing lost and nothing duplicated. The disk is a small tmpfs this
 * test mounts, so it needs root; without root it skips loudly (PGCDC_REQUIRE_ALL=1, set in CI,
 * turns the skip into a failure).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { appendFile, mkdtemp, rm, rmdir, unlink } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { eventually, freshDatabase, onTeardown, requireOrSkip, type TestDatabase } from '../harness/pg.ts';
import { compareRows, readJsonl, replay, runPgcdc, startPgcdc, type PgcdcProcess } from '../harness/cli.ts';
import { settled } from '../harness/snapshots.ts';

const skip = requireOrSkip(userInfo().uid === 0, 'root (needed to mount a small tmpfs for a full disk)');

/** Mounts a tmpfs of `size` on a new directory, unmounted after the file's tests. */
async function smallDisk(size: string): Promise<string> {
  const mountPoint = await mkdtemp(path.join(tmpdir(), 'pgcdc-fulldisk-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', mountPoint]);
  onTeardown(async () => {
    execFileSync('umount', ['-l', mountPoint]);
    await rmdir(mountPoint);
  });
  return mountPoint;
}

/** Fills the file system of `dir` with `file` until a write fails with ENOSPC. */
async function fill(file: string): Promise<void> {
  const chunk = Buffer.alloc(64 * 1024);
  for (let size = chunk.length; size >= 1; size = Math.floor(size / 2)) {
    for (;;) {
      try {
        await appendFile(file, chunk.subarray(0, size));
      } catch (error) {
        if (error instanceof Error && 'code' in error && error.code === 'ENOSPC') break;
        throw error;
      }
    }
  }
}

/**
 * Fills the file system of `file` again until `proc` exits: pgcdc's own writes there can free a page
 * after a fill (a checkpoint's temp file renamed over the old one), and it would then run on.
 */
async function keepFullUntilExit(file: string, proc: PgcdcProcess): Promise<void> {
  await eventually(async () => {
    if (proc.child.exitCode !== null || proc.child.signalCode !== null) return true;
    await fill(file);
    return undefined;
  }, 'pgcdc exited on the full disk');
}

function args(db: TestDatabase, out: string, offsets: string): string[] {
  return [
    'run',
    '--source',
    db.url,
    '--slot',
    `s_${db.name}`,
    '--publication',
    'disk_pub',
    '--tables',
    'public.acct',
    '--out',
    out,
    '--offsets',
    offsets,
    '--log-format',
    'json',
  ];
}

function errorLine(stderr: string): string {
  const lines = stderr
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('pgcdc:'));
  assert.equal(lines.length, 1, stderr);
  return lines[0] ?? '';
}

test(
  'a full disk under the offsets file: LOCAL_IO, exit 1, the path and the free space; after freeing space an ' +
    'exact resume',
  { skip },
  async () => {
    const db = await freshDatabase();
    const disk = await smallDisk('1m');
    const offsets = path.join(disk, 'offsets.json');
    const out = await mkdtemp(path.join(tmpdir(), 'pgcdc-fulldisk-out-'));
    onTeardown(() => rm(out, { recursive: true, force: true }));
    await db.sql.query(`create table acct (id int primary key, n int not null)`);
    await db.sql.query(`insert into acct select g, g from generate_series(1, 100) g`);
    const proc = startPgcdc(args(db, out, offsets));
    // Settled, not just caught up: the first checkpoint stands at the slot's position while the
    // initial snapshot is still read, and the disk must fill up while pgcdc streams.
    await eventually(async () => ((await settled(db.sql, offsets)) ? true : undefined), 'settled');

    // The disk fills up while pgcdc runs: the next checkpoint cannot be stored.
    const filler = path.join(disk, 'filler');
    await fill(filler);
    await db.sql.query(`insert into acct select g, g from generate_series(101, 300) g`);
    await keepFullUntilExit(filler, proc);
    assert.equal(await proc.exited, 1, proc.stderr());
    const storing = errorLine(proc.stderr());
    assert.match(storing, /cannot store the checkpoint in .*offsets\.json: .*(ENOSPC|no space)/i);
    assert.ok(storing.includes(offsets), storing);
    assert.match(storing, /\(0 bytes free on that file system\)/);
    assert.ok(storing.endsWith('[LOCAL_IO]'), storing);

    // Restarted while the disk is still full (filled again: the failed run removed its temp and lock
    // files): the lock next to the offsets cannot be taken.
    await fill(filler);
    await db.sql.query(`update acct set n = n * 2 where id % 3 = 0`);
    const locking = await runPgcdc(args(db, out, offsets));
    assert.equal(locking.code, 1, locking.stderr);
    const line = errorLine(locking.stderr);
    assert.match(
      line,
      /cannot lock the offsets file .*offsets\.json: .*(ENOSPC|no space).*\(0 bytes free on that file system\)/i,
    );
    assert.ok(line.endsWith('[LOCAL_IO]'), line);

    // Space freed: the same command resumes from the last stored checkpoint.
    await unlink(filler);
    await db.sql.query(`delete from acct where id % 10 = 0`);
    const again = startPgcdc(args(db, out, offsets));
    await eventually(async () => ((await settled(db.sql, offsets)) ? true : undefined), 'settled after freeing space');
    again.kill('SIGTERM');
    assert.equal(await again.exited, 0, again.stderr());
    const events = await readJsonl(out);
    assert.equal(new Set(events.map((e) => e.id)).size, events.length, 'no duplicated events');
    const { rows } = await db.sql.query<{ id: number; n: number }>(`select id, n from acct`);
    const source = new Map(rows.map((r) => [JSON.stringify({ id: r.id }), { id: r.id, n: r.n }]));
    assert.deepEqual(compareRows(replay(events).tables.get(`${db.name}.public.acct`), source), {
      lost: 0,
      extra: 0,
      mismatched: 0,
    });
  },
);
