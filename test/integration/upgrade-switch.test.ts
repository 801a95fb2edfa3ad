/**
 * Major upgrades without pg_upgrade (docs/upgrades.md), on real 17 and 18 clusters:
 * - dump/restore (pg_dump | psql) into a new-major cluster: a new identity and no slot, so pgcdc
 *   refuses the old offsets in one line; a start over on the new cluster reads the tables again;
 * - blue/green: green (18) follows blue (17) by logical replication; at the cut-over (writes
 *   stopped on blue, green caught up, the subscription dropped) pgcdc's slot is created on green
 *   before any application writes there, pgcdc on blue is drained and stopped, and pgcdc on green
 *   streams from that slot. Blue's output then green's, replayed, equal green's table.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type pg from 'pg';
import type { EmbeddedCluster } from '../../src/embedded/cluster.ts';
import { captureArgs, compareRows, readJsonl, replay, runPgcdc } from '../harness/cli.ts';
import { eventually } from '../harness/pg.ts';
import { connect } from '../harness/streaming.ts';
import {
  awaitStreaming,
  capturedSource,
  errorLines,
  requireUpgradeBinaries,
  startCapture,
  stopCaughtUp,
  streamingSource,
  upgradeBinDir,
  upgradeCluster,
  workloadRuns,
} from '../harness/upgrade.ts';

async function rowsOf(sql: pg.Client): Promise<Map<string, Record<string, unknown>>> {
  const { rows } = await sql.query<{ id: number; balance: number }>(`select id, balance from acct order by id`);
  return new Map(rows.map((r) => [JSON.stringify({ id: r.id }), { id: r.id, balance: r.balance }]));
}

/** An empty database `name` on `cluster`, and a client of it. */
async function databaseNamed(cluster: EmbeddedCluster, name: string): Promise<pg.Client> {
  const admin = await connect(cluster.url('postgres'));
  await admin.query(`create database ${name}`);
  return connect(cluster.url(name));
}

/** pg_dump (the new major's) of `db` on `from`, restored with psql into the same name on `to`. */
async function dumpRestore(from: EmbeddedCluster, to: EmbeddedCluster, db: string, schemaOnly: boolean): Promise<void> {
  const bin = upgradeBinDir(to.major) ?? '';
  const file = path.join(to.base, `${db}.sql`);
  const env = { PGPASSWORD: from.password };
  const where = (c: EmbeddedCluster): string[] => ['-h', '127.0.0.1', '-p', String(c.port), '-U', 'postgres', '-d', db];
  await to.runTool(
    path.join(bin, 'pg_dump'),
    [...where(from), ...(schemaOnly ? ['--schema-only'] : []), '-f', file],
    env,
  );
  await to.runTool(path.join(bin, 'psql'), [...where(to), '-v', 'ON_ERROR_STOP=1', '-q', '-f', file], env);
}

test(
  'dump/restore into 18: the old offsets are refused in one line; a start over reads the tables ' + 'again',
  async (t) => {
    const skip = requireUpgradeBinaries([17, 18]);
    if (skip) return t.skip(skip);
    const { cluster: old, db, dir } = await capturedSource(17, 'pgcdc-dump-', 50);

    const next = await upgradeCluster(18);
    const sql = await databaseNamed(next, db.name);
    await dumpRestore(old, next, db.name, false);
    const newDb = { ...db, url: next.url(db.name), sql };
    const refused = await runPgcdc(captureArgs(newDb, dir, 'public.acct'));
    assert.equal(refused.code, 1, refused.stderr);
    const lines = errorLines(refused.stderr);
    assert.equal(lines.length, 1, refused.stderr);
    assert.match(lines[0] ?? '', /a different PostgreSQL cluster .* without slot/);
    assert.match(lines[0] ?? '', /docs\/upgrades\.md/);

    // The runbook: a new offsets file and output on the new cluster, its initial snapshot first.
    const fresh = await mkdtemp(path.join(tmpdir(), 'pgcdc-dump-new-'));
    const again = startCapture(newDb, fresh);
    await awaitStreaming(again, 'pgcdc streaming on 18');
    await workloadRuns(newDb.url, 50);
    await stopCaughtUp(sql, fresh, again, 'caught up on 18');
    const events = await readJsonl(path.join(fresh, 'events'));
    const compared = compareRows(replay(events).tables.get(`${db.name}.public.acct`), await rowsOf(sql));
    console.log(
      `dump/restore 17 -> 18: refused (${lines[0]}); start over: ${events.length} events, ${JSON.stringify(compared)}`,
    );
    assert.deepEqual(compared, { lost: 0, extra: 0, mismatched: 0 });
  },
);

