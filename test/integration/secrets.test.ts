/**
 * Passwords from every source (PGPASSWORD, ~/.pgpass, PGPASSFILE, --password-file, the URL) reach
 * the server, and a canary password never appears in anything pgcdc prints or writes: stdout,
 * stderr, trace-level JSON logs, the offsets file and the events, for run, check and setup, on the
 * success paths and the failure paths (wrong password, unreachable host, a server without TLS under
 * the default sslmode, a password file with loose permissions, a malformed URL).
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { eventually, onTeardown, startCluster } from '../harness/pg.ts';
import { readJsonl, runPgcdc, startPgcdc } from '../harness/cli.ts';

const CANARY = 'canary-Secret-4e9d17';
/** A wrong password, also a canary: failed logins must not echo it either. */
const WRONG = 'canary-Wrong-a0c35b';
const USER_PW = 'canary-User-6b2f08';

let port: number;
let home: string;
/** `postgres://postgres@127.0.0.1:port/postgres`, with sslmode=disable unless asked otherwise (no password). */
let bare: (sslmode?: string) => string;
const outputs: string[] = [];

before(async () => {
  const cluster = await startCluster({ password: CANARY });
  port = cluster.port;
  home = await mkdtemp(path.join(tmpdir(), 'pgcdc-secrets-'));
  bare = (sslmode = 'disable') =>
    `postgres://postgres@127.0.0.1:${port}/postgres${sslmode === '' ? '' : `?sslmode=${sslmode}`}`;
  const sql = new pg.Client({ connectionString: cluster.url('postgres') });
  await sql.connect();
  onTeardown(() => sql.end());
  await sql.query(`create table orders (id int primary key, note text); insert into orders values (1, 'one')`);
  await writeFile(path.join(home, 'pw'), `${CANARY}\n`, { mode: 0o600 });
  await writeFile(path.join(home, 'wrong'), `${WRONG}\n`, { mode: 0o600 });
});

/** Runs pgcdc with HOME pointing at the test's directory (no real ~/.pgpass is read) and keeps its output. */
async function pgcdc(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const result = await runPgcdc(args, { HOME: home, PGPASSWORD: undefined, PGPASSFILE: undefined, ...env });
  outputs.push(result.stdout, result.stderr);
  return result;
}

function clean(text: string, what: string): void {
  for (const secret of [CANARY, WRONG, USER_PW]) assert.ok(!text.includes(secret), `${what} contains a password`);
}

test('check: PGPASSWORD, --password-file, PGPASSFILE, ~/.pgpass and the URL all authenticate', async () => {
  const pgpass = path.join(home, '.pgpass');
  await writeFile(pgpass, `# comment\n127.0.0.1:${port}:postgres:postgres:${CANARY.replace(/[:\\]/g, '\\$&')}\n`, {
    mode: 0o600,
  });
  const ways: [string, string[], NodeJS.ProcessEnv][] = [
    ['PGPASSWORD', [], { PGPASSWORD: CANARY }],
    ['--password-file', ['--password-file', path.join(home, 'pw')], {}],
    ['PGPASSFILE', [], { PGPASSFILE: pgpass }],
    ['~/.pgpass', [], {}],
    ['URL', [], {}],
  ];
  for (const [way, extra, env] of ways) {
    const source = way === 'URL' ? `postgres://postgres:${CANARY}@127.0.0.1:${port}/postgres?sslmode=disable` : bare();
    const result = await pgcdc(['check', '--source', source, '--tables', 'public.orders', ...extra], env);
    assert.equal(result.code, 0, `${way}: ${result.stdout}${result.stderr}`);
  }
});

test('run with the password from ~/.pgpass, trace-level JSON logs: nothing written holds it', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-secrets-run-'));
  const proc = startPgcdc(
    [
      'run',
      '--source',
      bare(),
      '--slot',
      'secrets_slot',
      '--publication',
      'secrets_pub',
      '--tables',
      'public.orders',
      '--out',
      path.join(dir, 'events'),
      '--offsets',
      path.join(dir, 'offsets.json'),
      '--log-format',
      'json',
      '--log-level',
      'trace',
    ],
    { HOME: home, PGPASSWORD: undefined, PGPASSFILE: undefined },
  );
  await eventually(
    async () => ((await readJsonl(path.join(dir, 'events'))).length > 0 ? true : undefined),
    'the snapshot row',
  );
  proc.kill('SIGTERM');
  assert.equal(await proc.exited, 0, proc.stderr());
  outputs.push(proc.stdout(), proc.stderr());
  for (const file of await readdir(dir, { recursive: true })) {
    const full = path.join(dir, file);
    const text = await readFile(full, 'utf8').catch(() => '');
    clean(text, full);
  }
});

