/**
 * TLS with libpq's sslmode semantics against a real server with a throwaway CA (Debian's openssl):
 * verify-full passes with a host name the certificate names and fails, in one clear line, with
 * one it does not; require without a CA encrypts and check warns that nothing is verified;
 * require with sslrootcert verifies the chain as libpq does; the password never appears.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmod, chown, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { openConnection, resolveEndpoint } from '../../src/postgres/connect.ts';
import { makeTestPki } from '../harness/pki.ts';
import { onTeardown, requireOrSkip, startCluster } from '../harness/pg.ts';
import { runPgcdc } from '../harness/cli.ts';

const CANARY = 'canary-Tls-91c2e5';

function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const skip = requireOrSkip(hasOpenssl(), 'openssl (Debian package openssl)');

interface Pki {
  dir: string;
  ca: string;
  otherCa: string;
  cert: string;
  key: string;
}

/** A CA, a server certificate for 127.0.0.1 and localhost signed by it, and an unrelated CA. */
async function makePki(): Promise<Pki> {
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-tls-'));
  onTeardown(() => rm(dir, { recursive: true, force: true }));
  const pki = makeTestPki(dir);
  // The server runs as postgres when we are root: it must read the files, and the key must be 0600 and its own.
  await chmod(dir, 0o755);
  await chmod(path.join(dir, 'server.crt'), 0o644);
  await chmod(path.join(dir, 'server.key'), 0o600);
  if (userInfo().uid === 0) {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
    await chown(path.join(dir, 'server.key'), uid, gid);
    await chown(path.join(dir, 'server.crt'), uid, gid);
  }
  return { dir, ...pki };
}

let pki: Pki;
let base: URL;

before(async () => {
  if (skip) return;
  // The postgres user must exist before the key is handed to it (startCluster creates it too).
  if (userInfo().uid === 0) {
    try {
      execFileSync('id', ['postgres'], { stdio: 'ignore' });
    } catch {
      execFileSync('useradd', ['--system', '--user-group', '--no-create-home', 'postgres']);
    }
  }
  pki = await makePki();
  const cluster = await startCluster({
    settings: { ssl: 'on', ssl_cert_file: pki.cert, ssl_key_file: pki.key, listen_addresses: '127.0.0.1,127.0.0.2' },
    password: CANARY,
  });
  base = new URL(cluster.url('postgres'));
  base.password = '';
});

/** A check URL on `host` with these query parameters; the password goes through PGPASSWORD. */
function url(host: string, params: Record<string, string>): string {
  const u = new URL(base.toString());
  u.hostname = host;
  for (const [k, v] of Object.entries(params)) u.searchParams.set(k, v);
  return u.toString();
}

interface JsonReport {
  ok: boolean;
  notes?: string[];
  errors: { code: string; message: string; fix: string }[];
  warnings: { code: string; message: string; fix: string }[];
}

async function check(source: string): Promise<{ code: number; report: JsonReport; text: string }> {
  const env = { PGPASSWORD: CANARY, HOME: pki.dir };
  const json = await runPgcdc(['check', '--source', source, '--json'], env);
  const text = await runPgcdc(['check', '--source', source], env);
  for (const out of [json.stdout, json.stderr, text.stdout, text.stderr])
    assert.ok(!out.includes(CANARY), 'the password must never be printed');
  let report: JsonReport;
  try {
    report = JSON.parse(json.stdout) as JsonReport;
  } catch {
    throw new Error(`not JSON: ${json.stdout} ${json.stderr}`);
  }
  return { code: json.code, report, text: `${text.stdout}${text.stderr}` };
}

const tlsCodes = (r: JsonReport): string[] =>
  [...r.errors, ...r.warnings].map((p) => p.code).filter((c) => c.startsWith('tls') || c === 'connect');

test('verify-full with sslrootcert passes the TLS check for 127.0.0.1 and localhost', { skip }, async () => {
  for (const host of ['127.0.0.1', 'localhost']) {
    const { report, text } = await check(url(host, { sslmode: 'verify-full', sslrootcert: pki.ca }));
    assert.deepEqual(tlsCodes(report), [], text);
    assert.match(text, /TLS: TLSv1\.[23], sslmode=verify-full/, text);
  }
});

