/**
 * The HTTP sink over TLS, with the real CLI, a real PostgreSQL and a real node:https receiver in this
 * process (test/harness/http-endpoint.ts) serving certificates of a throwaway PKI
 * (test/harness/pki.ts):
 *
 * - https with verify-full against the test CA: a snapshot and a workload arrive, and their replay
 *   equals the source table;
 * - mutual TLS: the receiver requires a client certificate signed by the test CA. Without one, or
 *   with one from another CA, pgcdc stops at start with ONE line, exit 2, no slot created and
 *   nothing received; with the right one it delivers and the replay equals the source;
 * - a server certificate from another CA, or for another host name: ONE line at start, exit 2, no
 *   slot created, nothing sent.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runPgcdc, startPgcdc } from '../harness/cli.ts';
import { Workload } from '../harness/faults.ts';
import { keyMatchesBody, TestEndpoint } from '../harness/http-endpoint.ts';
import {
  awaitStreaming,
  httpRunArgs,
  httpSinkSection,
  httpVerdict,
  SECRET_ENV,
  slotCaughtUp,
  slotConfirmed,
  writeRunConfig,
} from '../harness/http-workload.ts';
import { eventually, freshDatabase, requireOrSkip, type TestDatabase } from '../harness/pg.ts';
import { hasOpenssl, issueCertificate, makeTestPki, type TestPki } from '../harness/pki.ts';

const skip = requireOrSkip(hasOpenssl(), 'openssl (Debian package openssl)');
const SECRET = 'whsec-tls-4d7e20';
const ENV = { [SECRET_ENV]: SECRET };
const ROWS = 50;
/** A refusal pgcdc missed would retry for ever: the test fails instead of hanging. */
const TEST_TIMEOUT_MS = 300_000;

interface Setup {
  db: TestDatabase;
  dir: string;
  pki: TestPki;
}

async function setUp(): Promise<Setup> {
  const db = await freshDatabase();
  await db.sql.query(`create table acct (id int primary key, balance int not null)`);
  await db.sql.query(`insert into acct select g, g from generate_series(1, ${ROWS}) g`);
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-http-tls-'));
  return { db, dir, pki: makeTestPki(dir) };
}

/** A configuration whose `sink.tls` section holds `tls` (YAML lines); returns its path. */
async function configWith(dir: string, name: string, tls: readonly string[]): Promise<string> {
  const sub = await mkdtemp(path.join(dir, `${name}-`));
  return writeRunConfig(sub, httpSinkSection(['lingerMs: 50', 'tls:', ...tls.map((line) => `  ${line}`)]));
}

function runArgs(setup: Setup, endpoint: TestEndpoint | string, config: string): string[] {
  const url = typeof endpoint === 'string' ? endpoint : endpoint.url;
  return httpRunArgs({
    db: setup.db,
    url,
    offsets: path.join(setup.dir, 'offsets.json'),
    tables: 'public.acct',
    config,
  });
}

/** The last stderr line, which must be the only `pgcdc: error:` line. */
function oneErrorLine(stderr: string): string {
  const lines = stderr.trim().split('\n');
  const errors = lines.filter((line) => line.startsWith('pgcdc: error:'));
  assert.equal(errors.length, 1, `one error line:\n${stderr.slice(-3000)}`);
  assert.equal(lines.at(-1), errors[0], 'the error line is the last line');
  return errors[0] ?? '';
}

/** pgcdc refuses to start: exit 2, one line matching `pattern`, no slot, nothing received. */
async function assertRefusedAtStart(
  setup: Setup,
  endpoint: TestEndpoint,
  config: string,
  pattern: RegExp,
): Promise<string> {
  const result = await runPgcdc(runArgs(setup, endpoint, config), ENV);
  assert.equal(result.code, 2, result.stderr.slice(-3000));
  const line = oneErrorLine(result.stderr);
  assert.match(line, pattern);
  assert.ok(!line.includes('t0k3n') && !result.stderr.includes(SECRET), 'no token or secret printed');
  assert.equal(await slotConfirmed(setup.db), undefined, 'no slot was created');
  assert.equal(endpoint.log.length, 0, 'no request reached the endpoint');
  return line;
}