test(
  'failure paths: wrong password from each source, unreachable host, malformed URL, in one line without the ' +
    'password',
  async () => {
    const wrongPgpass = path.join(home, 'wrong.pgpass');
    await writeFile(wrongPgpass, `*:*:*:*:${WRONG}\n`, { mode: 0o600 });
    // Each source, with the hint naming that source and no other (PGPASSWORD is set beside the URL
    // and the file: the hint must still name the one that was used).
    const wrong: [string[], NodeJS.ProcessEnv, RegExp][] = [
      [
        ['--source', bare()],
        { PGPASSWORD: WRONG },
        /the password used came from PGPASSWORD: check it and the user name/,
      ],
      [
        ['--source', bare(), '--password-file', path.join(home, 'wrong')],
        { PGPASSWORD: CANARY },
        /the password used came from the password file .*wrong \(--password-file or source\.passwordFile\): check it/,
      ],
      [
        ['--source', bare()],
        { PGPASSFILE: wrongPgpass },
        /the password used came from the line of .*wrong\.pgpass matching 127\.0\.0\.1:\d+:postgres:postgres: check it/,
      ],
      [
        ['--source', `postgres://postgres:${WRONG}@127.0.0.1:${port}/postgres?sslmode=disable`],
        { PGPASSWORD: CANARY },
        /the password used came from the source URL: check it/,
      ],
    ];
    for (const [args, env, hint] of wrong) {
      const check = await pgcdc(['check', ...args], env);
      assert.equal(check.code, 1);
      assert.match(check.stdout, /\[auth\] authentication failed for postgres@127\.0\.0\.1/);
      assert.match(check.stdout, hint);
      const run = await pgcdc(
        [
          'run',
          ...args,
          '--tables',
          'public.orders',
          '--offsets',
          path.join(home, 'o.json'),
          '--out',
          path.join(home, 'ev'),
        ],
        env,
      );
      assert.equal(run.code, 2, run.stderr);
      assert.match(
        run.stderr,
        /^pgcdc: error: authentication failed for postgres@127\.0\.0\.1:\d+\/postgres\..*\[AUTH_FAILED\]\n$/,
      );
      assert.match(run.stderr, hint);
      const others = [/PGPASSWORD/, /--password-file/, /pgpass/, /URL/].filter((other) => !other.test(hint.source));
      for (const other of others)
        assert.doesNotMatch(run.stderr, other, `the hint names only the source used (${hint.source})`);
    }
    const unreachable = `postgres://postgres:${CANARY}@127.0.0.1:1/postgres`;
    const check = await pgcdc(['check', '--source', unreachable]);
    assert.equal(check.code, 1);
    assert.match(check.stdout, /\[connect\] cannot connect to postgres@127\.0\.0\.1:1\/postgres/);
    const run = await pgcdc([
      'run',
      '--source',
      unreachable,
      '--offsets',
      path.join(home, 'o.json'),
      '--out',
      path.join(home, 'ev'),
      '--retry-give-up-after',
      '0',
    ]);
    assert.notEqual(run.code, 0);
    assert.match(run.stderr, /cannot connect to postgres@127\.0\.0\.1:1\/postgres/);
    const malformed = await pgcdc(['check', '--source', `postgres://postgres:${CANARY}@[bad/postgres`]);
    assert.equal(malformed.code, 2);
    assert.match(malformed.stderr, /source URL is malformed/);
  },
);

