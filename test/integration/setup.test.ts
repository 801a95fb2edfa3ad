/**
 * `pgcdc setup --apply` on fresh databases, per platform profile that an embedded cluster can
 * emulate: the first run applies, the second changes nothing, then `pgcdc check` as the new user
 * passes. Passwords come from the environment and never appear in any output.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { eventually, freshDatabase, onTeardown, startCluster, type TestDatabase } from '../harness/pg.ts';
import { MAIN, readJsonl, runPgcdc, setupArgs, sourceArgs, startPgcdc, withoutPassword } from '../harness/cli.ts';

const USER_PW = 'canary-user-pw-91b2';

/** `beforeCheck` plays the platform's part between setup and check (what its server does on its own). */
async function setupTwiceThenCheck(
  db: TestDatabase,
  platform: string,
  extra: string[] = [],
  beforeCheck?: () => Promise<void>,
): Promise<{ code: number; stdout: string }> {
  const user = `u_${db.name}`;
  await db.sql.query(
    `create table orders (id int primary key, note text); create schema sales; create table sales.leads ` +
      `(id int primary key);
    create table sales.tmp_x (id int primary key)`,
  );
  const adminPw = new URL(db.url).password;
  const env = { PGCDC_ADMIN_PASSWORD: decodeURIComponent(adminPw), PGCDC_USER_PASSWORD: USER_PW };
  const args = setupArgs(db, { platform, user, tables: 'public.orders,sales.*', apply: true }, [
    '--exclude-tables',
    'sales.tmp_*',
    '--signal-schema',
    'pgcdc',
    '--heartbeat-schema',
    'pgcdc',
    ...extra,
  ]);
  const first = await runPgcdc(args, env);
  assert.equal(first.code, 0, first.stderr + first.stdout);
  assert.match(first.stdout, /\d+ applied/);
  const second = await runPgcdc(args, env);
  assert.equal(second.code, 0, second.stderr);
  assert.match(second.stdout, /0 applied, \d+ already in place \(nothing changed\)/);
  await beforeCheck?.();
  const check = await runPgcdc(
    [
      'check',
      '--source',
      withoutPassword(db.url, user),
      '--tables',
      'public.orders,sales.*',
      '--exclude-tables',
      'sales.tmp_*',
      '--signal-table',
      'pgcdc.pgcdc_signal',
      '--slot',
      `s_${db.name}`,
      '--json',
    ],
    { PGPASSWORD: USER_PW },
  );
  for (const out of [first.stdout, first.stderr, second.stdout, second.stderr, check.stdout, check.stderr]) {
    assert.ok(!out.includes(USER_PW), 'the user password never appears in any output');
  }
  return { code: check.code, stdout: check.stdout };
}

for (const platform of ['generic', 'neon', 'azure']) {
  test(`setup --platform ${platform} --apply is idempotent and check passes afterwards`, async () => {
    const db = await freshDatabase();
    const check = await setupTwiceThenCheck(db, platform);
    assert.equal(check.code, 0, check.stdout);
    const report = JSON.parse(check.stdout) as { ok: boolean; notes: string[] };
    assert.equal(report.ok, true);
    assert.ok(
      report.notes.some((n) => n.includes('tables: public.orders, sales.leads')),
      report.notes.join('\n'),
    );
  });
}

for (const platform of ['rds', 'aurora']) {
  test(
    `setup --platform ` +
      `${platform} --apply grants rds_replication, then check passes on an emulated ${platform} server`,
    async () => {
      const db = await freshDatabase();
      // The emulated platform: an rds_replication role, and rds.logical_replication reported as on
      // (a custom setting here; RDS's own parameter there), beside wal_level = logical.
      await db.sql.query(
        `do $$ begin if not exists (select 1 from pg_roles where rolname = 'rds_replication') then create ` +
          `role rds_replication nologin; end if; end $$;
      alter database ${db.name} set rds.logical_replication = 'on'`,
      );
      const user = `u_${db.name}`;
      const check = await setupTwiceThenCheck(db, platform, [], async () => {
        const role = await db.sql.query<{ member: boolean; attribute: boolean }>(
          `select pg_has_role(rolname, 'rds_replication', 'member') as member, rolreplication as attribute from ` +
            `pg_roles where rolname = $1`,
          [user],
        );
        // setup took the RDS route: membership, not the REPLICATION attribute (RDS refuses ALTER ROLE ... REPLICATION).
        assert.deepEqual(role.rows[0], { member: true, attribute: false });
        // RDS's server lets rds_replication members open walsender connections; vanilla PostgreSQL
        // checks the role's own attribute, so the test grants it in the platform's place.
        await db.sql.query(`alter role ${user} with replication`);
      });
      assert.equal(check.code, 0, check.stdout);
      const report = JSON.parse(check.stdout) as { ok: boolean; errors: { code: string }[]; notes: string[] };
      assert.deepEqual(report.errors, [], check.stdout);
      assert.ok(
        report.notes.some((n) => n.includes('tables: public.orders, sales.leads')),
        report.notes.join('\n'),
      );
    },
  );
}

