/**
 * Debian's PgBouncer in front of a real server (pool_mode=transaction, as poolers are deployed):
 * `pgcdc check` through it names the pooler and says to connect straight to PostgreSQL, exit 1,
 * whether PgBouncer rejects pgcdc's session options or lets them through (ignore_startup_parameters)
 * and only the replication connection fails. The password never appears.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { freePort } from '../../src/embedded/cluster.ts';
import { onTeardown, requireOrSkip, startCluster } from '../harness/pg.ts';
import { runPgcdc } from '../harness/cli.ts';
import { startDaemon } from '../harness/daemon.ts';

const CANARY = 'canary-Bnc-4d81a0';

function pgbouncerPath(): string | undefined {
  for (const candidate of ['/usr/sbin/pgbouncer', '/usr/bin/pgbouncer']) if (existsSync(candidate)) return candidate;
  try {
    return execFileSync('sh', ['-c', 'command -v pgbouncer']).toString().trim() || undefined;
  } catch {
    return undefined;
  }
}

const binary = pgbouncerPath();
const skip = requireOrSkip(binary !== undefined, 'pgbouncer (Debian package pgbouncer)');

/** The postgres user when we are root: PgBouncer refuses to run as root. */
function runAs(): { uid: number; gid: number } | undefined {
  if (userInfo().uid !== 0) return undefined;
  return {
    uid: Number(execFileSync('id', ['-u', 'postgres']).toString().trim()),
    gid: Number(execFileSync('id', ['-g', 'postgres']).toString().trim()),
  };
}

/** Starts PgBouncer on a free port in front of `serverPort`; resolves with its port. */
async function startPgbouncer(serverPort: number, ignoreStartupParameters: string): Promise<number> {
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-pgbouncer-'));
  onTeardown(() => rm(dir, { recursive: true, force: true }));
  const port = await freePort();
  const ini = path.join(dir, 'pgbouncer.ini');
  await writeFile(path.join(dir, 'userlist.txt'), `"postgres" "${CANARY}"\n`);
  await writeFile(
    ini,
    [
      '[databases]',
      `* = host=127.0.0.1 port=${serverPort}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      `unix_socket_dir = ${dir}`,
      'auth_type = md5',
      `auth_file = ${path.join(dir, 'userlist.txt')}`,
      'pool_mode = transaction',
      `ignore_startup_parameters = ${ignoreStartupParameters}`,
      `logfile = ${path.join(dir, 'pgbouncer.log')}`,
      `pidfile = ${path.join(dir, 'pgbouncer.pid')}`,
      '',
    ].join('\n'),
  );
  const user = runAs();
  await chmod(dir, 0o700);
  if (user) {
    for (const f of ['', 'pgbouncer.ini', 'userlist.txt']) await chown(path.join(dir, f), user.uid, user.gid);
  }
  await startDaemon('pgbouncer', binary ?? 'pgbouncer', [ini], port, user ?? {});
  return port;
}

interface JsonReport {
  ok: boolean;
  errors: { code: string; message: string; fix: string }[];
}

let serverPort = 0;

before(async () => {
  if (skip) return;
  const cluster = await startCluster({ password: CANARY });
  serverPort = cluster.port;
});

async function checkThrough(port: number): Promise<{ code: number; report: JsonReport; text: string }> {
  const source = `postgres://postgres@127.0.0.1:${port}/postgres?sslmode=disable`;
  const env = { PGPASSWORD: CANARY };
  const json = await runPgcdc(['check', '--source', source, '--json'], env);
  const text = await runPgcdc(['check', '--source', source], env);
  for (const out of [json.stdout, json.stderr, text.stdout, text.stderr])
    assert.ok(!out.includes(CANARY), 'the password must never be printed');
  assert.equal(text.code, json.code);
  let report: JsonReport;
  try {
    report = JSON.parse(json.stdout) as JsonReport;
  } catch {
    throw new Error(`not JSON: ${json.stdout} ${json.stderr}`);
  }
  return { code: json.code, report, text: `${text.stdout}${text.stderr}` };
}

function assertNamesPooler(result: { code: number; report: JsonReport; text: string }): void {
  assert.equal(result.code, 1, result.text);
  const pooler = result.report.errors.find((e) => e.code === 'pooler-pgbouncer');
  assert.ok(pooler, result.text);
  assert.match(pooler.message, /PgBouncer/);
  assert.match(pooler.fix, /connect pgcdc straight to PostgreSQL .*not through PgBouncer/);
  assert.match(result.text, /pooler-pgbouncer[\s\S]*fix: connect pgcdc straight to PostgreSQL/);
}

test(
  'check through PgBouncer that rejects startup options names the pooler and the fix, exit 1',
  { skip },
  async () => {
    const port = await startPgbouncer(serverPort, 'extra_float_digits');
    const result = await checkThrough(port);
    // Only the pooler: a generic "check the host, port and credentials" would send the user the wrong way.
    assert.deepEqual(
      result.report.errors.map((e) => e.code),
      ['pooler-pgbouncer'],
      result.text,
    );
    assertNamesPooler(result);
  },
);

test(
  'check through PgBouncer that lets the session options through still names it (the replication connection ' +
    'fails), exit 1',
  { skip },
  async () => {
    const port = await startPgbouncer(serverPort, 'extra_float_digits,options');
    const result = await checkThrough(port);
    assertNamesPooler(result);
    assert.match(result.report.errors.find((e) => e.code === 'pooler-pgbouncer')?.message ?? '', /replication/);
  },
);

test('the same server checked directly has no pooler problem', { skip }, async () => {
  const result = await checkThrough(serverPort);
  assert.ok(!result.report.errors.some((e) => e.code.startsWith('pooler-')), result.text);
});