test('verify-full with a host name the certificate does not name fails with one clear line', { skip }, async () => {
  const { code, report, text } = await check(url('127.0.0.2', { sslmode: 'verify-full', sslrootcert: pki.ca }));
  assert.equal(code, 1, text);
  assert.deepEqual(
    report.errors.map((e) => e.code),
    ['connect'],
    text,
  );
  const message = report.errors[0]?.message ?? '';
  assert.ok(!message.includes('\n'), message);
  assert.match(
    message,
    new RegExp(
      /TLS verification failed .*sslmode=verify-full.*/.source +
        /not valid for this host name \(127\.0\.0\.2; it is for .*127\.0\.0\.1/.source,
    ),
    message,
  );
  // verify-ca checks the chain only, as libpq: the same host passes.
  const ca = await check(url('127.0.0.2', { sslmode: 'verify-ca', sslrootcert: pki.ca }));
  assert.deepEqual(
    ca.report.errors.filter((e) => e.code === 'connect'),
    [],
    ca.text,
  );
  assert.ok(tlsCodes(ca.report).includes('tls-unverified'), ca.text);
});

test('require without a CA encrypts and warns that the server is not verified', { skip }, async () => {
  const { report, text } = await check(url('127.0.0.1', { sslmode: 'require' }));
  assert.deepEqual(
    report.errors.filter((e) => e.code === 'connect'),
    [],
    text,
  );
  const warning = report.warnings.find((w) => w.code === 'tls-unverified');
  assert.ok(warning, text);
  assert.match(warning.message, /sslmode=require does not verify/);
});

test('require with sslrootcert verifies the chain as libpq does; a wrong CA is refused', { skip }, async () => {
  const good = await check(url('127.0.0.2', { sslmode: 'require', sslrootcert: pki.ca }));
  assert.deepEqual(
    good.report.errors.filter((e) => e.code === 'connect'),
    [],
    good.text,
  );
  const bad = await check(url('127.0.0.1', { sslmode: 'require', sslrootcert: pki.otherCa }));
  assert.equal(bad.code, 1, bad.text);
  assert.match(
    bad.report.errors[0]?.message ?? '',
    /TLS verification failed .*sslmode=require\): the server certificate is not signed by a CA in sslrootcert/,
    bad.text,
  );
});

test(
  'tlsHost names the server behind a local end (tunnel): verified against it, not against host',
  { skip },
  async () => {
    const env = { PGPASSWORD: CANARY, HOME: pki.dir };
    const endpoint = resolveEndpoint(
      { url: url('127.0.0.1', { sslmode: 'verify-full', sslrootcert: pki.ca }), connectTimeoutMs: 10_000 },
      env,
    );
    const client = await openConnection({ ...endpoint, tlsHost: 'localhost' }, 'query');
    const { rows } = await client.query<{ ssl: boolean }>('select ssl from pg_stat_ssl where pid = pg_backend_pid()');
    await client.end();
    assert.equal(rows[0]?.ssl, true);
    await assert.rejects(
      openConnection({ ...endpoint, tlsHost: 'db.example.com' }, 'query'),
      /not valid for this host name \(db\.example\.com/,
    );
  },
);

test(
  'sslmode semantics: prefer and allow connect, disable stays plain, verify-ca without a root certificate is ' +
    'refused before connecting',
  { skip },
  async () => {
    const env = { PGPASSWORD: CANARY, HOME: pki.dir };
    const sslOf = async (sslmode: string): Promise<boolean | undefined> => {
      const endpoint = resolveEndpoint({ url: url('127.0.0.1', { sslmode }), connectTimeoutMs: 10_000 }, env);
      const client = await openConnection(endpoint, 'query');
      const { rows } = await client.query<{ ssl: boolean }>('select ssl from pg_stat_ssl where pid = pg_backend_pid()');
      await client.end();
      return rows[0]?.ssl;
    };
    assert.equal(await sslOf('prefer'), true);
    assert.equal(await sslOf('allow'), false); // allow tries plain first; the server accepts it
    assert.equal(await sslOf('disable'), false);
    const endpoint = resolveEndpoint(
      { url: url('127.0.0.1', { sslmode: 'verify-ca' }), connectTimeoutMs: 10_000 },
      env,
    );
    await assert.rejects(openConnection(endpoint, 'query'), /sslmode=verify-ca needs the server's root certificate/);
  },
);
