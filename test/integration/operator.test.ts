/**
 * What `pgcdc run` tells its operator: a progress line at a configured interval whose numbers
 * match the events written, and, on start after a crash, the events the JSONL sink cut (written
 * past the stored checkpoint) with their count and the reason.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { eventually, freshDatabase, onTeardown, type TestDatabase } from '../harness/pg.ts';
import { readJsonl, startPgcdc } from '../harness/cli.ts';
import { logRecords, type LogRecord } from '../harness/process.ts';

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-operator-'));
  onTeardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** `pgcdc run` on `table` with JSON logs and the YAML `config` (the progress interval lives only there). */
async function run(
  db: TestDatabase,
  dir: string,
  table: string,
  config: string,
): Promise<ReturnType<typeof startPgcdc>> {
  const file = path.join(dir, 'pgcdc.yaml');
  await writeFile(file, config);
  return startPgcdc([
    'run',
    '--config',
    file,
    '--source',
    db.url,
    '--slot',
    `s_${db.name}`,
    '--publication',
    `p_${db.name}`,
    '--tables',
    table,
    '--out',
    path.join(dir, 'events'),
    '--offsets',
    path.join(dir, 'offsets.json'),
    '--log-format',
    'json',
  ]);
}

function progressLines(stderr: string): LogRecord[] {
  return logRecords(stderr).filter((r) => r.msg.startsWith('progress:'));
}

test('run logs a progress line at the configured interval whose numbers match the events written', async () => {
  const db = await freshDatabase();
  await db.sql.query('create table t (id int primary key, note text)');
  const dir = await tempDir();
  const proc = await run(db, dir, 'public.t', 'statusIntervalMs: 200\nlog:\n  statusLineIntervalMs: 300\n');
  await eventually(() => (proc.stderr().includes('"msg":"streaming"') ? true : undefined), 'streaming');
  await db.sql.query(`insert into t select g, 'x' from generate_series(1, 50) g`);
  await db.sql.query(`update t set note = 'y' where id <= 30`);
  const out = path.join(dir, 'events');
  await eventually(async () => ((await readJsonl(out)).length === 80 ? true : undefined), '80 events written');
  const line = await eventually(
    () => progressLines(proc.stderr()).find((r) => r.delivered === 80),
    'a progress line counting the 80 events',
  );
  proc.kill('SIGTERM');
  assert.equal(await proc.exited, 0, proc.stderr());

  const lines = progressLines(proc.stderr());
  assert.ok(
    lines.every((r) => r.level === 30),
    'info level',
  );
  // The per-line counts add up to the total, and the total is what was written.
  const upTo = lines.slice(0, lines.findIndex((r) => r.delivered === 80) + 1);
  assert.equal(
    upTo.reduce((sum, r) => sum + Number(r.deliveredSinceLast), 0),
    80,
  );
  assert.equal((await readJsonl(out)).length, line.delivered);
  assert.equal(line.lagBasis, 'received-minus-acked');
  assert.match(String(line.acked), /^[0-9A-F]+\/[0-9A-F]+$/);
  assert.ok(Number(line.unackedBytes) >= 0);
  assert.ok(Number(line.perSecond) >= 0);
  assert.match(
    line.msg,
    new RegExp(
      /^progress: 80 events delivered since streaming started, \d+ in the last \d+ s \([\d.]+\/s\); /.source +
        /acknowledged up to [0-9A-F]+\/[0-9A-F]+; \d+ bytes received and not yet acknowledged/.source,
    ),
  );
});

test(
  'on start after a crash, run says how many bytes and ' + 'events the JSONL sink cut from each file, and why',
  async () => {
    const db = await freshDatabase();
    await db.sql.query(`create table t (id int primary key); insert into t select generate_series(1, 3)`);
    const dir = await tempDir();
    const config = 'slot: s_x\n'; // overridden by --slot: the test needs nothing from the file
    const first = await run(db, dir, 'public.t', config);
    const out = path.join(dir, 'events');
    await eventually(async () => ((await readJsonl(out)).length === 3 ? true : undefined), 'the 3 snapshot rows');
    first.kill('SIGTERM');
    assert.equal(await first.exited, 0, first.stderr());
    assert.doesNotMatch(first.stderr(), /bytes \(\d+ event/);

    // What a crash leaves: events written to the file after the last stored checkpoint.
    const file = path.join(out, `${db.name}.public.t.jsonl`);
    const written = await readFile(file, 'utf8');
    const extra = written
      .split('\n')
      .slice(0, 2)
      .map((l) => `${l}\n`)
      .join('');
    await appendFile(file, extra);

    const second = await run(db, dir, 'public.t', config);
    await eventually(() => (second.stderr().includes('"msg":"streaming"') ? true : undefined), 'streaming again');
    second.kill('SIGTERM');
    assert.equal(await second.exited, 0, second.stderr());
    const cut = logRecords(second.stderr()).filter((r) => r.msg.startsWith('cut '));
    assert.equal(cut.length, 1, second.stderr());
    const [record] = cut;
    assert.equal(record?.level, 30);
    assert.equal(record?.file, file);
    assert.equal(record?.events, 2);
    assert.equal(record?.bytes, Buffer.byteLength(extra));
    assert.match(
      record?.msg ?? '',
      new RegExp(
        `^cut ${Buffer.byteLength(extra)} bytes \\(2 events\\) from .*\\.public\\.t\\.jsonl: they were written ` +
          (`after the last stored checkpoint \\(pgcdc ended, by a crash, a kill or a failure, before storing ` +
            `the checkpoint that covers them\\); they are written again`),
      ),
    );
    assert.equal(await readFile(file, 'utf8'), written, 'the file is back to its checkpointed events');
  },
);
