/**
 * The NATS JetStream sink end to end: the real CLI, a real PostgreSQL and a real nats-server with
 * JetStream. What pgcdc delivered is read back by an ordered consumer (stream order), replayed by key
 * onto empty maps and compared with the source table:
 * - an initial snapshot and an insert/update/delete workload: 0 lost, extra, mismatched, and no
 *   event id twice; each message's Nats-Msg-Id is its event id, Pgcdc-Lsn the id's LSN;
 * - `--offsets nats`: a pgcdc with no local state resumes exactly from the checkpoint in the KV bucket;
 * - a server that wants a password (user/password from a file) or a token (from the environment).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { MAIN, startPgcdc, type PgcdcProcess } from '../harness/cli.ts';
import { natsAvailable, natsForFile, type NatsServer } from '../harness/nats.ts';
import {
  awaitStreaming as streaming,
  kvCheckpoint,
  natsRunArgs,
  natsVerdict,
  slotCaughtUp,
  slotOf,
  streamOf,
  writeRunConfig,
  type NatsVerdict,
} from '../harness/nats-workload.ts';
import { eventually, freshDatabase, onTeardown, requireOrSkip, type TestDatabase } from '../harness/pg.ts';
import { logRecords } from '../harness/process.ts';

const skip = requireOrSkip(natsAvailable(), 'nats-server');

const nats = natsForFile();
const natsWithUsers = natsForFile({ users: [{ user: 'pgcdc', password: 'pw-in-a-file' }] });
const natsWithToken = natsForFile({ token: 'token-in-the-env' });

/** Waits until `proc` confirmed everything the source wrote, then stops it (SIGTERM, exit 0). */
async function catchUpAndStop(proc: PgcdcProcess, db: TestDatabase): Promise<void> {
  await eventually(() => slotCaughtUp(db), 'pgcdc caught up with the source', 120_000);
  proc.kill('SIGTERM');
  assert.equal(await proc.exited, 0, proc.stderr().slice(-3000));
}

async function tableWithRows(db: TestDatabase, rows = 300): Promise<void> {
  await db.sql.query(`create table acct (id int primary key, balance int not null, note text)`);
  await db.sql.query(`insert into acct select g, g, 'row ' || g from generate_series(1, $1::int) g`, [rows]);
}

/** Keyed changes: inserts from `first`, updates, deletes, a key change. */
async function someChanges(db: TestDatabase, first: number): Promise<void> {
  await db.sql.query(`insert into acct select g, g, 'new' from generate_series($1::int, $1::int + 99) g`, [first]);
  await db.sql.query(`update acct set balance = balance + 1, note = 'upd' where id % 3 = 0`);
  await db.sql.query(`delete from acct where id % 7 = 0`);
  await db.sql.query(`update acct set id = $1::int + 500 where id = $1::int + 1`, [first]);
}

function assertExact(verdict: NatsVerdict): void {
  assert.deepEqual(
    { lost: verdict.lost, extra: verdict.extra, mismatched: verdict.mismatched, duplicated: verdict.duplicated },
    { lost: 0, extra: 0, mismatched: 0, duplicated: 0 },
  );
}

/** Runs a snapshot and a workload through `server`, stops, and returns the replay's verdict. */
async function snapshotAndWorkload(
  server: NatsServer,
  sink: readonly string[] = [],
  env: NodeJS.ProcessEnv = {},
): Promise<{ verdict: NatsVerdict; db: TestDatabase; proc: PgcdcProcess }> {
  const db = await freshDatabase();
  await tableWithRows(db);
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-nats-'));
  const config = await writeRunConfig(dir, sink.length === 0 ? [] : ['sink:', ...sink.map((l) => `  ${l}`)]);
  const proc = startPgcdc(natsRunArgs({ db, url: server.url, offsets: path.join(dir, 'offsets.json'), config }), env);
  await streaming(proc, 'pgcdc streaming');
  await someChanges(db, 1000);
  await someChanges(db, 2000);
  await catchUpAndStop(proc, db);
  return { verdict: await natsVerdict(server, db), db, proc };
}

