/**
 * `pgcdc check` and `pgcdc run` through a real sshd on loopback (Debian openssh-server), driven by
 * the --ssh-* flags: with the host key pinned, check passes and run captures changes (its catalog,
 * snapshot and replication connections are forwarded by sshd); a wrong pinned key is refused in one
 * line with exit 1 before any database connection; an unknown key is refused with its fingerprint
 * unless --ssh-trust-on-first-use, which prints it. Passwords and the key passphrase come from the
 * environment and never appear in any output.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { eventually, onTeardown, requireOrSkip, startCluster } from '../harness/pg.ts';
import { readJsonl, runPgcdc, startPgcdc } from '../harness/cli.ts';
import { SSH_USER, sshdAvailable, startSshd, type Sshd } from '../harness/sshd.ts';

const PASSPHRASE = 'canary-Ssh-pass-5d1e';
const DB_PASSWORD = 'canary-Db-pw-83c0';
const skip = requireOrSkip(sshdAvailable(), 'sshd (Debian package openssh-server)');

let sshd: Sshd;
let sql: pg.Client;
let source: string;
let env: NodeJS.ProcessEnv;

before(async () => {
  if (skip) return;
  sshd = await startSshd(PASSPHRASE);
  const cluster = await startCluster({ password: DB_PASSWORD });
  sql = new pg.Client({ connectionString: cluster.url('postgres') });
  await sql.connect();
  onTeardown(() => sql.end());
  await sql.query(`create table orders (id int primary key, note text); insert into orders values (1, 'before')`);
  const url = new URL(cluster.url('postgres'));
  env = { PGPASSWORD: DB_PASSWORD, PGCDC_SSH_PASSPHRASE: PASSPHRASE };
  url.password = '';
  source = url.toString();
});

function sshArgs(hostKey: string[]): string[] {
  return ['--ssh-host', `127.0.0.1:${sshd.port}`, '--ssh-user', SSH_USER, '--ssh-key', sshd.clientKey, ...hostKey];
}

/** Lines sshd logs per forwarded connection (direct-tcpip channels). */
function forwards(): number {
  return sshd
    .output()
    .split('\n')
    .filter((line) => /server_request_direct_tcpip/.test(line)).length;
}

function assertNoSecrets(...outputs: string[]): void {
  for (const out of outputs) {
    assert.ok(!out.includes(PASSPHRASE), 'the SSH key passphrase must never be printed');
    assert.ok(!out.includes(DB_PASSWORD), 'the database password must never be printed');
  }
}

test('check through the tunnel with the host key pinned passes and names the key', { skip }, async () => {
  const before = forwards();
  const result = await runPgcdc(
    ['check', '--source', source, '--tables', 'public.orders', ...sshArgs(['--ssh-host-key', sshd.fingerprint])],
    env,
  );
  assertNoSecrets(result.stdout, result.stderr);
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.match(
    result.stdout,
    new RegExp(
      `SSH tunnel: ${SSH_USER}@127\\.0\\.0\\.1:${sshd.port} \\(host key ` +
        `${sshd.fingerprint.replace(/[+/]/g, '\\$&')}, pinned\\)`,
    ),
  );
  // The query and the replication probe both went through sshd.
  assert.ok(forwards() - before >= 2, sshd.output());
});

