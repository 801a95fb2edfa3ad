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
import { natsAvailable, natsForFile } from '../harness/nats.ts';
import {
  assertExact,
  awaitStreaming as streaming,
  catchUpAndStop,
  kvCheckpoint,
  natsRunArgs,
  natsVerdict,
  slotOf,
  snapshotAndWorkload,
  someChanges,
  streamOf,
  tableWithRows,
  writeRunConfig,
} from '../harness/nats-workload.ts';
import { freshDatabase, onTeardown, requireOrSkip } from '../harness/pg.ts';
import { logRecords } from '../harness/process.ts';

const skip = requireOrSkip(natsAvailable(), 'nats-server');

const nats = natsForFile();
const natsWithUsers = natsForFile({ users: [{ user: 'pgcdc', password: 'pw-in-a-file' }] });
const natsWithToken = natsForFile({ token: 'token-in-the-env' });

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
    // And the run-state file there (health/run-file.ts).
    onTeardown(() => rm(mailbox.replace(/\.requests$/, '.run.json'), { force: true }));
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