test(
  'an emulated RDS instance whose parameter group lacks rds.logical_replication: check names the parameter ' +
    'group fix',
  async () => {
    const cluster = await startCluster({ settings: { wal_level: 'replica', wal_sender_timeout: '10s' } });
    const admin = new pg.Client({ connectionString: cluster.url('postgres') });
    await admin.connect();
    await admin.query(`alter database postgres set rds.logical_replication = 'off'`);
    await admin.end();
    const check = await runPgcdc([
      'check',
      '--source',
      cluster.url('postgres'),
      '--tables',
      'pg_catalog.pg_class',
      '--json',
    ]);
    const report = JSON.parse(check.stdout) as { errors: { code: string; fix: string }[] };
    assert.equal(check.code, 1);
    assert.match(
      report.errors.find((e) => e.code === 'wal-level')?.fix ?? '',
      /custom DB parameter group .* rds\.logical_replication = 1/,
      check.stdout,
    );
  },
);

test(
  "without the platform's walsender right, check on the rds profile names the failing replication " + 'connection',
  async () => {
    const db = await freshDatabase();
    await db.sql.query(
      `do $$ begin if not exists (select 1 from pg_roles where rolname = 'rds_replication') then create role ` +
        `rds_replication nologin; end if; end $$`,
    );
    const check = await setupTwiceThenCheck(db, 'rds');
    const report = JSON.parse(check.stdout) as { errors: { code: string }[] };
    // Membership satisfies the role rule, so only the real replication connection can tell: check opens one.
    assert.deepEqual(
      report.errors.map((e) => e.code),
      ['replication-connect'],
      check.stdout,
    );
  },
);

