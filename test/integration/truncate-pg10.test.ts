/**
 * PostgreSQL 10: pgoutput cannot send TRUNCATE, so a truncate gives no event. `pgcdc check` says
 * so, and `pgcdc run` logs a warning at start; on 11+ neither does. Meaningful on 10:
 * `PGCDC_TEST_PG=10 node --import tsx --test test/integration/truncate-pg10.test.ts` (part of
 * `npm run test:smoke`, which CI runs on every major); on other majors it checks the silence.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freshDatabase, eventually } from '../harness/pg.ts';
import { readJsonl, runPgcdc, startPgcdc } from '../harness/cli.ts';
import { logRecords } from '../harness/process.ts';

const WARN = 40;

test('TRUNCATE on PostgreSQL 10: check and run say it is not decoded (and nothing says so on 11+)', async () => {
  const db = await freshDatabase();
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-trunc-'));
  const on10 = db.server.major === 10;
  await db.sql.query(`create table t (id int primary key); insert into t values (1)`);
  const common = ['--source', db.url, '--slot', `s_${db.name}`, '--publication', 'trunc_pub', '--tables', 'public.t'];

  const check = await runPgcdc(['check', '--json', ...common]);
  const report = JSON.parse(check.stdout) as { warnings: { code: string; message: string }[] };
  const warned = report.warnings.find((w) => w.code === 'truncate-not-decoded');
  if (on10) assert.match(warned?.message ?? '', /PostgreSQL 10 does not decode TRUNCATE/, check.stdout);
  else assert.equal(warned, undefined);

  const proc = startPgcdc([
    'run',
    ...common,
    '--out',
    path.join(dir, 'events'),
    '--offsets',
    path.join(dir, 'offsets.json'),
    '--log-format',
    'json',
  ]);
  // Streaming, not just an active slot: the slot is active during the initial snapshot too, and a
  // TRUNCATE racing the snapshot's start makes pgcdc stop on PostgreSQL 10 (no online method).
  await eventually(() => {
    if (proc.child.exitCode !== null) throw new Error(`pgcdc exited: ${proc.stderr()}`);
    return proc.stderr().includes('"msg":"streaming"') ? true : undefined;
  }, 'streaming');
  await db.sql.query(`truncate t`);
  await db.sql.query(`insert into t values (2)`);
  const events = await eventually(async () => {
    const all = await readJsonl(path.join(dir, 'events'));
    return all.some((e) => e.key?.id === 2) ? all : undefined;
  }, 'the insert after the truncate');
  proc.kill('SIGTERM');
  assert.equal(await proc.exited, 0, proc.stderr());
  const warnings = logRecords(proc.stderr()).filter((r) => r.level === WARN && r.code === 'truncate-not-decoded');
  assert.equal(warnings.length, on10 ? 1 : 0, proc.stderr());
  // What the warning is about: on 10 the truncate leaves no trace in the events.
  assert.equal(events.filter((e) => e.value.op === 't').length, on10 ? 0 : 1);
});