test(
  'no password anywhere: one line naming the sources; ' + 'a group-readable ~/.pgpass is ignored, saying chmod 0600',
  async () => {
    const loose = path.join(home, 'loose.pgpass');
    await writeFile(loose, `*:*:*:*:${CANARY}\n`, { mode: 0o644 });
    const result = await pgcdc(['check', '--source', bare()], { PGPASSFILE: loose });
    assert.equal(result.code, 1);
    assert.match(
      result.stdout,
      new RegExp(
        /asks for a password and none is configured \(the password file .*loose\.pgpass /.source +
          /was ignored because group or others can read it \(run chmod 0600/.source,
      ),
    );
    const run = await pgcdc(
      ['run', '--source', bare(), '--offsets', path.join(home, 'o.json'), '--out', path.join(home, 'ev')],
      { PGPASSFILE: path.join(home, 'none') },
    );
    assert.equal(run.code, 2);
    assert.match(
      run.stderr,
      new RegExp(
        /^pgcdc: error: postgres@127\.0\.0\.1:\d+\/postgres /.source +
          /asks for a password and none is configured \(no password file at .*\)\. set PGPASSWORD, pass --password-file/
            .source,
      ),
    );
  },
);

test(
  'default sslmode=require against a server without TLS: ' + 'one line saying to enable TLS or use sslmode=disable',
  async () => {
    const check = await pgcdc(['check', '--source', bare('')], { PGPASSWORD: CANARY });
    assert.equal(check.code, 1);
    assert.match(
      check.stdout,
      /does not accept TLS connections, but sslmode=require requires TLS \(require is pgcdc's default\)/,
    );
    assert.match(
      check.stdout,
      /fix: enable TLS on the server \(ssl = on\), or, for a local server you trust, add sslmode=disable/,
    );
    const run = await pgcdc(
      ['run', '--source', bare(''), '--offsets', path.join(home, 'o.json'), '--out', path.join(home, 'ev')],
      { PGPASSWORD: CANARY },
    );
    assert.equal(run.code, 2);
    assert.match(
      run.stderr,
      new RegExp(
        /^pgcdc: error: postgres@127\.0\.0\.1:\d+\/postgres /.source +
          /does not accept TLS connections.*sslmode=disable.*\[CONNECT_FAILED\]\n$/.source,
      ),
    );
  },
);

test(
  'setup --apply with the admin password from a file and the user password from the environment, then a ' +
    'failing admin login',
  async () => {
    const args = [
      'setup',
      '--platform',
      'generic',
      '--user',
      'secrets_user',
      '--tables',
      'public.orders',
      '--slot',
      'setup_slot',
      '--publication',
      'setup_pub',
      '--apply',
      '--admin-url',
      bare(),
    ];
    const ok = await pgcdc([...args, '--admin-password-file', path.join(home, 'pw')], { PGCDC_USER_PASSWORD: USER_PW });
    assert.equal(ok.code, 0, ok.stderr + ok.stdout);
    const check = await pgcdc(
      [
        'check',
        '--source',
        `postgres://secrets_user@127.0.0.1:${port}/postgres?sslmode=disable`,
        '--tables',
        'public.orders',
        '--slot',
        'setup_slot',
        '--publication',
        'setup_pub',
      ],
      { PGPASSWORD: USER_PW },
    );
    assert.equal(check.code, 0, check.stdout);
    const bad = await pgcdc([...args, '--admin-password-file', path.join(home, 'wrong')], {
      PGCDC_USER_PASSWORD: USER_PW,
    });
    assert.equal(bad.code, 2);
    assert.match(
      bad.stderr,
      /^pgcdc: error: authentication failed for postgres@127\.0\.0\.1:\d+\/postgres.*\[AUTH_FAILED\]\n$/,
    );
    assert.match(bad.stderr, /the password used came from the admin password file .*wrong \(--admin-password-file\)/);
    const badEnv = await pgcdc(args, { PGCDC_ADMIN_PASSWORD: WRONG, PGCDC_USER_PASSWORD: USER_PW });
    assert.equal(badEnv.code, 2);
    assert.match(badEnv.stderr, /the password used came from PGCDC_ADMIN_PASSWORD: check it/);
    const unreachable = await pgcdc(
      [
        'setup',
        '--platform',
        'generic',
        '--all-tables',
        '--apply',
        '--admin-url',
        'postgres://postgres@127.0.0.1:1/postgres',
      ],
      { PGCDC_ADMIN_PASSWORD: CANARY },
    );
    assert.notEqual(unreachable.code, 0);
    assert.match(unreachable.stderr, /cannot connect to postgres@127\.0\.0\.1:1\/postgres/);
  },
);

test('no output of any run above contains a password', () => {
  assert.ok(outputs.length > 20);
  outputs.forEach((out, i) => clean(out, `output ${i}`));
});
