/**
 * The NATS sink's TLS and NKey logins against a real nats-server (with the test PKI of pki.ts and an
 * NKey user made by the official nkeys library) and a real PostgreSQL, end to end through the CLI:
 * - tls:// with the server certificate verified against the test CA (verify-full): a snapshot
 *   and workload replayed from the stream equal the source, no event id twice;
 * - mutual TLS (the server requires a client certificate): delivers with sink.tls.cert/key;
 * - trusting only another CA: one CONNECT_FAILED line, exit 2, nothing acknowledged;
 * - an NKey seed from a file: delivers; a seed the server does not know: one AUTH_FAILED line, exit
 *   2, nothing acknowledged, no seed in the output.
 * Credentials files (.creds: a user JWT signed by an account, as `nsc` writes them) are not tested:
 * that needs an operator/account JWT setup this machine has no tooling for (docs/nats.md says so).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { nkeys } from '@nats-io/transport-node';
import { runPgcdc } from '../harness/cli.ts';
import { natsAvailable, natsForFile, type NatsPki, type NatsServer } from '../harness/nats.ts';
import {
  assertExact,
  kvCheckpoint,
  natsRunArgs,
  slotConfirmed,
  snapshotAndWorkload,
  streamOf,
  writeRunConfig,
} from '../harness/nats-workload.ts';
import { freshDatabase, requireOrSkip, type TestDatabase } from '../harness/pg.ts';
import { logRecords } from '../harness/process.ts';

const skip = requireOrSkip(natsAvailable(), 'nats-server');

const natsTls = natsForFile({ tls: {} });
const natsMutualTls = natsForFile({ tls: { verify: true } });
const natsNkey = natsForFile({ nkey: true });

const pkiOf = (server: NatsServer): NatsPki => server.tls as NatsPki;

/** The last stderr line, which is the only `pgcdc: error:` line. */
function oneErrorLine(stderr: string): string {
  const lines = stderr.trim().split('\n');
  const errors = lines.filter((line) => line.startsWith('pgcdc: error:'));
  assert.equal(errors.length, 1, `one error line:\n${stderr.slice(-3000)}`);
  assert.equal(lines.at(-1), errors[0], 'the error line is the last line');
  return errors[0] ?? '';
}

/** A database with a table, and one pgcdc run on `server` with the `sink:` lines `sink`; it must stop. */
async function failingRun(
  server: NatsServer,
  sink: readonly string[],
): Promise<{ db: TestDatabase; code: number; line: string; stderr: string }> {
  const db = await freshDatabase();
  await db.sql.query(`create table acct (id int primary key, note text)`);
  await db.sql.query(`insert into acct values (1, 'one'), (2, 'two')`);
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-nats-tls-'));
  const config = await writeRunConfig(dir, ['sink:', '  connectTimeoutMs: 2000', ...sink.map((l) => `  ${l}`)]);
  const result = await runPgcdc(natsRunArgs({ db, url: server.url, offsets: path.join(dir, 'offsets.json'), config }));
  return { db, code: result.code, line: oneErrorLine(result.stderr), stderr: result.stderr };
}

async function assertNothingAcknowledged(server: NatsServer, db: TestDatabase): Promise<void> {
  assert.equal(await slotConfirmed(db), undefined, 'no slot was created');
  assert.equal(await kvCheckpoint(server, db), undefined, 'no checkpoint in the KV bucket');
  assert.deepEqual(await server.readStream(streamOf(db)), [], 'nothing in the stream');
}

test('tls:// with verify-full against the test CA: the replay equals the source', { skip }, async (t) => {
  const server = await natsTls();
  const { verdict, proc } = await snapshotAndWorkload(server, ['tls:', `  ca: ${pkiOf(server).ca}`]);
  t.diagnostic(
    `tls verify-full: ${verdict.events} messages; lost ${verdict.lost}, extra ${verdict.extra}, mismatched ` +
      `${verdict.mismatched}, duplicates ${verdict.duplicated}`,
  );
  assertExact(verdict);
  // Connected at the first attempt (no retry), and no Node warning (such as an IP address given as TLS server name).
  assert.ok(!logRecords(proc.stderr()).some((r) => typeof r.retry === 'number'), 'not retried');
  assert.ok(!proc.stderr().includes('Warning'), `no Node warning:\n${proc.stderr().slice(-3000)}`);
});

test('mutual TLS: the server requires a client certificate, pgcdc delivers with cert and key', { skip }, async (t) => {
  const server = await natsMutualTls();
  const pki = pkiOf(server);
  const { verdict } = await snapshotAndWorkload(server, [
    'tls:',
    `  ca: ${pki.ca}`,
    `  cert: ${pki.clientCert}`,
    `  key: ${pki.clientKey}`,
  ]);
  t.diagnostic(
    `mutual tls: ${verdict.events} messages; lost ${verdict.lost}, extra ${verdict.extra}, mismatched ` +
      `${verdict.mismatched}, duplicates ${verdict.duplicated}`,
  );
  assertExact(verdict);
});

test(
  'a server certificate from a CA pgcdc does not trust: one CONNECT_FAILED line, exit 2, nothing acknowledged',
  { skip },
  async (t) => {
    const server = await natsTls();
    const failure = await failingRun(server, ['tls:', `  ca: ${pkiOf(server).otherCa}`]);
    assert.equal(failure.code, 2, failure.stderr.slice(-3000));
    assert.match(
      failure.line,
      /TLS verification failed: the server certificate is not signed by a CA in sink\.tls\.ca/,
    );
    assert.match(failure.line, /\[CONNECT_FAILED\]$/);
    assert.ok(!logRecords(failure.stderr).some((r) => typeof r.retry === 'number'), 'not retried');
    await assertNothingAcknowledged(server, failure.db);
    t.diagnostic(failure.line);
  },
);