test('snapshot and workload: the replay of the stream equals the source, no event id twice', { skip }, async (t) => {
  const server = await nats();
  const { verdict, db, proc } = await snapshotAndWorkload(server);
  t.diagnostic(
    `nats replay: ${verdict.events} messages; lost ${verdict.lost}, extra ${verdict.extra}, mismatched ` +
      `${verdict.mismatched}, duplicates ${verdict.duplicated}`,
  );
  assertExact(verdict);
  const messages = await server.readStream(streamOf(db));
  const reads = messages.filter((m) => m.payload.includes('"op":"r"'));
  assert.equal(reads.length, 300, 'the initial snapshot: one read per row');
  for (const message of messages) {
    const id = (JSON.parse(message.payload) as { id: string }).id;
    assert.equal(message.headers['Nats-Msg-Id'], id);
    assert.equal(message.headers['Pgcdc-Lsn'], id.split(':')[0]);
    assert.equal(message.headers['Pgcdc-Topic'], message.subject, 'the subject is the topic');
  }
  assert.ok(
    logRecords(proc.stderr()).some((r) => r.msg === 'created the NATS stream'),
    'pgcdc created the stream',
  );
  assert.ok((await kvCheckpoint(server, db)) !== undefined, 'the checkpoint is in the KV bucket');
});

test(
  '--offsets nats: a pgcdc with an empty working directory resumes exactly from the KV bucket',
  { skip },
  async (t) => {
    const server = await nats();
    const db = await freshDatabase();
    // With `--offsets nats` the `pgcdc snapshot` mailbox is `./pgcdc-<slot>.requests/` in pgcdc's working
    // directory (offsets/open.ts sideFilesBase), which the harness makes the repository: removed afterwards.
    const mailbox = path.join(path.dirname(MAIN), '..', '..', `pgcdc-${slotOf(db)}.requests`);
    onTeardown(() => rm(mailbox, { recursive: true, force: true }));
    await tableWithRows(db, 100);
    const run = async (): Promise<PgcdcProcess> => {
      // A new, empty working directory each time: only its configuration is in it.
      const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-offsets-nats-'));
      return startPgcdc(natsRunArgs({ db, url: server.url, offsets: 'nats', config: await writeRunConfig(dir) }));
    };
    const first = await run();
    await streaming(first, 'the first pgcdc streaming');
    await someChanges(db, 1000);
    await catchUpAndStop(first, db);
    const stored = await kvCheckpoint(server, db);
    assert.ok(stored !== undefined, 'the first pgcdc stored its checkpoint in the KV bucket');
    const before = (await natsVerdict(server, db)).events;
    await someChanges(db, 2000); // while no pgcdc runs
    const second = await run();
    await streaming(second, 'the second pgcdc streaming');
    await someChanges(db, 3000);
    await catchUpAndStop(second, db);
    const resumed = logRecords(second.stderr()).find((r) => r.msg === 'resuming after stored checkpoint');
    assert.ok(resumed, `the second pgcdc resumed from the checkpoint in NATS:\n${second.stderr().slice(-3000)}`);
    assert.equal(resumed.lsn, stored.lsn, 'from exactly the stored checkpoint');
    assert.ok(!logRecords(second.stderr()).some((r) => r.msg === 'created replication slot'));
    const verdict = await natsVerdict(server, db);
    t.diagnostic(
      `--offsets nats: ${before} messages after the first run, ${verdict.events} in all, resumed at ` +
        `${String(resumed.lsn)}; lost ${verdict.lost}, extra ${verdict.extra}, mismatched ${verdict.mismatched}, ` +
        `duplicates ${verdict.duplicated}`,
    );
    assertExact(verdict);
  },
);

test('authentication: user and password from a file, token from the environment', { skip }, async (t) => {
  const users = await natsWithUsers();
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-nats-auth-'));
  const passwordFile = path.join(dir, 'nats-password');
  await writeFile(passwordFile, 'pw-in-a-file\n', { mode: 0o600 });
  const byPassword = await snapshotAndWorkload(users, [
    'auth:',
    '  user: pgcdc',
    '  password:',
    `    file: ${passwordFile}`,
  ]);
  assertExact(byPassword.verdict);
  assert.ok(!byPassword.proc.stderr().includes('pw-in-a-file'), 'the password is never printed');

  const token = await natsWithToken();
  const byToken = await snapshotAndWorkload(token, ['auth:', '  token:', '    env: NATS_TEST_TOKEN'], {
    NATS_TEST_TOKEN: 'token-in-the-env',
  });
  assertExact(byToken.verdict);
  assert.ok(!byToken.proc.stderr().includes('token-in-the-env'), 'the token is never printed');
  t.diagnostic(
    `auth: user/password ${byPassword.verdict.events} messages, token ${byToken.verdict.events} messages, ` +
      'each replay exact',
  );
});
