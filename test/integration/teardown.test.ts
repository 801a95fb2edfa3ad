/**
 * `pgcdc teardown` after `pgcdc setup`: it removes the slot, the publication and the tables setup
 * created (marked by their comment), never a user's table of the same kind that setup found in
 * place; --dry-run changes nothing; without a terminal it needs --yes (exit 2); it refuses while a
 * pgcdc runs (exit 1). Also `pgcdc check`'s slot-inactive-retaining-wal on the slot left behind.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { access, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { eventually, freshDatabase, onTeardown, type TestDatabase } from '../harness/pg.ts';
import { runPgcdc, setupArgs, sourceArgs, startPgcdc } from '../harness/cli.ts';

async function state(db: TestDatabase): Promise<{ slot: boolean; publication: boolean; tables: string[] }> {
  const { rows } = await db.sql.query<{ slot: boolean; publication: boolean; tables: string[] | null }>(
    `select exists (select 1 from pg_replication_slots where slot_name = $1) as slot,
            exists (select 1 from pg_publication where pubname = $2) as publication,
            (select array_agg(n.nspname || '.' || c.relname) from pg_class c
               join pg_namespace n on n.oid = c.relnamespace
              where c.relname in ('pgcdc_signal', 'pgcdc_heartbeat')) as tables`,
    [`s_${db.name}`, `p_${db.name}`],
  );
  const row = rows[0];
  assert.ok(row);
  return { slot: row.slot, publication: row.publication, tables: (row.tables ?? []).sort() };
}

test('setup then teardown: slot, publication and own tables removed, the user table kept', async () => {
  const db = await freshDatabase();
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-teardown-'));
  onTeardown(() => rm(dir, { recursive: true, force: true }));
  // A user's table of the heartbeat's name and shape, there before setup: setup leaves it alone.
  await db.sql.query(
    `create table orders (id int primary key, note text);
     create schema ops; create table ops.pgcdc_heartbeat (id int primary key, ts timestamptz not null default now())`,
  );
  const user = `u_${db.name}`;
  onTeardown(() => db.sql.query(`drop owned by ${user}; drop role if exists ${user}`).catch(() => undefined));
  const env = {
    PGCDC_ADMIN_PASSWORD: decodeURIComponent(new URL(db.url).password),
    PGCDC_USER_PASSWORD: 'teardown-user-pw-5d1',
  };
  const setup = await runPgcdc(
    setupArgs(db, { platform: 'generic', user, tables: 'public.orders', publication: true, apply: true }, [
      '--signal-schema',
      'pgcdc',
      '--heartbeat-schema',
      'ops',
    ]),
    env,
  );
  assert.equal(setup.code, 0, setup.stderr + setup.stdout);
  const { rows: comments } = await db.sql.query<{ signal: string | null; heartbeat: string | null }>(
    `select obj_description('pgcdc.pgcdc_signal'::regclass, 'pg_class') as signal,
            obj_description('ops.pgcdc_heartbeat'::regclass, 'pg_class') as heartbeat`,
  );
  assert.match(comments[0]?.signal ?? '', /^created by pgcdc setup: the signal table of publication "p_/);
  assert.equal(comments[0]?.heartbeat, null, 'the table found in place is not marked');

  const config = path.join(dir, 'pgcdc.yaml');
  await writeFile(config, 'heartbeat:\n  table: ops.pgcdc_heartbeat\n');
  const offsets = path.join(dir, 'offsets.json');
  const common = ['--config', config, ...sourceArgs(db), '--signal-table', 'pgcdc.pgcdc_signal', '--offsets', offsets];
  const run = startPgcdc([
    'run',
    ...common,
    '--tables',
    'public.orders',
    '--out',
    path.join(dir, 'events'),
    '--log-format',
    'json',
  ]);
  await eventually(() => (run.stderr().includes('"msg":"streaming"') ? true : undefined), 'streaming');

  // While it runs: refused, one line, exit 1, nothing removed.
  const refused = await runPgcdc(['teardown', ...common, '--yes']);
  assert.equal(refused.code, 1, refused.stdout + refused.stderr);
  assert.match(refused.stderr, /^pgcdc: error: .*stop the running pgcdc first/);
  assert.equal(refused.stderr.trim().split('\n').length, 1, refused.stderr);
  run.kill('SIGTERM');
  assert.equal(await run.exited, 0, run.stderr());
  const before = await state(db);
  assert.deepEqual(before, { slot: true, publication: true, tables: ['ops.pgcdc_heartbeat', 'pgcdc.pgcdc_signal'] });

  // --dry-run: the plan, nothing removed.
  const dry = await runPgcdc(['teardown', ...common, '--dry-run', '--remove-offsets']);
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, /dry run: nothing is removed/);
  assert.match(dry.stdout, new RegExp(`replication slot s_${db.name} \\(pgoutput`));
  assert.match(dry.stdout, new RegExp(`publication p_${db.name}`));
  assert.match(dry.stdout, /signal table pgcdc\.pgcdc_signal \(created by pgcdc setup\)/);
  assert.match(dry.stdout, /kept: ops\.pgcdc_heartbeat \(not created by pgcdc setup/);
  assert.match(dry.stdout, /local file .*offsets\.json/);
  assert.deepEqual(await state(db), before);
  await access(offsets);

  // No terminal and no --yes: exit 2, one line, nothing removed.
  const unconfirmed = await runPgcdc(['teardown', ...common]);
  assert.equal(unconfirmed.code, 2, unconfirmed.stderr);
  assert.match(unconfirmed.stderr, /^pgcdc: error: teardown .*needs a confirmation.*--yes/);
  assert.equal(unconfirmed.stderr.trim().split('\n').length, 1, unconfirmed.stderr);
  assert.deepEqual(await state(db), before);

  // The slot left behind is what check warns about once it retains more than the threshold.
  await db.sql.query(`insert into orders select g, 'x' from generate_series(1, 2000) g`);
  const checkConfig = path.join(dir, 'check.yaml');
  await writeFile(checkConfig, 'alerts:\n  retainedWalBytes:\n    warning: 1\n');
  const check = await runPgcdc([
    'check',
    '--config',
    checkConfig,
    ...sourceArgs(db),
    '--tables',
    'public.orders',
    '--json',
  ]);
  const report = JSON.parse(check.stdout) as { warnings: { code: string; message: string; fix: string }[] };
  const retained = report.warnings.filter((w) => w.code === 'slot-inactive-retaining-wal');
  const ours = retained.find((w) => w.message.includes(`slot s_${db.name} `));
  assert.ok(ours, `a warning names the slot: ${check.stdout}`);
  assert.match(ours.message, /is inactive and retains .* bytes\) of WAL/);
  assert.match(ours.fix, new RegExp(`pgcdc teardown --slot s_${db.name}`));
  process.stderr.write(`check: ${ours.message}\n`);

  // --yes: removed, and only what pgcdc made.
  const done = await runPgcdc(['teardown', ...common, '--yes', '--remove-offsets']);
  assert.equal(done.code, 0, done.stderr + done.stdout);
  assert.match(done.stdout, /teardown: done \(\d+ removed\)/);
  assert.deepEqual(await state(db), { slot: false, publication: false, tables: ['ops.pgcdc_heartbeat'] });
  await assert.rejects(access(offsets), 'the offsets file is removed');
  process.stderr.write(`teardown:\n${done.stdout}`);

  // Nothing left: a second teardown says so and exits 0.
  const again = await runPgcdc(['teardown', ...common, '--yes']);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /nothing: no slot, publication or table of pgcdc was found/);
});
