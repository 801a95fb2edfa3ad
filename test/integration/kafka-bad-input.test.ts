/**
 * Bad Kafka settings and data against a real broker (with a SASL_PLAINTEXT listener and ACLs) and a
 * real PostgreSQL: each stops pgcdc with ONE line (the last on stderr, `pgcdc: error: ... [CODE]`)
 * naming what is wrong, the exit code README.md gives, and nothing acknowledged to PostgreSQL (no
 * slot, or a slot whose confirmed position did not pass the change that failed). Secrets never
 * appear in the output; a SCRAM-SHA-512 login with the password from an environment variable works.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { lsnValue, runPgcdc, startPgcdc, type PgcdcProcess } from '../harness/cli.ts';
import { dumpTopics, kafkaAvailable, KAFKA_USERS, kafkaForFile } from '../harness/kafka.ts';
import {
  kafkaRunArgs,
  kafkaVerdict,
  slotCaughtUp,
  slotConfirmed,
  writeRunConfig,
  type KafkaRun,
} from '../harness/kafka-workload.ts';
import { eventually, freshDatabase, requireOrSkip, type TestDatabase } from '../harness/pg.ts';
import { logRecords } from '../harness/process.ts';

const skip = requireOrSkip(kafkaAvailable(), 'Apache Kafka (java, and the test/kafka jars or mvn)');

const kafka = kafkaForFile({ sasl: true });

interface Case {
  db: TestDatabase;
  dir: string;
  run: (settings: readonly string[], env?: NodeJS.ProcessEnv, delivery?: KafkaRun['delivery']) => Promise<Failure>;
}

interface Failure {
  code: number;
  line: string;
  stderr: string;
}

/** A database with a table and a runner for pgcdc with extra `sink:` settings (YAML lines). */
async function setUp(bootstrap: string): Promise<Case> {
  const db = await freshDatabase();
  await db.sql.query(`create table acct (id int primary key, note text)`);
  await db.sql.query(`insert into acct values (1, 'one'), (2, 'two')`);
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-kafka-bad-'));
  return {
    db,
    dir,
    async run(settings, env = {}, delivery = 'exactly-once') {
      const config = await writeRunConfig(dir, sinkSection(bootstrap, settings));
      const run: KafkaRun = { db, bootstrap, delivery, offsets: path.join(dir, 'offsets.json'), config };
      const result = await runPgcdc(kafkaRunArgs(run), env);
      return { code: result.code, line: oneErrorLine(result.stderr), stderr: result.stderr };
    },
  };
}

function sinkSection(bootstrap: string, settings: readonly string[]): string[] {
  return ['sink:', '  kind: kafka', `  bootstrapServers: ${bootstrap}`, ...settings.map((line) => `  ${line}`)];
}

/** The last stderr line, which is the only `pgcdc: error:` line. */
function oneErrorLine(stderr: string): string {
  const lines = stderr.trim().split('\n');
  const errors = lines.filter((line) => line.startsWith('pgcdc: error:'));
  assert.equal(errors.length, 1, `one error line:\n${stderr.slice(-3000)}`);
  assert.equal(lines.at(-1), errors[0], 'the error line is the last line');
  return errors[0] ?? '';
}

function saslSettings(mechanism: string, user: string, password: string[]): string[] {
  return [
    'sasl:',
    `  mechanism: ${mechanism}`,
    `  username: ${user}`,
    '  password:',
    ...password.map((l) => `    ${l}`),
  ];
}

async function secretFile(dir: string, secret: string): Promise<string> {
  const file = path.join(dir, 'kafka-password');
  await writeFile(file, `${secret}\n`, { mode: 0o600 });
  return file;
}

