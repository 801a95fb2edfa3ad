/**
 * The table selection (--tables, --tables-file, --exclude-tables) on a real PostgreSQL: it governs
 * the snapshot, the stream, initial_only, `pgcdc snapshot` requests and execute-snapshot signals
 * alike; a request or signal for a table outside it is refused where it is made, or logged and
 * dropped where it reaches the capture, never fatal; check and run warn about publication tables
 * outside it; run logs preflight warnings at warn level.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { eventually, freshDatabase, onTeardown, type TestDatabase } from '../harness/pg.ts';
import { readJsonl, runPgcdc, startPgcdc } from '../harness/cli.ts';
import { caughtUp, incrementalDone, outDir, storedProgress } from '../harness/snapshots.ts';

const SIGNAL = 'public.pgcdc_signal';

async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  onTeardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function runArgs(db: TestDatabase, dir: string, extra: string[]): string[] {
  return [
    'run',
    '--source',
    db.url,
    '--slot',
    `s_${db.name}`,
    '--publication',
    'sel_pub',
    '--out',
    outDir(dir),
    '--offsets',
    path.join(dir, 'offsets.json'),
    '--log-format',
    'json',
    '--snapshot-progress',
    'off',
    ...extra,
  ];
}

async function seed(db: TestDatabase, tables: readonly string[], rows: number): Promise<void> {
  for (const table of tables) {
    await db.sql.query(`create table ${table} (id int primary key, label text)`);
    await db.sql.query(`insert into ${table} select g, 'row ' || g from generate_series(1, ${rows}) g`);
  }
}

/** pino JSON records on stderr. */
function records(stderr: string): { level: number; msg: string; [key: string]: unknown }[] {
  return stderr
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as { level: number; msg: string });
}

const WARN = 40;

async function streamingUp(proc: ReturnType<typeof startPgcdc>): Promise<void> {
  await eventually(() => (proc.stderr().includes('"msg":"streaming"') ? true : undefined), 'pgcdc to stream');
}

async function stopCaughtUp(db: TestDatabase, dir: string, proc: ReturnType<typeof startPgcdc>): Promise<void> {
  await eventually(
    async () => ((await caughtUp(db.sql, path.join(dir, 'offsets.json'))) ? true : undefined),
    'the stream to catch up',
  );
  proc.kill('SIGTERM');
  assert.equal(await proc.exited, 0, proc.stderr());
}

const topicsOf = (events: { topic: string }[]): string[] =>
  [...new Set(events.map((e) => e.topic.split('.').slice(1).join('.')))].sort();

test(
  'a publication with 3 tables and --tables naming 1: only that table is snapshotted and streamed; run ' +
    'warns about the others and about TLS at warn level',
  async () => {
    const db = await freshDatabase();
    const dir = await tempDir('pgcdc-sel-stream-');
    await seed(db, ['a', 'b', 'c'], 50);
    await db.sql.query(`create publication sel_pub for table a, b, c`);
    const proc = startPgcdc(runArgs(db, dir, ['--tables', 'public.a']));
    await streamingUp(proc);
    await db.sql.query(
      `begin; insert into a values (1001, 'new'); insert into b values (1001, 'new'); update c set label = 'x' ` +
        `where id = 1; commit`,
    );
    await db.sql.query(`insert into b values (1002, 'only b')`);
    await db.sql.query(`truncate b, c`);
    await db.sql.query(`insert into a values (1002, 'last')`);
    await stopCaughtUp(db, dir, proc);
    const events = await readJsonl(outDir(dir));
    assert.deepEqual(topicsOf(events), ['public.a'], 'only the selected table has events');
    assert.equal(events.filter((e) => e.value.op === 'r').length, 50);
    assert.deepEqual(
      events.filter((e) => e.value.op === 'c').map((e) => e.value.after?.id),
      [1001, 1002],
    );
    const logs = records(proc.stderr());
    const extra = logs.find(
      (r) => r.level === WARN && /publication sel_pub also publishes public\.b, public\.c/.test(r.msg),
    );
    assert.ok(extra, `a warning names the tables outside the selection: ${proc.stderr()}`);
    assert.match(String(extra.fix), /ALTER PUBLICATION "?sel_pub"? DROP TABLE/);
    if (db.url.includes('sslmode=disable')) {
      assert.ok(
        logs.some((r) => r.level === WARN && /not encrypted/.test(r.msg)),
        'the TLS-off warning at warn level',
      );
    }
  },
);