test(
  'blue/green 17 -> 18 by logical replication: pgcdc moves to green at the cut-over, nothing lost ' + 'or twice',
  async (t) => {
    const skip = requireUpgradeBinaries([17, 18]);
    if (skip) return t.skip(skip);
    const { cluster: blue, db, dir: blueDir, capture: onBlue } = await streamingSource(17, 'pgcdc-blue-');

    // Green: the schema, then a subscription copying the rows and following blue's changes.
    const green = await upgradeCluster(18);
    const greenSql = await databaseNamed(green, db.name);
    await dumpRestore(blue, green, db.name, true);
    await db.sql.query(`create publication bluegreen for table acct`);
    await greenSql.query(
      `create subscription bluegreen connection 'host=127.0.0.1 port=${blue.port} dbname=${db.name} user=postgres ` +
        `password=${blue.password}' publication bluegreen`,
    );
    const onBlueCount = await workloadRuns(db.url, 100);

    // Cut-over: writes stopped on blue (above); green caught up; pgcdc on blue delivered everything.
    const blueRows = await rowsOf(db.sql);
    await eventually(
      async () => (JSON.stringify([...(await rowsOf(greenSql))]) === JSON.stringify([...blueRows]) ? true : undefined),
      'green caught up with blue',
    );
    await stopCaughtUp(db.sql, blueDir, onBlue, 'pgcdc on blue caught up');
    await greenSql.query(`alter subscription bluegreen disable`);
    await greenSql.query(`alter subscription bluegreen set (slot_name = none)`);
    await greenSql.query(`drop subscription bluegreen`);
    // The disabled subscription's walsender on blue lets go of the slot a moment later.
    const active = `select 1 from pg_replication_slots where slot_name = 'bluegreen' and active`;
    await eventually(
      async () => ((await db.sql.query(active)).rowCount === 0 ? true : undefined),
      'the subscription released its slot on blue',
    );
    await db.sql.query(`select pg_drop_replication_slot('bluegreen')`);
    // pgcdc's slot on green before the applications write there: it streams every change after.
    await greenSql.query(`select pg_create_logical_replication_slot($1, 'pgoutput')`, [`s_${db.name}`]);

    const greenDb = { ...db, url: green.url(db.name), sql: greenSql };
    const greenDir = await mkdtemp(path.join(tmpdir(), 'pgcdc-green-'));
    const onGreen = startCapture(greenDb, greenDir, ['--snapshot-mode', 'never']);
    await awaitStreaming(onGreen, 'pgcdc streaming on green');
    const onGreenCount = await workloadRuns(greenDb.url, 100);
    await stopCaughtUp(greenSql, greenDir, onGreen, 'pgcdc on green caught up');

    // A consumer reads blue's output, then green's.
    const events = [
      ...(await readJsonl(path.join(blueDir, 'events'))),
      ...(await readJsonl(path.join(greenDir, 'events'))),
    ];
    const replayed = replay(events);
    const compared = compareRows(replayed.tables.get(`${db.name}.public.acct`), await rowsOf(greenSql));
    console.log(
      `blue/green 17 -> 18: ${onBlueCount} transactions on blue, ${onGreenCount} on green; ${events.length} events; ` +
        `lost ${compared.lost + compared.extra + compared.mismatched}, duplicated ${replayed.duplicates}`,
    );
    assert.deepEqual(compared, { lost: 0, extra: 0, mismatched: 0 });
    assert.equal(replayed.duplicates, 0);
  },
);