test(
  'a closed bootstrap port: retried, then one SINK_FAILED line naming the brokers, exit 1, no slot',
  { skip },
  async (t) => {
    await kafka();
    const { db, dir } = await setUp('127.0.0.1:1');
    const config = await writeRunConfig(dir, sinkSection('127.0.0.1:1', ['requestTimeoutMs: 2000']));
    const run: KafkaRun = { db, bootstrap: '127.0.0.1:1', offsets: path.join(dir, 'offsets.json'), config };
    const result = await runPgcdc(kafkaRunArgs({ ...run, extra: ['--retry-give-up-after', '3000'] }));
    assert.equal(result.code, 1, result.stderr.slice(-3000));
    const line = oneErrorLine(result.stderr);
    assert.match(line, /127\.0\.0\.1:1/);
    assert.match(line, /\[SINK_FAILED\]$/);
    assert.ok(
      logRecords(result.stderr).some((r) => typeof r.retry === 'number'),
      'it was retried first',
    );
    assert.equal(await slotConfirmed(db), undefined, 'no slot was created');
    t.diagnostic(line);
  },
);

test('an unresolvable broker host: one line naming the host, exit 2, no slot', { skip }, async (t) => {
  await kafka();
  const c = await setUp('kafka.invalid:9092');
  const failure = await c.run(['requestTimeoutMs: 2000']);
  assert.equal(failure.code, 2, failure.stderr.slice(-3000));
  assert.match(failure.line, /kafka\.invalid/);
  assert.equal(await slotConfirmed(c.db), undefined, 'no slot was created');
  t.diagnostic(failure.line);
});

test(
  'a wrong SASL password (from a file): AUTH_FAILED, exit 2, the password never printed, no slot',
  { skip },
  async (t) => {
    const broker = await kafka();
    const c = await setUp(broker.saslBootstrap);
    const wrong = 'not-the-admin-secret-42';
    const failure = await c.run(saslSettings('SCRAM-SHA-256', 'admin', [`file: ${await secretFile(c.dir, wrong)}`]));
    assert.equal(failure.code, 2, failure.stderr.slice(-3000));
    assert.match(failure.line, /Kafka authentication failed.*\[AUTH_FAILED\]$/);
    assert.ok(!failure.stderr.includes(wrong), 'the password is not in the output');
    assert.equal(await slotConfirmed(c.db), undefined, 'no slot was created');
    t.diagnostic(failure.line);
  },
);

test('a user without ACLs: an authorization failure naming what to grant, exit 1, no slot', { skip }, async (t) => {
  const broker = await kafka();
  const c = await setUp(broker.saslBootstrap);
  const env = { PGCDC_TEST_KAFKA_PASSWORD: KAFKA_USERS.stranger };
  const sasl = saslSettings('PLAIN', 'stranger', ['env: PGCDC_TEST_KAFKA_PASSWORD']);
  // at-least-once needs no transactional id: the topics are the first thing refused.
  const topics = await c.run(sasl, env, 'at-least-once');
  assert.equal(topics.code, 1, topics.stderr.slice(-3000));
  assert.match(topics.line, /not authorized to \w+ Kafka topic t_\w+\.public\.acct\. grant .*\[SINK_FAILED\]$/);
  assert.ok(!topics.stderr.includes(KAFKA_USERS.stranger), 'the password is not in the output');
  // exactly-once: the transactional id is refused first.
  const transactional = await c.run(sasl, env);
  assert.equal(transactional.code, 1, transactional.stderr.slice(-3000));
  assert.match(transactional.line, /not authorized to use transactional id pgcdc-t_\w+-s_t_\w+.*\[SINK_FAILED\]$/);
  assert.equal(await slotConfirmed(c.db), undefined, 'no slot was created');
  t.diagnostic(topics.line);
  t.diagnostic(transactional.line);
});

test('an unknown compression: CONFIG_INVALID, exit 2, no slot', { skip }, async (t) => {
  const broker = await kafka();
  const c = await setUp(broker.bootstrap);
  const failure = await c.run(['compression: brotli']);
  assert.equal(failure.code, 2, failure.stderr.slice(-3000));
  assert.match(failure.line, /compression.*\[CONFIG_INVALID\]$/);
  assert.match(failure.line, /zstd/, 'the line lists the valid values');
  assert.equal(await slotConfirmed(c.db), undefined, 'no slot was created');
  t.diagnostic(failure.line);
});