test('check warns when the publication holds tables outside the selection, naming them and the fix', async () => {
  const db = await freshDatabase();
  await seed(db, ['a', 'b', 'c'], 1);
  await db.sql.query(`create publication sel_pub for table a, b, c`);
  const result = await runPgcdc([
    'check',
    '--source',
    db.url,
    '--publication',
    'sel_pub',
    '--tables',
    'public.a',
    '--json',
  ]);
  const report = JSON.parse(result.stdout) as { warnings: { code: string; message: string; fix: string }[] };
  const warning = report.warnings.find((w) => w.code === 'publication-extra-tables');
  assert.ok(warning, result.stdout);
  assert.match(warning.message, /public\.b, public\.c/);
  assert.match(warning.fix, /ALTER PUBLICATION "sel_pub" DROP TABLE "public"."b", "public"."c";/);
  assert.match(warning.fix, /--tables/);
  const whole = await runPgcdc(['check', '--source', db.url, '--publication', 'sel_pub', '--json']);
  assert.ok(
    !(JSON.parse(whole.stdout) as { warnings: { code: string }[] }).warnings.some(
      (w) => w.code === 'publication-extra-tables',
    ),
    'no warning without a selection',
  );
});

test('initial_only with a pattern and an exclusion exports exactly the selected tables', async () => {
  const db = await freshDatabase();
  const dir = await tempDir('pgcdc-sel-only-');
  await seed(db, ['a1', 'a2', 'a_tmp', 'b1'], 20);
  const result = await runPgcdc(
    runArgs(db, dir, ['--tables', 'public.a*', '--exclude-tables', 'public.a_tmp', '--snapshot-mode', 'initial_only']),
  );
  assert.equal(result.code, 0, result.stderr);
  const events = await readJsonl(outDir(dir));
  assert.deepEqual(topicsOf(events), ['public.a1', 'public.a2']);
  assert.equal(events.length, 40);
});

test(
  'pgcdc snapshot of a typo or of an uncaptured table exits 2 naming it and listing the captured tables; ' +
    'the capture keeps running',
  async () => {
    const db = await freshDatabase();
    const dir = await tempDir('pgcdc-sel-request-');
    const offsets = path.join(dir, 'offsets.json');
    await seed(db, ['a', 'b', 'other'], 30);
    const proc = startPgcdc(runArgs(db, dir, ['--tables', 'public.a,public.b', '--snapshot-mode', 'never']));
    await streamingUp(proc);
    for (const [table, reason] of [
      ['public.typo', /public\.typo/],
      ['public.other', /public\.other/],
    ] as const) {
      const asked = await runPgcdc(['snapshot', table, '--offsets', offsets]);
      assert.equal(asked.code, 2, asked.stdout + asked.stderr);
      assert.match(asked.stderr, reason);
      assert.match(asked.stderr, /public\.a, public\.b/, 'the captured tables are listed');
      assert.doesNotMatch(asked.stdout + asked.stderr, /taken|queued/);
    }
    // Without the capture's list (as while it starts), the request is made and the capture drops
    // it: pgcdc snapshot says so, never "taken".
    const list = path.join(`${offsets}.requests`, '.captured');
    await rename(list, `${list}.aside`);
    const dropped = await runPgcdc(['snapshot', 'public.other', '--offsets', offsets, '--json']);
    assert.equal(dropped.code, 2, dropped.stdout + dropped.stderr);
    assert.equal((JSON.parse(dropped.stdout) as { outcome: string }).outcome, 'dropped');
    assert.match(
      proc.stderr(),
      new RegExp(
        /dropped snapshot request .*it names public\.other, /.source +
          /which this capture does not capture \(it captures public\.a, public\.b\)/.source,
      ),
    );
    await rename(`${list}.aside`, list);
    const good = await runPgcdc(['snapshot', 'public.b', '--offsets', offsets, '--json']);
    assert.equal(good.code, 0, good.stderr);
    assert.equal((JSON.parse(good.stdout) as { outcome: string }).outcome, 'taken');
    // Without a signal table, incremental snapshots need PostgreSQL 13+ (the read-only method).
    const readable = db.server.major >= 13;
    if (readable)
      await eventually(
        async () => (incrementalDone(await storedProgress(offsets)) ? true : undefined),
        'the snapshot of b',
      );
    await db.sql.query(`insert into a values (1001, 'after')`);
    await stopCaughtUp(db, dir, proc);
    const events = await readJsonl(outDir(dir));
    assert.deepEqual(topicsOf(events), readable ? ['public.a', 'public.b'] : ['public.a']);
    assert.equal(events.filter((e) => e.value.op === 'r').length, readable ? 30 : 0, 'b only');
    // With no capture running, the names are checked against the last one's tables.
    const stopped = await runPgcdc(['snapshot', 'public.other', '--offsets', offsets]);
    assert.equal(stopped.code, 2, stopped.stdout + stopped.stderr);
    assert.match(
      stopped.stderr,
      new RegExp(
        /public\.other is not captured by the last pgcdc run using .*/.source +
          /it captured public\.a, public\.b; none is running now/.source,
      ),
    );
    const queued = await runPgcdc(['snapshot', 'public.a', '--offsets', offsets]);
    assert.equal(queued.code, 0, queued.stderr);
    assert.match(queued.stdout, /queued snapshot request .* for public\.a: no pgcdc run is using/);
  },
);

