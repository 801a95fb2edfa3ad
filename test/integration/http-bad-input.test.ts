/**
 * Bad HTTP sink settings and an endpoint that refuses events, with the real CLI, a real PostgreSQL
 * and a real node:http receiver: each stops pgcdc with ONE line (the last on stderr,
 * `pgcdc: error: ... [CODE]`) naming what is wrong, the exit code README.md gives, and nothing
 * acknowledged to PostgreSQL. Secrets (the signing secret, an Authorization header, a token in the
 * URL's query, a password in the URL) never appear in the output.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { lsnValue, runPgcdc, startPgcdc } from '../harness/cli.ts';
import { TestEndpoint } from '../harness/http-endpoint.ts';
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
import { eventually, freshDatabase, type TestDatabase } from '../harness/pg.ts';
import { logRecords } from '../harness/process.ts';

const SECRET = 'whsec-bad-input-91b2';
const TOKEN = 'Bearer tok-bad-input-5e1d';
const ENV = { [SECRET_ENV]: SECRET, PGCDC_TEST_HTTP_AUTH: TOKEN };

/** The last stderr line, which is the only `pgcdc: error:` line. */
function oneErrorLine(stderr: string): string {
  const lines = stderr.trim().split('\n');
  const errors = lines.filter((line) => line.startsWith('pgcdc: error:'));
  assert.equal(errors.length, 1, `one error line:\n${stderr.slice(-3000)}`);
  assert.equal(lines.at(-1), errors[0], 'the error line is the last line');
  return errors[0] ?? '';
}

function assertNoSecret(stderr: string): void {
  for (const secret of [SECRET, TOKEN, 't0k3n', 's3cretpw']) assert.ok(!stderr.includes(secret), `${secret} printed`);
}

async function setUp(): Promise<{ db: TestDatabase; dir: string; config: string }> {
  const db = await freshDatabase();
  await db.sql.query(`create table acct (id int primary key, balance int not null)`);
  await db.sql.query(`insert into acct values (1, 10), (2, 20)`);
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-http-bad-'));
  const config = await writeRunConfig(
    dir,
    httpSinkSection(['headers:', '  Authorization:', '    env: PGCDC_TEST_HTTP_AUTH', 'timeoutMs: 2000']),
  );
  return { db, dir, config };
}

test('a closed port: retried, then one SINK_FAILED line naming the endpoint, exit 1, no slot', async (t) => {
  const { db, dir, config } = await setUp();
  const url = 'http://127.0.0.1:1/hooks?token=t0k3n';
  const args = httpRunArgs({ db, url, offsets: path.join(dir, 'offsets.json'), config });
  const result = await runPgcdc([...args, '--retry-give-up-after', '3000'], ENV);
  assert.equal(result.code, 1, result.stderr.slice(-3000));
  const line = oneErrorLine(result.stderr);
  assert.match(line, /connecting to the HTTP endpoint http:\/\/127\.0\.0\.1:1: ECONNREFUSED/);
  assert.match(line, /\[SINK_FAILED\]$/);
  assert.ok(
    logRecords(result.stderr).some((r) => typeof r.retry === 'number'),
    'it was retried first',
  );
  assertNoSecret(result.stderr);
  assert.equal(await slotConfirmed(db), undefined, 'no slot was created');
  t.diagnostic(line);
});

test('an unresolvable host: one CONNECT_FAILED line naming the host, exit 2, no slot', async (t) => {
  const { db, dir, config } = await setUp();
  const url = 'https://webhooks.invalid/hooks?token=t0k3n';
  const result = await runPgcdc(httpRunArgs({ db, url, offsets: path.join(dir, 'offsets.json'), config }), ENV);
  assert.equal(result.code, 2, result.stderr.slice(-3000));
  const line = oneErrorLine(result.stderr);
  assert.match(line, /cannot resolve the host webhooks\.invalid.*\[CONNECT_FAILED\]$/);
  assertNoSecret(result.stderr);
  assert.equal(await slotConfirmed(db), undefined, 'no slot was created');
  t.diagnostic(line);
});

test('a URL with user:password: refused before anything starts, exit 2, the password not printed', async (t) => {
  const { db, dir, config } = await setUp();
  const url = 'http://hook:s3cretpw@127.0.0.1:1/hooks';
  const result = await runPgcdc(httpRunArgs({ db, url, offsets: path.join(dir, 'offsets.json'), config }), ENV);
  assert.equal(result.code, 2, result.stderr.slice(-3000));
  const line = oneErrorLine(result.stderr);
  assert.match(
    line,
    /--http-url: must not hold credentials .*from a file or an environment variable.*\[CONFIG_INVALID\]$/,
  );
  assertNoSecret(result.stderr);
  t.diagnostic(line);
});

test(
  'an endpoint answering 400: one line with the status and the body, exit 1, nothing acknowledged, ' +
    'then all delivered once it accepts',
  async (t) => {
    const { db, dir, config } = await setUp();
    const endpoint = await TestEndpoint.start({ secret: SECRET });
    const args = httpRunArgs({ db, url: endpoint.url, offsets: path.join(dir, 'offsets.json'), config });
    const proc = startPgcdc(args, ENV);
    await awaitStreaming(proc, 'pgcdc streaming');
    await eventually(() => slotCaughtUp(db), 'the snapshot delivered', 120_000);
    const accepted = endpoint.log.length;
    // From now on the endpoint refuses; its answer echoes the Authorization header, as some
    // frameworks' error pages do.
    endpoint.answer = {
      kind: 'status',
      status: 400,
      body: `{"error":"payload rejected: unknown field balance","auth":"${TOKEN}"}`,
    };
    const { rows } = await db.sql.query<{ lsn: string }>(`select pg_current_wal_lsn()::text as lsn`);
    const before = rows[0]?.lsn ?? '0/0';
    await db.sql.query(`insert into acct values (3, 30)`);
    assert.equal(await proc.exited, 1, proc.stderr().slice(-3000));
    const line = oneErrorLine(proc.stderr());
    assert.match(
      line,
      /the HTTP endpoint http:\/\/127\.0\.0\.1:\d+ refused a request with 400 Bad Request \(answer: \{"error":/,
    );
    assert.match(line, /payload rejected: unknown field balance/);
    assert.match(line, /\[redacted\]/, 'the echoed Authorization value is blanked out');
    assert.match(line, /\[SINK_FAILED\]$/);
    assertNoSecret(proc.stderr());
    assert.equal(endpoint.log.length, accepted + 1, 'the refused request was not retried');
    const confirmed = await slotConfirmed(db);
    assert.ok(confirmed !== undefined, 'the slot exists');
    assert.ok(lsnValue(confirmed) <= lsnValue(before), `confirmed ${confirmed} past ${before}: a refused change acked`);

    // Nothing was acknowledged: once the endpoint accepts, the next run delivers the refused row.
    endpoint.answer = { kind: 'accept' };
    const again = startPgcdc(args, ENV);
    await awaitStreaming(again, 'pgcdc streaming after the endpoint accepts');
    await eventually(() => slotCaughtUp(db), 'pgcdc caught up', 120_000);
    again.kill('SIGTERM');
    assert.equal(await again.exited, 0, again.stderr().slice(-3000));
    const verdict = await httpVerdict(endpoint, db);
    assert.deepEqual(
      { lost: verdict.lost, extra: verdict.extra, mismatched: verdict.mismatched },
      { lost: 0, extra: 0, mismatched: 0 },
    );
    t.diagnostic(line);
  },
);
