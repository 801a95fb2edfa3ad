/**
 * `pgcdc check` against deliberately misconfigured clusters: every problem is reported with its
 * fix, exit 1 with errors and 0 without, JSON for machines, the password never printed; and
 * `pgcdc run` stops on the same errors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freshDatabase, startCluster, type TestDatabase } from '../harness/pg.ts';
import { runPgcdc } from '../harness/cli.ts';

const CANARY = 'canary-Pw-7f3a9c';

interface JsonReport {
  ok: boolean;
  errors: { code: string; message: string; fix: string }[];
  warnings: { code: string; message: string; fix: string }[];
}

/** A login role with the canary password; its URL carries no password (PGPASSWORD does). */
async function captureUser(db: TestDatabase, options: string): Promise<{ user: string; url: string }> {
  const user = `u_${db.name}`;
  await db.sql.query(`create role ${user} login password '${CANARY}' ${options}`);
  const url = new URL(db.url);
  url.username = user;
  url.password = '';
  return { user, url: url.toString() };
}

async function check(url: string, args: string[] = []): Promise<{ code: number; report: JsonReport; text: string }> {
  const env = { PGPASSWORD: CANARY };
  const json = await runPgcdc(['check', '--source', url, '--json', ...args], env);
  const text = await runPgcdc(['check', '--source', url, ...args], env);
  for (const out of [json.stdout, json.stderr, text.stdout, text.stderr])
    assert.ok(!out.includes(CANARY), 'the password must never be printed');
  assert.equal(text.code, json.code, text.stderr);
  let report: JsonReport;
  try {
    report = JSON.parse(json.stdout) as JsonReport;
  } catch {
    throw new Error(`not JSON: ${json.stdout} ${json.stderr}`);
  }
  return { code: json.code, report, text: text.stdout };
}

const codes = (list: { code: string }[]): string[] => list.map((p) => p.code).sort();

test('a correct setup passes: exit 0, warnings only', async () => {
  const db = await freshDatabase();
  const { user, url } = await captureUser(db, 'replication');
  await db.sql.query(`create table orders (id int primary key, note text); alter table orders replica identity full;
    create publication pgcdc_pub for table orders; grant select on orders to ${user}`);
  const { code, report, text } = await check(url, ['--tables', 'public.orders']);
  assert.equal(code, 0, text);
  assert.equal(report.ok, true);
  assert.deepEqual(report.errors, []);
  assert.ok(codes(report.warnings).includes('tls-off'), text);
  assert.match(text, /OK with \d+ warnings?/);
});

test('a misconfigured database: every error at once, each with its fix', async () => {
  const db = await freshDatabase();
  const { url } = await captureUser(db, '');
  await db.sql.query(`create table keyless (a int, b text); create table orders (id int primary key)`);
  const { code, report, text } = await check(url, ['--tables', 'public.*', '--no-create-publication']);
  assert.equal(code, 1, text);
  assert.equal(report.ok, false);
  const errors = codes(report.errors);
  for (const expected of [
    'publication-missing',
    'replica-identity-missing',
    'replication-privilege',
    'select-privilege',
  ]) {
    assert.ok(errors.includes(expected), `${expected} in ${errors.join(', ')}`);
  }
  assert.ok(report.errors.every((e) => e.fix.length > 0));
  assert.match(
    report.errors.find((e) => e.code === 'replication-privilege')?.fix ?? '',
    /ALTER ROLE "u_t_[0-9a-f]+" WITH REPLICATION;/,
  );
  assert.match(
    report.errors.find((e) => e.code === 'replica-identity-missing')?.fix ?? '',
    /ALTER TABLE "public"\."keyless" REPLICA IDENTITY FULL;/,
  );
  assert.match(
    report.errors.find((e) => e.code === 'publication-missing')?.fix ?? '',
    /CREATE PUBLICATION "pgcdc_pub" FOR TABLE "public"\."keyless", "public"\."orders"/,
  );
  assert.match(text, /Errors \(\d+\):[\s\S]*fix: [\s\S]*FAILED: \d+ errors/);
});

