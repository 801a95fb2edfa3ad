/**
 * Bad Redis settings and destinations against a real redis-server (a password on the default user,
 * ACL users) and a real PostgreSQL: each stops pgcdc with ONE line (the last on stderr,
 * `pgcdc: error: ... [CODE]`) naming what is wrong, the exit code README.md gives (2: bad input, a
 * refused login, a host that does not resolve; 1: a destination pgcdc cannot write, or a server
 * unreachable past retry.giveUpAfterMs), and nothing acknowledged to PostgreSQL: no slot, or no
 * entry in the stream, or a confirmed position before the change that failed. Passwords never appear
 * in the output.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { lsnValue, runPgcdc, startPgcdc } from '../harness/cli.ts';
import { eventually, freshDatabase, requireOrSkip, type TestDatabase } from '../harness/pg.ts';
import { logRecords } from '../harness/process.ts';
import { redisAvailable, redisForFile } from '../harness/redis.ts';
import {
  awaitStreaming,
  redisRunArgs,
  slotCaughtUp,
  slotConfirmed,
  writeRunConfig,
} from '../harness/redis-workload.ts';

const skip = requireOrSkip(redisAvailable(), 'redis-server');

const ADMIN_PASSWORD = 'admin-secret-91f2';
const WRITER_PASSWORD = 'writer-secret-3a7e';
const redis = redisForFile({
  password: ADMIN_PASSWORD,
  users: [
    `writer on >${WRITER_PASSWORD} ~* +xadd +type +ping +select +client|setname`,
    // Logs in and checks types, but may not add entries.
    `reader on >${WRITER_PASSWORD} ~* +type +ping +select +client|setname`,
  ],
});

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

async function setUp(): Promise<{ db: TestDatabase; dir: string }> {
  const db = await freshDatabase();
  await db.sql.query(`create table acct (id int primary key, note text)`);
  await db.sql.query(`insert into acct values (1, 'one'), (2, 'two')`);
  return { db, dir: await mkdtemp(path.join(tmpdir(), 'pgcdc-redis-bad-')) };
}

/** Runs pgcdc to its end against `url` with extra `sink:` settings (YAML lines). */
async function run(
  c: { db: TestDatabase; dir: string },
  url: string,
  settings: readonly string[],
  env: NodeJS.ProcessEnv = {},
  extra: readonly string[] = [],
): Promise<Failure> {
  const config = await writeRunConfig(c.dir, ['sink:', '  kind: redis', ...settings.map((line) => `  ${line}`)]);
  const result = await runPgcdc(
    redisRunArgs({ db: c.db, url, offsets: path.join(c.dir, 'offsets.json'), config, extra }),
    env,
  );
  return { code: result.code, line: oneErrorLine(result.stderr), stderr: result.stderr };
}

test(
  'an unreachable server: retried, then one SINK_FAILED line naming host:port, exit 1, no slot',
  { skip },
  async (t) => {
    await redis();
    const c = await setUp();
    const failure = await run(c, 'redis://127.0.0.1:1/0', [], {}, ['--retry-give-up-after', '3000']);
    assert.equal(failure.code, 1, failure.stderr.slice(-3000));
    assert.match(failure.line, /connecting to Redis: Redis at 127\.0\.0\.1:1: .*ECONNREFUSED.*\[SINK_FAILED\]$/);
    assert.ok(
      logRecords(failure.stderr).some((r) => typeof r.retry === 'number'),
      'it was retried first',
    );
    assert.equal(await slotConfirmed(c.db), undefined, 'no slot was created');
    t.diagnostic(failure.line);
  },
);

test('a host that does not resolve: CONNECT_FAILED naming it, exit 2, no slot', { skip }, async (t) => {
  await redis();
  const c = await setUp();
  const failure = await run(c, 'redis://redis.invalid:6379/0', []);
  assert.equal(failure.code, 2, failure.stderr.slice(-3000));
  assert.match(failure.line, /cannot resolve the Redis host of redis\.invalid:6379.*\[CONNECT_FAILED\]$/);
  assert.equal(await slotConfirmed(c.db), undefined, 'no slot was created');
  t.diagnostic(failure.line);
});