/** A run delivers the snapshot and a workload of `commits` transactions; replay equals the source. */
async function assertDelivers(
  setup: Setup,
  endpoint: TestEndpoint,
  config: string,
  label: string,
  t: { diagnostic(message: string): void },
): Promise<void> {
  const proc = startPgcdc(runArgs(setup, endpoint, config), ENV);
  await awaitStreaming(proc, `pgcdc streaming (${label})`);
  const workload = new Workload(setup.db.url, 5);
  try {
    await eventually(() => (workload.committed >= 100 ? true : undefined), 'the workload to commit', 120_000);
  } finally {
    await workload.stop();
  }
  await eventually(() => slotCaughtUp(setup.db), 'pgcdc caught up with the source', 120_000);
  proc.kill('SIGTERM');
  assert.equal(await proc.exited, 0, proc.stderr().slice(-3000));
  const verdict = await httpVerdict(endpoint, setup.db);
  t.diagnostic(
    `http ${label}: ${workload.committed} transactions, ${verdict.requests} requests, ${verdict.events} ` +
      `events; lost ${verdict.lost}, extra ${verdict.extra}, mismatched ${verdict.mismatched}, ` +
      `duplicates ${verdict.duplicated}`,
  );
  const snapshotReads = endpoint.acceptedEvents().filter((e) => e.value.op === 'r').length;
  assert.equal(snapshotReads, ROWS, 'the initial snapshot arrived');
  assert.deepEqual(
    { lost: verdict.lost, extra: verdict.extra, mismatched: verdict.mismatched, duplicated: verdict.duplicated },
    { lost: 0, extra: 0, mismatched: 0, duplicated: 0 },
  );
  for (const request of endpoint.log) {
    assert.equal(request.signatureValid, true, 'the signature verifies with the shared secret');
    assert.ok(keyMatchesBody(request), `Idempotency-Key ${String(request.headers['idempotency-key'])}`);
  }
}