test('setup prints a commented plan without connecting; refuses a password in --admin-url', async () => {
  const plan = await runPgcdc(['setup', '--platform', 'neon', '--tables', 'public.orders', '--database', 'shop']);
  assert.equal(plan.code, 0, plan.stderr);
  assert.match(plan.stdout, /remove "-pooler"/);
  assert.match(
    plan.stdout,
    /CREATE PUBLICATION "pgcdc_pub" FOR TABLE "public"\."orders" WITH \(publish_via_partition_root = true\);/,
  );
  assert.match(plan.stdout, /ALTER ROLE "pgcdc_user" WITH REPLICATION;/);
  const bad = await runPgcdc([
    'setup',
    '--platform',
    'generic',
    '--all-tables',
    '--apply',
    '--admin-url',
    'postgres://admin:hunter2@127.0.0.1:1/db',
  ]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /must not contain a password/);
  assert.ok(!bad.stderr.includes('hunter2'));
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-setup-'));
  onTeardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test(
  'setup --apply refuses to publish a table without a primary key; with --replica-identity-full the ' +
    'application keeps writing and pgcdc captures it',
  async () => {
    const db = await freshDatabase();
    const user = `u_${db.name}`;
    await db.sql.query(
      `create table audit_log (at timestamptz not null default now(), note text); insert into audit_log ` +
        `(note) values ('a');
    create table orders (id int primary key)`,
    );
    const env = { PGCDC_ADMIN_PASSWORD: decodeURIComponent(new URL(db.url).password), PGCDC_USER_PASSWORD: USER_PW };
    const args = setupArgs(db, { platform: 'generic', user, tables: 'public.*', publication: true, apply: true });
    const refused = await runPgcdc(args, env);
    assert.equal(refused.code, 2, refused.stderr + refused.stdout);
    assert.match(
      refused.stderr,
      new RegExp(
        /^pgcdc: error: setup refuses to publish a table without a replica identity: /.source +
          /public\.audit_log \(no primary key and REPLICA IDENTITY DEFAULT\)/.source +
          /; once published, the application's own UPDATE and DELETE on them would fail/.source +
          / .*pass --replica-identity-full .* or leave them out with --exclude-tables \[USAGE\]\n$/.source,
      ),
    );
    const nothing = await db.sql.query<{ users: number; pubs: number; slots: number }>(
      `select (select count(*) from pg_roles where rolname = $1)::int as users, (select count(*) from ` +
        `pg_publication)::int as pubs,
            (select count(*) from pg_replication_slots where database = current_database())::int as slots`,
      [user],
    );
    assert.deepEqual(nothing.rows[0], { users: 0, pubs: 0, slots: 0 }, 'nothing was applied');
    await db.sql.query(`update audit_log set note = 'b'`); // the application's UPDATE still works

    // Left out, it is not refused (the plan, printed without --apply, changes nothing).
    const excluded = await runPgcdc(
      [...args.filter((a) => a !== '--apply'), '--exclude-tables', 'public.audit_log'],
      env,
    );
    assert.equal(excluded.code, 0, excluded.stderr);
    assert.match(excluded.stdout, /CREATE PUBLICATION "p_\w+" FOR TABLE "public"\."orders" WITH/);

    const applied = await runPgcdc([...args, '--replica-identity-full'], env);
    assert.equal(applied.code, 0, applied.stderr + applied.stdout);
    assert.match(
      applied.stdout,
      new RegExp(
        /\+ public\.audit_log: no primary key and REPLICA IDENTITY DEFAULT: /.source +
          /FULL keeps its UPDATE and DELETE working once published/.source,
      ),
    );
    await db.sql.query(`update audit_log set note = 'c'`);
    await db.sql.query(`delete from audit_log where note = 'c'`);

    const dir = await tempDir();
    const out = path.join(dir, 'events');
    const run = startPgcdc(
      [
        'run',
        ...sourceArgs(db, withoutPassword(db.url, user)),
        '--tables',
        'public.audit_log',
        '--snapshot-mode',
        'never',
        '--out',
        out,
        '--offsets',
        path.join(dir, 'offsets.json'),
      ],
      { PGPASSWORD: USER_PW },
    );
    const events = await eventually(async () => {
      const all = await readJsonl(out);
      return all.some((e) => e.value.op === 'd') ? all : undefined;
    }, 'the update and the delete made after setup');
    run.kill('SIGTERM');
    assert.equal(await run.exited, 0, run.stderr());
    assert.deepEqual(
      events.map((e) => [e.value.op, e.value.before?.note ?? null, e.value.after?.note ?? null]),
      [
        ['u', 'b', 'c'],
        ['d', 'c', null],
      ],
    );
  },
);

test(
  'the plan tells the truth about the server and the flags: no wal_level step on a logical server, the ' +
    'given user in the pg_hba hint, a check command that passes as printed',
  async () => {
    const db = await freshDatabase();
    await db.sql.query(`create table orders (id int primary key); create table orders_tmp (id int primary key)`);
    const adminPw = decodeURIComponent(new URL(db.url).password);
    const slot = `s_${db.name}`;
    const options = { platform: 'generic', user: 'cdc', tables: 'public.orders*', publication: true };
    const flags = ['--exclude-tables', 'public.*_tmp', '--signal-schema', 'pgcdc'];
    const plan = await runPgcdc(setupArgs(db, options, flags), { PGCDC_ADMIN_PASSWORD: adminPw });
    assert.equal(plan.code, 0, plan.stderr);
    assert.doesNotMatch(plan.stdout, /ALTER SYSTEM SET wal_level/);
    assert.match(plan.stdout, /wal_level is already logical on this server/);
    assert.match(plan.stdout, /host [a-z0-9_]+ cdc <address> scram-sha-256/);
    assert.doesNotMatch(plan.stdout, /pgcdc_user|5432|not connected/);

    const applied = await runPgcdc(setupArgs(db, { ...options, apply: true }, flags), {
      PGCDC_ADMIN_PASSWORD: adminPw,
      PGCDC_USER_PASSWORD: USER_PW,
    });
    assert.equal(applied.code, 0, applied.stderr + applied.stdout);
    assert.doesNotMatch(applied.stdout, /wal_level/, 'nothing about wal_level is left to do');
    const printed = /^next, with the password of cdc in PGPASSWORD or ~\/\.pgpass: (pgcdc check .*)$/m.exec(
      applied.stdout,
    )?.[1];
    assert.ok(printed !== undefined, applied.stdout);
    const port = new URL(db.url).port;
    assert.ok(printed.includes(`'postgres://cdc@127.0.0.1:${port}/${db.name}?sslmode=disable'`), printed);
    assert.ok(
      printed.includes("--tables 'public.orders*' --exclude-tables 'public.*_tmp' --signal-table pgcdc.pgcdc_signal"),
      printed,
    );
    assert.ok(printed.includes(`--slot ${slot} --publication p_${db.name}`), printed);
    assert.ok(plan.stdout.includes(printed), 'the plan prints the same check command');
    assert.ok(!printed.includes(USER_PW) && !printed.includes(`:${adminPw}@`), 'no password in the command');

    // Printed again, the plan says what is now in place instead of SQL that would fail.
    const again = await runPgcdc(setupArgs(db, options, flags), { PGCDC_ADMIN_PASSWORD: adminPw });
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /-- already in place: capture user cdc\n/);
    assert.match(again.stdout, /-- already in place: slot s_\w+ \(pgoutput\)/);
    assert.doesNotMatch(again.stdout, /CREATE ROLE|CREATE PUBLICATION|pg_create_logical_replication_slot/);

    // Run it as printed, through a shell, with the password from the environment.
    const shell = spawn('sh', ['-c', `${process.execPath} --import tsx ${MAIN} ${printed.replace(/^pgcdc /, '')}`], {
      cwd: path.dirname(path.dirname(path.dirname(MAIN))),
      env: { ...process.env, PGPASSWORD: USER_PW, PGCDC_TEST: undefined },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    shell.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    shell.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => shell.on('exit', resolve));
    assert.equal(code, 0, output);
    assert.match(output, /tables: public\.orders\b/);
    assert.doesNotMatch(output, /orders_tmp/);
  },
);
