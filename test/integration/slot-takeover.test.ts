/**
 * Two pgcdc on one slot, the first between two retry attempts when the second starts: the second
 * takes the slot, and the first, once it retries, stops with one SLOT_TAKEN_OVER line (exit 1)
 * instead of taking the slot (or a Kafka transactional id) back (lifecycle/slot-ownership.ts).
 * The first is frozen (SIGSTOP) while its walsender is terminated, so the order is certain.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { awaitStreaming, startPgcdc } from '../harness/cli.ts';
import { eventually, freshDatabase, type TestDatabase } from '../harness/pg.ts';

function runArgs(db: TestDatabase, dir: string): string[] {
  return [
    'run',
    '--source',
    db.url,
    '--slot',
    `s_${db.name}`,
    '--publication',
    'it_pub',
    '--tables',
    'public.t',
    '--out',
    path.join(dir, 'events'),
    '--offsets',
    path.join(dir, 'offsets.json'),
    '--log-format',
    'json',
  ];
}

async function activePid(db: TestDatabase): Promise<number | undefined> {
  const { rows } = await db.sql.query<{ pid: number | null }>(
    `select active_pid as pid from pg_replication_slots where slot_name = $1`,
    [`s_${db.name}`],
  );
  return rows[0]?.pid ?? undefined;
}

test('a pgcdc that lost its slot to another while reconnecting stops with one line', async () => {
  const db = await freshDatabase();
  await db.sql.query(`create table t (id int primary key)`);
  const first = startPgcdc(runArgs(db, await mkdtemp(path.join(tmpdir(), 'pgcdc-takeover-a-'))));
  await awaitStreaming(first, 'the first pgcdc streaming');
  const walsender = await eventually(() => activePid(db), 'the first walsender');
  first.kill('SIGSTOP');
  try {
    await db.sql.query(`select pg_terminate_backend($1)`, [walsender]);
    await eventually(async () => ((await activePid(db)) === undefined ? true : undefined), 'the slot released');
    const second = startPgcdc(runArgs(db, await mkdtemp(path.join(tmpdir(), 'pgcdc-takeover-b-'))));
    await awaitStreaming(second, 'the second pgcdc streaming');
    await db.sql.query(`insert into t values (1)`);
    first.kill('SIGCONT');
    assert.equal(await first.exited, 1, first.stderr().slice(-3000));
    const lines = first.stderr().trim().split('\n');
    assert.match(
      lines.at(-1) ?? '',
      new RegExp(
        '^pgcdc: error: another process \\(pid \\d+\\) streams slot s_\\w+ since this pgcdc lost its connection: ' +
          'this one stops without acknowledging more\\. run one pgcdc per slot.*\\[SLOT_TAKEN_OVER\\]$',
      ),
    );
    assert.equal(second.child.exitCode, null, 'the second pgcdc streams on');
    second.kill('SIGTERM');
    assert.equal(await second.exited, 0, second.stderr().slice(-3000));
  } finally {
    first.kill('SIGCONT');
  }
});