test(
  'a row larger than sink.messageMaxBytes: one line naming table and key, exit 1, not acknowledged',
  { skip },
  async (t) => {
    const broker = await kafka();
    const c = await setUp(broker.bootstrap);
    const config = await writeRunConfig(c.dir, sinkSection(broker.bootstrap, ['messageMaxBytes: 4096']));
    const proc: PgcdcProcess = startPgcdc(
      kafkaRunArgs({ db: c.db, bootstrap: broker.bootstrap, offsets: path.join(c.dir, 'offsets.json'), config }),
    );
    await eventually(
      () => (logRecords(proc.stderr()).some((r) => r.msg === 'streaming') ? true : undefined),
      'streaming',
    );
    await eventually(() => slotCaughtUp(c.db), 'the snapshot delivered and confirmed');
    const { rows } = await c.db.sql.query<{ lsn: string }>(`select pg_current_wal_lsn()::text as lsn`);
    const before = rows[0]?.lsn ?? '';
    await c.db.sql.query(`insert into acct values (3, 'three'), (77, repeat('x', 10000)), (4, 'four')`);
    assert.equal(await proc.exited, 1, proc.stderr().slice(-3000));
    const line = oneErrorLine(proc.stderr());
    assert.match(line, /of t_\w+\.public\.acct \(key \{"id":77\}\) is \d+ bytes, over sink\.messageMaxBytes \(4096\)/);
    assert.match(line, /\[SINK_FAILED\]$/);
    const confirmed = (await slotConfirmed(c.db)) ?? '';
    assert.ok(lsnValue(confirmed) <= lsnValue(before), `confirmed ${confirmed} did not pass ${before}`);
    // Nothing of the transaction is visible to read_committed readers.
    const ids = (await dumpTopics(broker.bootstrap, `${c.db.name}\\.public\\.acct`)).map((r) => r.key);
    assert.deepEqual(ids.sort(), ['{"id":1}', '{"id":2}']);
    t.diagnostic(line);
  },
);

test(
  'SASL SCRAM-SHA-512 with the password from an environment variable delivers; it is never printed',
  { skip },
  async (t) => {
    const broker = await kafka();
    const c = await setUp(broker.saslBootstrap);
    const config = await writeRunConfig(
      c.dir,
      sinkSection(broker.saslBootstrap, saslSettings('SCRAM-SHA-512', 'admin', ['env: PGCDC_TEST_KAFKA_PASSWORD'])),
    );
    const proc = startPgcdc(
      kafkaRunArgs({ db: c.db, bootstrap: broker.saslBootstrap, offsets: path.join(c.dir, 'offsets.json'), config }),
      { PGCDC_TEST_KAFKA_PASSWORD: KAFKA_USERS.admin },
    );
    await eventually(
      () => (logRecords(proc.stderr()).some((r) => r.msg === 'streaming') ? true : undefined),
      'streaming',
    );
    await c.db.sql.query(`insert into acct select g, 'row ' || g from generate_series(3, 102) g`);
    await c.db.sql.query(`update acct set note = note || '!' where id % 4 = 0`);
    await c.db.sql.query(`delete from acct where id % 9 = 0`);
    await eventually(() => slotCaughtUp(c.db), 'pgcdc caught up', 120_000);
    proc.kill('SIGTERM');
    assert.equal(await proc.exited, 0, proc.stderr().slice(-3000));
    assert.ok(!proc.stderr().includes(KAFKA_USERS.admin), 'the password is not in the output');
    assert.ok(!proc.stdout().includes(KAFKA_USERS.admin), 'the password is not in the output');
    const verdict = await kafkaVerdict(broker.bootstrap, c.db);
    t.diagnostic(
      `SASL SCRAM-SHA-512: ${verdict.events} events, lost ${verdict.lost}, duplicates ${verdict.duplicated}`,
    );
    assert.deepEqual(
      { lost: verdict.lost, extra: verdict.extra, mismatched: verdict.mismatched, duplicated: verdict.duplicated },
      { lost: 0, extra: 0, mismatched: 0, duplicated: 0 },
    );
  },
);