test(
  'https, verify-full against the test CA: snapshot and workload replay equal the source',
  { skip, timeout: TEST_TIMEOUT_MS },
  async (t) => {
    const setup = await setUp();
    const endpoint = await TestEndpoint.start({ secret: SECRET, tls: { cert: setup.pki.cert, key: setup.pki.key } });
    assert.match(endpoint.url, /^https:\/\/127\.0\.0\.1:\d+\//);
    const config = await configWith(setup.dir, 'verify-full', [`ca: ${setup.pki.ca}`]);
    await assertDelivers(setup, endpoint, config, 'https verify-full', t);
  },
);

test(
  'mutual TLS: without a client certificate, or with one from another CA, one line at start, exit 2; ' +
    'with the right one, replay equals the source',
  { skip, timeout: TEST_TIMEOUT_MS },
  async (t) => {
    const setup = await setUp();
    const client = issueCertificate(setup.dir, 'client');
    const stranger = issueCertificate(setup.dir, 'stranger', { signer: 'other-ca' });
    const endpoint = await TestEndpoint.start({
      secret: SECRET,
      tls: { cert: setup.pki.cert, key: setup.pki.key, clientCa: setup.pki.ca },
    });

    const without = await assertRefusedAtStart(
      setup,
      endpoint,
      await configWith(setup.dir, 'no-client-cert', [`ca: ${setup.pki.ca}`]),
      new RegExp(
        String.raw`connecting to the HTTP endpoint https://127\.0\.0\.1:\d+: TLS handshake refused: ` +
          String.raw`the endpoint requires a client certificate\. ` +
          String.raw`set sink\.tls\.cert and sink\.tls\.key .*\[CONNECT_FAILED\]$`,
      ),
    );
    t.diagnostic(without);
    const foreign = await assertRefusedAtStart(
      setup,
      endpoint,
      await configWith(setup.dir, 'foreign-client-cert', [
        `ca: ${setup.pki.ca}`,
        `cert: ${stranger.cert}`,
        `key: ${stranger.key}`,
      ]),
      // Node's https server refuses an untrusted client certificate by closing the connection.
      /TLS handshake refused: the endpoint closed the connection right after the TLS handshake.*\[CONNECT_FAILED\]$/,
    );
    t.diagnostic(foreign);
    assert.ok(endpoint.tlsClientErrors.length >= 2, `the receiver refused: ${endpoint.tlsClientErrors.join(', ')}`);

    // A key that is not the certificate's: a configuration error before any connection.
    const mismatched = await runPgcdc(
      runArgs(
        setup,
        endpoint,
        await configWith(setup.dir, 'mismatched-key', [
          `ca: ${setup.pki.ca}`,
          `cert: ${client.cert}`,
          `key: ${stranger.key}`,
        ]),
      ),
      ENV,
    );
    assert.equal(mismatched.code, 2, mismatched.stderr.slice(-3000));
    const mismatchLine = oneErrorLine(mismatched.stderr);
    assert.match(
      mismatchLine,
      /sink\.tls: the certificate files cannot be used \(key values mismatch\).*\[CONFIG_INVALID\]$/,
    );
    t.diagnostic(mismatchLine);
    assert.equal(endpoint.log.length, 0, 'no request reached the endpoint');

    const config = await configWith(setup.dir, 'client-cert', [
      `ca: ${setup.pki.ca}`,
      `cert: ${client.cert}`,
      `key: ${client.key}`,
    ]);
    await assertDelivers(setup, endpoint, config, 'mutual TLS', t);
    for (const request of endpoint.log)
      assert.equal(request.clientCertificate, 'pgcdc test client', 'every request came with the client certificate');
  },
);

test(
  'a server certificate from another CA, or for another host name: one line at start, exit 2, nothing sent',
  { skip, timeout: TEST_TIMEOUT_MS },
  async (t) => {
    const setup = await setUp();
    const endpoint = await TestEndpoint.start({ secret: SECRET, tls: { cert: setup.pki.cert, key: setup.pki.key } });
    const otherCa = await assertRefusedAtStart(
      setup,
      endpoint,
      await configWith(setup.dir, 'other-ca', [`ca: ${setup.pki.otherCa}`]),
      new RegExp(
        String.raw`connecting to the HTTP endpoint https://127\.0\.0\.1:\d+: TLS verification failed: ` +
          String.raw`the certificate is not signed by a trusted CA \(sink\.tls\.ca\)\. ` +
          String.raw`point sink\.tls\.ca at the CA .*\[CONNECT_FAILED\]$`,
      ),
    );
    t.diagnostic(otherCa);
    const systemCas = await assertRefusedAtStart(
      setup,
      endpoint,
      await writeRunConfig(await mkdtemp(path.join(setup.dir, 'system-')), httpSinkSection()),
      /TLS verification failed: the certificate is not signed by a trusted CA.*\[CONNECT_FAILED\]$/,
    );
    t.diagnostic(systemCas);

    const elsewhere = issueCertificate(setup.dir, 'elsewhere', { san: 'DNS:elsewhere.test' });
    const misnamed = await TestEndpoint.start({ secret: SECRET, tls: elsewhere });
    const wrongHost = await assertRefusedAtStart(
      setup,
      misnamed,
      await configWith(setup.dir, 'wrong-host', [`ca: ${setup.pki.ca}`]),
      new RegExp(
        String.raw`TLS verification failed: the certificate is not valid for the host name in sink\.url\. ` +
          String.raw`use the host name the certificate names .*\[CONNECT_FAILED\]$`,
      ),
    );
    t.diagnostic(wrongHost);
  },
);
