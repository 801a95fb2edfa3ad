/**
 * A 2,000,000-row transaction: memory stays bounded (events go to the sink in parts while the
 * transaction streams in; the offset moves only at its commit), and every row arrives exactly once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freshDatabase, eventually } from '../harness/pg.ts';
import { startPgcdc } from '../harness/cli.ts';
import { countLines, peakRssMb } from '../harness/process.ts';

const ROWS = 2_000_000;

test(
  `a ${ROWS.toLocaleString('en-US')}-row transaction streams with bounded memory and lands exactly ` + `once`,
  async () => {
    const db = await freshDatabase();
    const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-big-'));
    await db.sql.query(`create table big (id int primary key, v int, t text)`);
    const proc = startPgcdc(
      [
        'run',
        '--source',
        db.url,
        '--slot',
        `s_${db.name}`,
        '--publication',
        'big_pub',
        '--tables',
        'public.big',
        '--out',
        path.join(dir, 'events'),
        '--offsets',
        path.join(dir, 'offsets.json'),
        '--log-format',
        'json',
      ],
      // pgcdc's own buffers are bounded (off the JS heap); without a cap V8 lets short-lived garbage
      // grow the old space by 100 MB or so before collecting it, which docs/operations.md explains.
      { NODE_OPTIONS: '--max-old-space-size=128' },
    );
    await eventually(
      async () =>
        (await db.sql.query(`select 1 from pg_replication_slots where slot_name = $1`, [`s_${db.name}`])).rowCount === 1
          ? true
          : undefined,
      'slot',
    );
    await db.sql.query(`insert into big select g, g % 1000, 'row ' || g from generate_series(1, ${ROWS}) g`);
    const { rows } = await db.sql.query<{ lsn: string }>(`select pg_current_wal_lsn()::text as lsn`);
    const end = rows[0]?.lsn ?? '';
    await eventually(
      async () => {
        const { rows: done } = await db.sql.query<{ done: boolean }>(
          `select confirmed_flush_lsn >= $1::pg_lsn as done from pg_replication_slots where slot_name = $2`,
          [end, `s_${db.name}`],
        );
        return done[0]?.done ? true : undefined;
      },
      'the whole transaction to be confirmed',
      300_000,
    );
    const pid = proc.child.pid ?? 0;
    const peak = await peakRssMb(pid);
    proc.kill('SIGTERM');
    assert.equal(await proc.exited, 0, proc.stderr());
    assert.equal(await countLines(path.join(dir, 'events')), ROWS, 'every row exactly once');
    const size = (await stat(path.join(dir, 'events', `${db.name}.public.big.jsonl`))).size;
    process.stdout.write(
      `# peak RSS ${peak.toFixed(0)} MB for ${ROWS} rows (${(size / 1e6).toFixed(0)} MB of JSONL)\n`,
    );
    assert.ok(peak < 300, `peak RSS ${peak.toFixed(0)} MB`);
  },
);