test(
  'a bad request file and an execute-snapshot signal naming a missing or uncaptured table are logged and ' +
    'dropped; the capture keeps running and a restart works',
  async () => {
    const db = await freshDatabase();
    const dir = await tempDir('pgcdc-sel-signal-');
    const offsets = path.join(dir, 'offsets.json');
    await seed(db, ['a', 'other'], 10);
    await db.sql.query(
      `create table ${SIGNAL} (id varchar(255) primary key, type varchar(32) not null, data varchar(2000) null)`,
    );
    // Requests queued while no capture runs reach the capture unvalidated: one names a typo, one an
    // uncaptured table, one is not JSON.
    const requests = `${offsets}.requests`;
    await mkdir(requests, { recursive: true });
    await writeFile(path.join(requests, '0-typo.json'), JSON.stringify({ tables: ['public.typo'] }));
    await writeFile(path.join(requests, '1-other.json'), JSON.stringify({ tables: ['public.other'] }));
    await writeFile(path.join(requests, '2-bad.json'), 'not json');
    const args = runArgs(db, dir, [
      '--tables',
      `public.a,${SIGNAL}`,
      '--signal-table',
      SIGNAL,
      '--snapshot-method',
      'signal-table',
      '--snapshot-mode',
      'never',
    ]);
    let proc = startPgcdc(args);
    await streamingUp(proc);
    await eventually(
      async () => ((await readdir(requests)).some((f) => f.endsWith('.json')) ? undefined : true),
      'the request files to be dropped',
    );
    await db.sql.query(
      `insert into ${SIGNAL} values ('s1', 'execute-snapshot', '{"data-collections": ["public.missing"]}'), ` +
        `('s2', 'execute-snapshot', '{"data-collections": ["public.other"]}')`,
    );
    await db.sql.query(`insert into a values (1001, 'still streaming')`);
    await eventually(
      async () => ((await readJsonl(outDir(dir))).some((e) => e.value.after?.id === 1001) ? true : undefined),
      'the change after the signals',
    );
    await stopCaughtUp(db, dir, proc);
    const warnings = records(proc.stderr())
      .filter((r) => r.level === WARN)
      .map((r) => `${r.msg} ${JSON.stringify(r)}`);
    for (const name of ['public.typo', 'public.other', 'public.missing', '2-bad.json']) {
      assert.ok(
        warnings.some((w) => w.includes(name)),
        `a warning names ${name}: ${warnings.join('\n')}`,
      );
    }
    assert.equal((await storedProgress(offsets))?.incremental?.tables.length ?? 0, 0, 'nothing was requested');
    // The restart finds nothing left of them and streams.
    proc = startPgcdc(args);
    await streamingUp(proc);
    await db.sql.query(`insert into a values (1002, 'after the restart')`);
    await eventually(
      async () => ((await readJsonl(outDir(dir))).some((e) => e.value.after?.id === 1002) ? true : undefined),
      'the change after the restart',
    );
    await stopCaughtUp(db, dir, proc);
    assert.deepEqual(topicsOf(await readJsonl(outDir(dir))), ['public.a']);
  },
);