test(
  'NKey: a seed from a file delivers; a seed the server does not know is AUTH_FAILED, exit 2',
  { skip },
  async (t) => {
    const server = await natsNkey();
    const seed = server.nkeySeed as string;
    const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-nats-nkey-'));
    const seedFile = path.join(dir, 'nkey.seed');
    await writeFile(seedFile, `${seed}\n`, { mode: 0o600 });
    const good = await snapshotAndWorkload(server, ['auth:', '  nkeySeed:', `    file: ${seedFile}`]);
    assertExact(good.verdict);
    assert.ok(!good.proc.stderr().includes(seed), 'the seed is never printed');

    const wrongSeed = new TextDecoder().decode(nkeys.createUser().getSeed());
    const wrongFile = path.join(dir, 'wrong.seed');
    await writeFile(wrongFile, `${wrongSeed}\n`, { mode: 0o600 });
    const failure = await failingRun(server, ['auth:', '  nkeySeed:', `    file: ${wrongFile}`]);
    assert.equal(failure.code, 2, failure.stderr.slice(-3000));
    assert.match(failure.line, /refused the login/);
    assert.match(failure.line, /127\.0\.0\.1:\d+/);
    assert.match(failure.line, /\[AUTH_FAILED\]$/);
    assert.ok(!failure.stderr.includes(wrongSeed) && !failure.stderr.includes(seed), 'no seed in the output');
    assert.ok(!logRecords(failure.stderr).some((r) => typeof r.retry === 'number'), 'not retried');
    await assertNothingAcknowledged(server, failure.db);
    t.diagnostic(`nkey: ${good.verdict.events} messages, replay exact; wrong seed: ${failure.line}`);
  },
);

test(
  'mutual TLS without a client certificate: one AUTH_FAILED line naming the refused certificate, exit 2',
  { skip },
  async (t) => {
    const server = await natsMutualTls();
    const failure = await failingRun(server, ['tls:', `  ca: ${pkiOf(server).ca}`]);
    assert.equal(failure.code, 2, failure.stderr.slice(-3000));
    assert.match(failure.line, /refused pgcdc's client certificate \(TLS alert: [a-z ]+\)/);
    assert.match(failure.line, /give sink\.tls\.cert and sink\.tls\.key/);
    assert.match(failure.line, /\[AUTH_FAILED\]$/);
    await assertNothingAcknowledged(server, failure.db);
    t.diagnostic(failure.line);
  },
);

test(
  'a file holding no NKey seed or no credentials: CONFIG_INVALID exit 2; credentials the server refuses: AUTH_FAILED',
  { skip },
  async (t) => {
    const server = await natsNkey();
    const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-nats-nkey-'));
    const secretLooking = 'not-a-seed-but-secret-looking';
    const notASeed = path.join(dir, 'not-a-seed');
    await writeFile(notASeed, `${secretLooking}\n`, { mode: 0o600 });
    const badSeed = await failingRun(server, ['auth:', '  nkeySeed:', `    file: ${notASeed}`]);
    assert.equal(badSeed.code, 2, badSeed.stderr.slice(-3000));
    assert.ok(badSeed.line.includes(`sink.auth.nkeySeed: ${notASeed} does not hold an NKey seed`), badSeed.line);
    assert.match(badSeed.line, /\[CONFIG_INVALID\]$/);
    assert.ok(!badSeed.stderr.includes(secretLooking), 'the content is never printed');

    const badCreds = await failingRun(server, ['auth:', '  credentials:', `    file: ${notASeed}`]);
    assert.equal(badCreds.code, 2, badCreds.stderr.slice(-3000));
    assert.ok(badCreds.line.includes(`${notASeed} is not a NATS credentials file`), badCreds.line);
    assert.match(badCreds.line, /\[CONFIG_INVALID\]$/);
    assert.ok(!badCreds.stderr.includes(secretLooking), 'the content is never printed');

    // A well-formed credentials file (a JWT block and a user seed block, as nsc writes them) whose JWT
    // no operator signed: this server (no operator mode) does not know its key, the login is refused.
    const seed = new TextDecoder().decode(nkeys.createUser().getSeed());
    const creds = path.join(dir, 'user.creds');
    const jwt = 'eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.e30.c2ln';
    await writeFile(
      creds,
      `-----BEGIN NATS USER JWT-----\n${jwt}\n------END NATS USER JWT------\n\n` +
        `-----BEGIN USER NKEY SEED-----\n${seed}\n------END USER NKEY SEED------\n`,
      { mode: 0o600 },
    );
    const refused = await failingRun(server, ['auth:', '  credentials:', `    file: ${creds}`]);
    assert.equal(refused.code, 2, refused.stderr.slice(-3000));
    assert.match(refused.line, /refused the login/);
    assert.match(refused.line, /\[AUTH_FAILED\]$/);
    assert.ok(!refused.stderr.includes(seed) && !refused.stderr.includes(jwt), 'no seed or JWT in the output');
    await assertNothingAcknowledged(server, refused.db);
    t.diagnostic(`${badSeed.line}\n${badCreds.line}\n${refused.line}`);
  },
);
