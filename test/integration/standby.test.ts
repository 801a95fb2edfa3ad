/**
 * `pgcdc check` against real hot standbys built from a primary (test/harness/standby.ts):
 * PostgreSQL 15 cannot decode logically on a standby (an error naming 16+), PostgreSQL 16 can
 * (passes, with the read-only warning), and a 16 standby without hot_standby_feedback is an error.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import type { EmbeddedCluster } from '../../src/embedded/cluster.ts';
import { startCluster } from '../harness/pg.ts';
import { runPgcdc } from '../harness/cli.ts';
import { startStandby } from '../harness/standby.ts';

interface JsonReport {
  ok: boolean;
  notes: string[];
  errors: { code: string; message: string; fix: string }[];
  warnings: { code: string; message: string; fix: string }[];
}

/** A primary with a published, keyed table; REPLICA IDENTITY FULL so only standby facts remain. */
async function primary(major: number): Promise<EmbeddedCluster> {
  const cluster = await startCluster({ major });
  const sql = new pg.Client({ connectionString: cluster.url('postgres') });
  await sql.connect();
  await sql.query(`create table orders (id int primary key, note text); alter table orders replica identity full;
    create publication pgcdc_pub for table orders; insert into orders values (1, 'a')`);
  await sql.end();
  return cluster;
}

async function check(cluster: EmbeddedCluster): Promise<{ code: number; report: JsonReport; text: string }> {
  const json = await runPgcdc(['check', '--source', cluster.url('postgres'), '--tables', 'public.orders', '--json']);
  const text = await runPgcdc(['check', '--source', cluster.url('postgres'), '--tables', 'public.orders']);
  assert.equal(json.code, text.code, text.stdout + text.stderr);
  return { code: json.code, report: JSON.parse(json.stdout) as JsonReport, text: text.stdout + text.stderr };
}

test('PostgreSQL 15 standby: check reports an error, logical decoding on a standby needs 16+', async () => {
  const standby = await startStandby(await primary(15));
  const { code, report, text } = await check(standby.cluster);
  assert.equal(code, 1, text);
  assert.deepEqual(
    report.errors.map((e) => e.code),
    ['standby'],
    text,
  );
  assert.match(
    report.errors[0]?.message ?? '',
    /standby \(read replica\) running PostgreSQL 15: logical decoding on a standby needs 16 or newer/,
  );
  assert.match(report.errors[0]?.fix ?? '', /point pgcdc at the primary/);
  assert.ok(
    report.notes.some((n) => /^PostgreSQL 15\.\d+ \(standby\)/.test(n)),
    report.notes.join('\n'),
  );
  await standby.cluster.destroy();
});

test('PostgreSQL 16 standby: check passes as read-only capable, and needs hot_standby_feedback', async () => {
  const source = await primary(16);
  const standby = await startStandby(source, { hotStandbyFeedback: true });
  const ok = await check(standby.cluster);
  assert.equal(ok.code, 0, ok.text);
  assert.ok(
    ok.report.warnings.some((w) => w.code === 'standby' && /pgcdc can only read here/.test(w.message)),
    ok.text,
  );
  assert.ok(
    ok.report.notes.some((n) => /^PostgreSQL 16\.\d+ \(standby\)/.test(n)),
    ok.report.notes.join('\n'),
  );

  const feedbackOff = await startStandby(source, { hotStandbyFeedback: false });
  const off = await check(feedbackOff.cluster);
  assert.equal(off.code, 1, off.text);
  assert.deepEqual(
    off.report.errors.map((e) => e.code),
    ['hot-standby-feedback'],
    off.text,
  );
  assert.match(off.report.errors[0]?.fix ?? '', /hot_standby_feedback = on/);
});
