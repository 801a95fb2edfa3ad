/**
 * Bad NATS settings against a real nats-server (with users) and a real PostgreSQL: each stops pgcdc
 * with ONE line (the last on stderr, `pgcdc: error: ... [CODE]`) naming what is wrong, the exit code
 * README.md gives, and nothing acknowledged: no slot (the stream and the login are checked before the
 * slot is used) and no checkpoint in the KV bucket. Secrets never appear in the output.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { runPgcdc } from '../harness/cli.ts';
import { natsAvailable, natsForFile, type NatsServer } from '../harness/nats.ts';
import { kvCheckpoint, natsRunArgs, slotConfirmed, streamOf, writeRunConfig } from '../harness/nats-workload.ts';
import { freshDatabase, requireOrSkip, type TestDatabase } from '../harness/pg.ts';
import { logRecords } from '../harness/process.ts';

const skip = requireOrSkip(natsAvailable(), 'nats-server');

const PASSWORD = 'the-right-password';
const nats = natsForFile({ users: [{ user: 'pgcdc', password: PASSWORD }] });

interface Failure {
  code: number;
  line: string;
  stderr: string;
}

/** The last stderr line, which is the only `pgcdc: error:` line. */
function oneErrorLine(stderr: string): string {
  const lines = stderr.trim().split('\n');
  const errors = lines.filter((line) => line.startsWith('pgcdc: error:'));
  assert.equal(errors.length, 1, `one error line:\n${stderr.slice(-3000)}`);
  assert.equal(lines.at(-1), errors[0], 'the error line is the last line');
  return errors[0] ?? '';
}

/** A database with a table, and pgcdc run against `url` with `password` in a file and more `extra` flags. */
async function runAgainst(
  url: string,
  password: string,
  extra: readonly string[] = [],
): Promise<Failure & { db: TestDatabase }> {
  const db = await freshDatabase();
  await db.sql.query(`create table acct (id int primary key, note text)`);
  await db.sql.query(`insert into acct values (1, 'one'), (2, 'two')`);
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-nats-bad-'));
  const passwordFile = path.join(dir, 'nats-password');
  await writeFile(passwordFile, `${password}\n`, { mode: 0o600 });
  const config = await writeRunConfig(dir, [
    'sink:',
    '  connectTimeoutMs: 2000',
    '  auth:',
    '    user: pgcdc',
    '    password:',
    `      file: ${passwordFile}`,
  ]);
  const result = await runPgcdc(natsRunArgs({ db, url, offsets: path.join(dir, 'offsets.json'), config, extra }));
  assert.ok(!result.stderr.includes(password), 'the password is never printed');
  return { db, code: result.code, line: oneErrorLine(result.stderr), stderr: result.stderr };
}

async function assertNothingAcknowledged(server: NatsServer, db: TestDatabase): Promise<void> {
  assert.equal(await slotConfirmed(db), undefined, 'no slot was created');
  assert.equal(await kvCheckpoint(server, db), undefined, 'no checkpoint in the KV bucket');
}

test(
  'a closed port: retried, then one SINK_FAILED line naming the server, exit 1, nothing acknowledged',
  { skip },
  async (t) => {
    const server = await nats();
    const failure = await runAgainst('nats://127.0.0.1:1', PASSWORD, ['--retry-give-up-after', '3000']);
    assert.equal(failure.code, 1, failure.stderr.slice(-3000));
    assert.match(failure.line, /127\.0\.0\.1:1/);
    assert.match(failure.line, /\[SINK_FAILED\]$/);
    assert.ok(
      logRecords(failure.stderr).some((r) => typeof r.retry === 'number'),
      'it was retried first',
    );
    await assertNothingAcknowledged(server, failure.db);
    t.diagnostic(failure.line);
  },
);

test('a wrong password: one AUTH_FAILED line, exit 2, nothing acknowledged', { skip }, async (t) => {
  const server = await nats();
  const failure = await runAgainst(server.url, 'a-wrong-password');
  assert.equal(failure.code, 2, failure.stderr.slice(-3000));
  assert.match(failure.line, /refused the login/);
  assert.match(failure.line, /127\.0\.0\.1:\d+/);
  assert.match(failure.line, /sink\.auth/);
  assert.match(failure.line, /\[AUTH_FAILED\]$/);
  assert.ok(!logRecords(failure.stderr).some((r) => typeof r.retry === 'number'), 'not retried');
  await assertNothingAcknowledged(server, failure.db);
  t.diagnostic(failure.line);
});

test(
  'an existing stream whose subjects do not cover the topic: one line naming both, exit 2, nothing acknowledged',
  { skip },
  async (t) => {
    const server = await nats();
    const db = await freshDatabase();
    // The stream pgcdc would use for this database, made beforehand with other subjects.
    const stream = streamOf(db);
    await server.with(async (nc) => {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: stream, subjects: [`elsewhere_${db.name}.>`] });
    });
    const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-nats-bad-'));
    await db.sql.query(`create table acct (id int primary key, note text)`);
    const passwordFile = path.join(dir, 'nats-password');
    await writeFile(passwordFile, `${PASSWORD}\n`, { mode: 0o600 });
    const config = await writeRunConfig(dir, [
      'sink:',
      '  auth:',
      '    user: pgcdc',
      '    password:',
      `      file: ${passwordFile}`,
    ]);
    const result = await runPgcdc(
      natsRunArgs({ db, url: server.url, offsets: path.join(dir, 'offsets.json'), config }),
    );
    assert.equal(result.code, 2, result.stderr.slice(-3000));
    const line = oneErrorLine(result.stderr);
    assert.ok(line.includes(`NATS stream ${stream} does not take subject ${db.name}.public.acct`), line);
    assert.ok(line.includes(`its subjects are elsewhere_${db.name}.>`), line);
    assert.match(line, /\[CONFIG_INVALID\]$/);
    await assertNothingAcknowledged(server, db);
    await server.deleteStream(stream);
    t.diagnostic(line);
  },
);