test(
  'a wrong password (from an environment variable), and none where one is required: AUTH_FAILED, exit 2',
  { skip },
  async (t) => {
    const server = await redis();
    const c = await setUp();
    const wrong = 'not-the-writer-secret-55';
    const failure = await run(c, server.url(), ['username: writer', 'passwordEnv: PGCDC_TEST_REDIS_PASSWORD'], {
      PGCDC_TEST_REDIS_PASSWORD: wrong,
    });
    assert.equal(failure.code, 2, failure.stderr.slice(-3000));
    assert.match(
      failure.line,
      /Redis authentication failed for user writer at 127\.0\.0\.1:\d+ \(WRONGPASS .*\[AUTH_FAILED\]$/,
    );
    assert.ok(!failure.stderr.includes(wrong), 'the password is not in the output');

    const none = await run(c, server.url(), []);
    assert.equal(none.code, 2, none.stderr.slice(-3000));
    assert.match(none.line, /Redis at 127\.0\.0\.1:\d+ requires a password.*sink\.passwordFile.*\[AUTH_FAILED\]$/);
    assert.equal(await slotConfirmed(c.db), undefined, 'no slot was created');
    t.diagnostic(failure.line);
    t.diagnostic(none.line);
  },
);

test('a password in the URL: refused before connecting, one line, exit 2, not printed', { skip }, async (t) => {
  const server = await redis();
  const c = await setUp();
  const config = await writeRunConfig(c.dir);
  const url = `redis://writer:${WRITER_PASSWORD}@127.0.0.1:${server.port}/0`;
  const result = await runPgcdc(redisRunArgs({ db: c.db, url, offsets: path.join(c.dir, 'o.json'), config }));
  assert.equal(result.code, 2, result.stderr.slice(-3000));
  const line = oneErrorLine(result.stderr);
  assert.match(
    line,
    /--redis-url: must not hold a password.*sink\.passwordFile.*sink\.passwordEnv.*\[CONFIG_INVALID\]$/,
  );
  assert.ok(!result.stderr.includes(WRITER_PASSWORD), 'the password is not in the output');
  t.diagnostic(line);
});

test(
  "a plain string where a table's stream goes: one line naming the key, exit 1, no slot, the key untouched",
  { skip },
  async (t) => {
    const server = await redis();
    const c = await setUp();
    const key = `${c.db.name}.public.acct`;
    await server.command(['SET', key, 'not a stream']);
    const password = path.join(c.dir, 'password');
    await writeFile(password, WRITER_PASSWORD, { mode: 0o600 });
    const failure = await run(c, server.url(), ['username: writer', `passwordFile: ${password}`]);
    assert.equal(failure.code, 1, failure.stderr.slice(-3000));
    assert.match(
      failure.line,
      new RegExp(
        `^pgcdc: error: Redis key ${key} at 127\\.0\\.0\\.1:\\d+ holds a string, not a stream.*\\[SINK_FAILED\\]$`,
      ),
    );
    assert.equal(await slotConfirmed(c.db), undefined, 'no slot was created');
    assert.equal(String(await server.command(['GET', key])), 'not a stream');
    t.diagnostic(failure.line);
  },
);

test(
  'a user not allowed to XADD: one line naming the key and the grant, exit 1, nothing in the stream',
  { skip },
  async (t) => {
    const server = await redis();
    const c = await setUp();
    const failure = await run(c, server.url(), ['username: reader', 'passwordEnv: PGCDC_TEST_REDIS_PASSWORD'], {
      PGCDC_TEST_REDIS_PASSWORD: WRITER_PASSWORD,
    });
    assert.equal(failure.code, 1, failure.stderr.slice(-3000));
    const key = `${c.db.name}.public.acct`;
    assert.match(
      failure.line,
      new RegExp(
        `adding event \\S+ on stream ${key.replace(/\./g, '\\.')} at 127\\.0\\.0\\.1:\\d+: ` +
          'user reader is not allowed to \\(NOPERM .*\\+xadd.*\\[SINK_FAILED\\]$',
      ),
    );
    assert.equal(await server.command(['EXISTS', key]), 0, 'nothing was added');
    t.diagnostic(failure.line);
  },
);

test(
  'a stream replaced by a string while pgcdc streams: WRONGTYPE, one line naming the key, exit 1, not confirmed',
  { skip },
  async (t) => {
    const server = await redis();
    const c = await setUp();
    const config = await writeRunConfig(c.dir, [
      'sink:',
      '  kind: redis',
      '  username: writer',
      '  passwordEnv: PGCDC_TEST_REDIS_PASSWORD',
    ]);
    const proc = startPgcdc(
      redisRunArgs({ db: c.db, url: server.url(), offsets: path.join(c.dir, 'offsets.json'), config }),
      { PGCDC_TEST_REDIS_PASSWORD: WRITER_PASSWORD },
    );
    await awaitStreaming(proc, 'pgcdc streaming');
    await eventually(() => slotCaughtUp(c.db), 'the snapshot delivered and confirmed');
    const key = `${c.db.name}.public.acct`;
    await server.command(['DEL', key]);
    await server.command(['SET', key, 'not a stream']);
    const { rows } = await c.db.sql.query<{ lsn: string }>(`select pg_current_wal_lsn()::text as lsn`);
    const before = rows[0]?.lsn ?? '';
    await c.db.sql.query(`insert into acct values (3, 'three')`);
    assert.equal(await proc.exited, 1, proc.stderr().slice(-3000));
    const line = oneErrorLine(proc.stderr());
    assert.match(
      line,
      new RegExp(
        `adding event \\S+ on stream ${key.replace(/\./g, '\\.')} at 127\\.0\\.0\\.1:\\d+: the key holds another ` +
          'type than a stream \\(WRONGTYPE .*\\[SINK_FAILED\\]$',
      ),
    );
    const confirmed = (await slotConfirmed(c.db)) ?? '';
    assert.ok(lsnValue(confirmed) <= lsnValue(before), `confirmed ${confirmed} did not pass ${before}`);
    assert.equal(String(await server.command(['GET', key])), 'not a stream');
    t.diagnostic(line);
  },
);