test(
  'publication coverage, partitioned table without via_root, signal table, ' + 'DEFAULT identity, foreign slot',
  async (t) => {
    const db = await freshDatabase();
    if (db.server.major < 13) return t.skip('partitioned tables join publications from PostgreSQL 13');
    const { user, url } = await captureUser(db, 'replication');
    await db.sql.query(
      `create table m (id int, at date, primary key (id, at)) partition by range (at);
    create table m_2025 partition of m for values from ('2025-01-01') to ('2026-01-01');
    create table plain (id int primary key); create table other (id int primary key);
    create publication pgcdc_pub for table m, plain;
    create schema pgcdc; create table pgcdc.pgcdc_signal (id varchar(255) primary key, type varchar(32) not ` +
        `null, data varchar(2000));
    grant usage on schema pgcdc to ` +
        (`${user}; grant select on all tables in schema public to ` +
          `${user}; grant select on pgcdc.pgcdc_signal to ${user}`),
    );
    await db.sql.query(`select pg_create_logical_replication_slot('slot_${db.name}', 'test_decoding')`);
    const { code, report, text } = await check(url, [
      '--tables',
      'public.m,public.plain,public.other',
      '--signal-table',
      'pgcdc.pgcdc_signal',
      '--slot',
      `slot_${db.name}`,
    ]);
    assert.equal(code, 1, text);
    const errors = codes(report.errors);
    assert.deepEqual(errors, ['publication-coverage', 'signal-table-privilege', 'slot-plugin'], text);
    assert.match(
      report.errors.find((e) => e.code === 'publication-coverage')?.message ?? '',
      /public\.other, pgcdc\.pgcdc_signal/,
    );
    const warnings = codes(report.warnings);
    assert.ok(
      warnings.includes('partition-root') && warnings.includes('replica-identity-default'),
      warnings.join(', '),
    );
    assert.match(
      report.warnings.find((w) => w.code === 'partition-root')?.fix ?? '',
      /SET \(publish_via_partition_root = true\)/,
    );
  },
);

test('wal_level=replica: check names it, and run stops before streaming with the same error', async () => {
  const cluster = await startCluster({
    settings: { wal_level: 'replica', max_wal_senders: 5, wal_sender_timeout: '10s' },
  });
  const admin = cluster.url('postgres');
  const { code, report, text } = await check(admin, ['--tables', 'pg_catalog.*']);
  assert.equal(code, 1, text);
  assert.ok(codes(report.errors).includes('wal-level'), text);
  assert.match(report.errors.find((e) => e.code === 'wal-level')?.fix ?? '', /wal_level = 'logical'/);
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-check-run-'));
  const url = new URL(admin);
  url.password = '';
  const run = await runPgcdc(
    ['run', '--source', url.toString(), '--out', path.join(dir, 'events'), '--offsets', path.join(dir, 'o.json')],
    {
      PGPASSWORD: cluster.password,
    },
  );
  assert.equal(run.code, 1, run.stderr);
  assert.match(run.stderr, /wal_level is replica.*\[PREFLIGHT_FAILED\]/);
});

test('a server that cannot be reached is a reported problem (exit 1), not a crash', async () => {
  const { code, report } = await check('postgres://nobody@127.0.0.1:1/db');
  assert.equal(code, 1);
  assert.deepEqual(codes(report.errors), ['connect']);
});

test('wrong password: auth problem, the password is not printed', async () => {
  const db = await freshDatabase();
  const url = new URL(db.url);
  url.password = CANARY;
  const out = await runPgcdc(['check', '--source', url.toString()]);
  assert.equal(out.code, 1);
  assert.match(out.stdout, /\[auth\] authentication failed/);
  assert.ok(!out.stdout.includes(CANARY) && !out.stderr.includes(CANARY));
});
