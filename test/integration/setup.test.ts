/**
 * `pgcdc setup --apply` on fresh databases, per platform profile that an embedded cluster can
 * emulate: the first run applies, the second changes nothing, then `pgcdc check` as the new user
 * passes. Passwords come from the environment and never appear in any output.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { freshDatabase, startCluster, type TestDatabase } from '../harness/pg.ts';
import { runPgcdc } from '../harness/cli.ts';

const USER_PW = 'canary-user-pw-91b2';

function withoutPassword(url: string, user?: string): string {
  const u = new URL(url);
  u.password = '';
  if (user) u.username = user;
  return u.toString();
}

/** `beforeCheck` plays the platform's part between setup and check (what its server does on its own). */
async function setupTwiceThenCheck(db: TestDatabase, platform: string, extra: string[] = [], beforeCheck?: () => Promise<void>): Promise<{ code: number; stdout: string }> {
  const user = `u_${db.name}`;
  await db.sql.query(`create table orders (id int primary key, note text); create schema sales; create table sales.leads (id int primary key);
    create table sales.tmp_x (id int primary key)`);
  const adminPw = new URL(db.url).password;
  const env = { PGCDC_ADMIN_PASSWORD: decodeURIComponent(adminPw), PGCDC_USER_PASSWORD: USER_PW };
  const args = ['setup', '--platform', platform, '--user', user, '--tables', 'public.orders,sales.*', '--exclude-tables', 'sales.tmp_*',
    '--signal-schema', 'pgcdc', '--heartbeat-schema', 'pgcdc', '--slot', `s_${db.name}`, '--apply', '--admin-url', withoutPassword(db.url), ...extra];
  const first = await runPgcdc(args, env);
  assert.equal(first.code, 0, first.stderr + first.stdout);
  assert.match(first.stdout, /\d+ applied/);
  const second = await runPgcdc(args, env);
  assert.equal(second.code, 0, second.stderr);
  assert.match(second.stdout, /0 applied, \d+ already in place \(nothing changed\)/);
  await beforeCheck?.();
  const check = await runPgcdc(['check', '--source', withoutPassword(db.url, user), '--tables', 'public.orders,sales.*', '--exclude-tables', 'sales.tmp_*',
    '--signal-table', 'pgcdc.pgcdc_signal', '--slot', `s_${db.name}`, '--json'], { PGPASSWORD: USER_PW });
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
    assert.ok(report.notes.some((n) => n.includes('tables: public.orders, sales.leads')), report.notes.join('\n'));
  });
}

for (const platform of ['rds', 'aurora']) {
  test(`setup --platform ${platform} --apply grants rds_replication, then check passes on an emulated ${platform} server`, async () => {
    const db = await freshDatabase();
    // The emulated platform: an rds_replication role, and rds.logical_replication reported as on
    // (a custom setting here; RDS's own parameter there), beside wal_level = logical.
    await db.sql.query(`do $$ begin if not exists (select 1 from pg_roles where rolname = 'rds_replication') then create role rds_replication nologin; end if; end $$;
      alter database ${db.name} set rds.logical_replication = 'on'`);
    const user = `u_${db.name}`;
    const check = await setupTwiceThenCheck(db, platform, [], async () => {
      const role = await db.sql.query<{ member: boolean; attribute: boolean }>(
        `select pg_has_role(rolname, 'rds_replication', 'member') as member, rolreplication as attribute from pg_roles where rolname = $1`, [user]);
      // setup took the RDS route: membership, not the REPLICATION attribute (RDS refuses ALTER ROLE ... REPLICATION).
      assert.deepEqual(role.rows[0], { member: true, attribute: false });
      // RDS's server lets rds_replication members open walsender connections; vanilla PostgreSQL
      // checks the role's own attribute, so the test grants it in the platform's place.
      await db.sql.query(`alter role ${user} with replication`);
    });
    assert.equal(check.code, 0, check.stdout);
    const report = JSON.parse(check.stdout) as { ok: boolean; errors: { code: string }[]; notes: string[] };
    assert.deepEqual(report.errors, [], check.stdout);
    assert.ok(report.notes.some((n) => n.includes('tables: public.orders, sales.leads')), report.notes.join('\n'));
  });
}

test('an emulated RDS instance whose parameter group lacks rds.logical_replication: check names the parameter group fix', async () => {
  const cluster = await startCluster({ settings: { wal_level: 'replica', wal_sender_timeout: '10s' } });
  const admin = new pg.Client({ connectionString: cluster.url('postgres') });
  await admin.connect();
  await admin.query(`alter database postgres set rds.logical_replication = 'off'`);
  await admin.end();
  const check = await runPgcdc(['check', '--source', cluster.url('postgres'), '--tables', 'pg_catalog.pg_class', '--json']);
  const report = JSON.parse(check.stdout) as { errors: { code: string; fix: string }[] };
  assert.equal(check.code, 1);
  assert.match(report.errors.find((e) => e.code === 'wal-level')?.fix ?? '', /custom DB parameter group .* rds\.logical_replication = 1/, check.stdout);
});

test('without the platform\'s walsender right, check on the rds profile names the failing replication connection', async () => {
  const db = await freshDatabase();
  await db.sql.query(`do $$ begin if not exists (select 1 from pg_roles where rolname = 'rds_replication') then create role rds_replication nologin; end if; end $$`);
  const check = await setupTwiceThenCheck(db, 'rds');
  const report = JSON.parse(check.stdout) as { errors: { code: string }[] };
  // Membership satisfies the role rule, so only the real replication connection can tell: check opens one.
  assert.deepEqual(report.errors.map((e) => e.code), ['replication-connect'], check.stdout);
});

test('setup prints a commented plan without connecting; refuses a password in --admin-url', async () => {
  const plan = await runPgcdc(['setup', '--platform', 'neon', '--tables', 'public.orders', '--database', 'shop']);
  assert.equal(plan.code, 0, plan.stderr);
  assert.match(plan.stdout, /remove "-pooler"/);
  assert.match(plan.stdout, /CREATE PUBLICATION "pgcdc_pub" FOR TABLE "public"\."orders" WITH \(publish_via_partition_root = true\);/);
  assert.match(plan.stdout, /ALTER ROLE "pgcdc_user" WITH REPLICATION;/);
  const bad = await runPgcdc(['setup', '--platform', 'generic', '--all-tables', '--apply', '--admin-url', 'postgres://admin:hunter2@127.0.0.1:1/db']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /must not contain a password/);
  assert.ok(!bad.stderr.includes('hunter2'));
});