test('run through the tunnel captures the snapshot and later changes', { skip }, async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-ssh-run-'));
  const before = forwards();
  const proc = startPgcdc(
    [
      'run',
      '--source',
      source,
      '--slot',
      'ssh_slot',
      '--publication',
      'ssh_pub',
      '--tables',
      'public.orders',
      '--out',
      path.join(dir, 'events'),
      '--offsets',
      path.join(dir, 'offsets.json'),
      '--log-format',
      'json',
      '--log-level',
      'debug',
      ...sshArgs(['--ssh-host-key', sshd.knownHostsLine]),
    ],
    env,
  );
  await eventually(
    async () => ((await readJsonl(path.join(dir, 'events'))).some((e) => e.value.op === 'r') ? true : undefined),
    'the snapshot row',
  );
  await sql.query(
    `insert into orders values (2, 'through ssh'); update orders set note = 'changed' where id = 1; delete ` +
      `from orders where id = 2`,
  );
  const events = await eventually(async () => {
    const all = await readJsonl(path.join(dir, 'events'));
    return all.filter((e) => e.value.op !== 'r').length >= 3 ? all : undefined;
  }, 'three streamed changes');
  proc.kill('SIGTERM');
  assert.equal(await proc.exited, 0, proc.stderr());
  assert.deepEqual(
    events.map((e) => e.value.op),
    ['r', 'c', 'u', 'd'],
  );
  assert.equal(events[2]?.value.after?.note, 'changed');
  // Catalog, snapshot and replication connections: every one forwarded by sshd.
  assert.ok(forwards() - before >= 2, sshd.output());
  assertNoSecrets(proc.stdout(), proc.stderr());
});

test('a wrong pinned host key: check and run refuse in one line, exit 1, naming the key seen', { skip }, async () => {
  const check = await runPgcdc(['check', '--source', source, ...sshArgs(['--ssh-host-key', sshd.otherKeyLine])], env);
  assert.equal(check.code, 1, check.stdout + check.stderr);
  assert.match(
    check.stdout,
    /\[ssh-tunnel\] the SSH host key of 127\.0\.0\.1:\d+ \(SHA256:\S+\) does not match the pinned key/,
  );
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-ssh-wrong-'));
  const run = await runPgcdc(
    [
      'run',
      '--source',
      source,
      '--slot',
      'wrong_slot',
      '--tables',
      'public.orders',
      '--out',
      path.join(dir, 'events'),
      '--offsets',
      path.join(dir, 'o.json'),
      ...sshArgs(['--ssh-host-key', sshd.otherFingerprint]),
    ],
    env,
  );
  assert.equal(run.code, 1, run.stderr);
  const errorLines = run.stderr.split('\n').filter((line) => line.startsWith('pgcdc: error:'));
  assert.equal(errorLines.length, 1, run.stderr);
  assert.match(
    errorLines[0] ?? '',
    new RegExp(
      `host key of 127\\.0\\.0\\.1:${sshd.port} \\(${sshd.fingerprint.replace(/[+/]/g, '\\$&')}\\) does not ` +
        `match the pinned key.*\\[TUNNEL_FAILED\\]$`,
    ),
  );
  assertNoSecrets(check.stdout, check.stderr, run.stdout, run.stderr);
});

test(
  'an unknown host key is refused with its fingerprint; --ssh-trust-on-first-use accepts it and prints it',
  { skip },
  async () => {
    const refused = await runPgcdc(['check', '--source', source, '--tables', 'public.orders', ...sshArgs([])], env);
    assert.equal(refused.code, 1, refused.stdout);
    assert.ok(refused.stdout.includes(`is not pinned (${sshd.fingerprint})`), refused.stdout);
    const tofu = await runPgcdc(
      ['check', '--source', source, '--tables', 'public.orders', ...sshArgs(['--ssh-trust-on-first-use'])],
      env,
    );
    assert.equal(tofu.code, 0, tofu.stdout + tofu.stderr);
    assert.ok(tofu.stderr.includes(`on first use (${sshd.fingerprint})`), tofu.stderr);
    assert.ok(tofu.stdout.includes(`host key ${sshd.fingerprint}, trusted on first use`), tofu.stdout);
    assertNoSecrets(refused.stdout, refused.stderr, tofu.stdout, tofu.stderr);
  },
);

test('SSH secrets are never flags', { skip }, async () => {
  const result = await runPgcdc(
    ['check', '--source', source, ...sshArgs(['--ssh-host-key', sshd.fingerprint]), '--ssh-passphrase', 'x'],
    env,
  );
  assert.equal(result.code, 2);
  assert.match(result.stderr, /unknown option '--ssh-passphrase'/);
});
