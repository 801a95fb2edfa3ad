/**
 * Who owns a capture's Kafka transactional id and checkpoint, against a real broker and PostgreSQL:
 * - zombie fencing: a second pgcdc on the same slot (and so the same transactional id) fences the
 *   first, which stops with one SINK_FENCED line and exit 1; the second takes the slot over and goes
 *   on; the replay shows nothing lost and no event id twice;
 * - `--offsets kafka`: a pgcdc with no local state resumes exactly where the previous one stopped;
 * - the offsets file against the checkpoint in Kafka: a file behind is moved forward, a file ahead
 *   is refused (OFFSETS_DIVERGED, exit 1) without acknowledging anything.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { lsnValue, MAIN, runPgcdc, startPgcdc, type PgcdcProcess } from '../harness/cli.ts';
import { Workload } from '../harness/faults.ts';
import { kafkaAvailable, kafkaForFile } from '../harness/kafka.ts';
import {
  awaitStreaming as streaming,
  kafkaRunArgs,
  kafkaVerdict,
  slotCaughtUp,
  slotConfirmed,
  slotOf,
  writeRunConfig,
  type KafkaRun,
  type KafkaVerdict,
} from '../harness/kafka-workload.ts';
import { eventually, freshDatabase, onTeardown, requireOrSkip, type TestDatabase } from '../harness/pg.ts';
import { logRecords } from '../harness/process.ts';
import { readCheckpoint, serializeCheckpoint } from '../../src/offsets/file.ts';

const skip = requireOrSkip(kafkaAvailable(), 'Apache Kafka (java, and the test/kafka jars or mvn)');

const kafka = kafkaForFile();

/** Waits until `proc` confirmed everything the source wrote, then stops it (SIGTERM, exit 0). */
async function catchUpAndStop(proc: PgcdcProcess, db: TestDatabase): Promise<void> {
  await eventually(() => slotCaughtUp(db), 'pgcdc caught up with the source', 120_000);
  proc.kill('SIGTERM');
  assert.equal(await proc.exited, 0, proc.stderr().slice(-3000));
}

async function tableWithRows(db: TestDatabase): Promise<void> {
  await db.sql.query(`create table acct (id int primary key, balance int not null)`);
  await db.sql.query(`insert into acct select g, g from generate_series(1, 100) g`);
}

/** A few keyed changes: inserts from `first`, an update and a delete. */
async function someChanges(db: TestDatabase, first: number): Promise<void> {
  await db.sql.query(`insert into acct select g, g from generate_series($1::int, $1::int + 49) g`, [first]);
  await db.sql.query(`update acct set balance = balance + 1 where id % 5 = 0`);
  await db.sql.query(`delete from acct where id = $1`, [first + 7]);
}

function assertExact(verdict: KafkaVerdict): void {
  assert.deepEqual(
    { lost: verdict.lost, extra: verdict.extra, mismatched: verdict.mismatched, duplicated: verdict.duplicated },
    { lost: 0, extra: 0, mismatched: 0, duplicated: 0 },
  );
}

/** The one error line a failed pgcdc printed: its last stderr line, and the only `pgcdc: error:` line. */
function errorLine(stderr: string): string {
  const lines = stderr.trim().split('\n');
  const errors = lines.filter((line) => line.startsWith('pgcdc: error:'));
  assert.equal(errors.length, 1, `one error line:\n${stderr.slice(-3000)}`);
  assert.equal(lines.at(-1), errors[0], 'the error line is the last line');
  return errors[0] ?? '';
}

test('two pgcdc on one slot: the older is fenced (one line, exit 1), the newer takes over', { skip }, async (t) => {
  const broker = await kafka();
  const db = await freshDatabase();
  await tableWithRows(db);
  const dirA = await mkdtemp(path.join(tmpdir(), 'pgcdc-fence-a-'));
  const dirB = await mkdtemp(path.join(tmpdir(), 'pgcdc-fence-b-'));
  const run = (dir: string): KafkaRun => ({ db, bootstrap: broker.bootstrap, offsets: path.join(dir, 'offsets.json') });
  const older = startPgcdc(kafkaRunArgs({ ...run(dirA), config: await writeRunConfig(dirA) }));
  await streaming(older, 'the first pgcdc streaming');
  const workload = new Workload(db.url, 20);
  let newer: PgcdcProcess | undefined;
  try {
    await eventually(() => (workload.committed >= 20 ? true : undefined), 'some workload transactions');
    newer = startPgcdc(kafkaRunArgs({ ...run(dirB), config: await writeRunConfig(dirB) }));
    await eventually(() => (older.child.exitCode !== null ? true : undefined), 'the older pgcdc to stop', 60_000).catch(
      (error: unknown) => {
        throw new Error(
          `${String(error)}\nolder:\n${older.stderr().slice(-4000)}\nnewer:\n${newer?.stderr().slice(-4000) ?? ''}`,
        );
      },
    );
    assert.equal(await older.exited, 1, older.stderr().slice(-3000));
    const line = errorLine(older.stderr());
    // Fenced by the newer's take-over; or, when a fault had the older between two retry attempts as the
    // newer started, stopped at its next attempt because the newer streams the slot by then.
    assert.match(
      line,
      /another pgcdc took over Kafka transactional id pgcdc-t_\w+-s_t_\w+ .*\[SINK_FENCED\]$|\[SLOT_TAKEN_OVER\]$/,
    );
    t.diagnostic(`fenced: ${line}`);
    await streaming(newer, 'the newer pgcdc streaming after the takeover');
    const since = workload.committed;
    await eventually(() => (workload.committed >= since + 20 ? true : undefined), 'workload after the takeover');
  } finally {
    await workload.stop();
  }
  await catchUpAndStop(newer, db);
  const verdict = await kafkaVerdict(broker.bootstrap, db);
  t.diagnostic(
    `fencing: ${workload.committed} workload transactions, ${verdict.events} events read; lost ${verdict.lost}, ` +
      `extra ${verdict.extra}, mismatched ${verdict.mismatched}, duplicates ${verdict.duplicated}`,
  );
  assertExact(verdict);
});

test('--offsets kafka: a pgcdc with an empty working directory resumes exactly from Kafka', { skip }, async (t) => {
  const broker = await kafka();
  const db = await freshDatabase();
  // With `--offsets kafka` the `pgcdc snapshot` mailbox is `./pgcdc-<slot>.requests/` in pgcdc's working
  // directory (offsets/open.ts sideFilesBase), which the harness makes the repository: removed afterwards.
  const mailbox = path.join(path.dirname(MAIN), '..', '..', `pgcdc-${slotOf(db)}.requests`);
  onTeardown(() => rm(mailbox, { recursive: true, force: true }));
  // And the run-state file there (health/run-file.ts).
  onTeardown(() => rm(mailbox.replace(/\.requests$/, '.run.json'), { force: true }));
  await tableWithRows(db);
  const run = async (): Promise<PgcdcProcess> => {
    // A new, empty working directory each time: only its configuration is in it.
    const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-offsets-kafka-'));
    return startPgcdc(
      kafkaRunArgs({ db, bootstrap: broker.bootstrap, offsets: 'kafka', config: await writeRunConfig(dir) }),
    );
  };
  const first = await run();
  await streaming(first, 'the first pgcdc streaming');
  await someChanges(db, 1000);
  await catchUpAndStop(first, db);
  await someChanges(db, 2000); // while no pgcdc runs
  const second = await run();
  await streaming(second, 'the second pgcdc streaming');
  await someChanges(db, 3000);
  await catchUpAndStop(second, db);
  const resumed = logRecords(second.stderr()).find((r) => r.msg === 'resuming after stored checkpoint');
  assert.ok(resumed, `the second pgcdc resumed from the checkpoint in Kafka:\n${second.stderr().slice(-3000)}`);
  assert.ok(!logRecords(second.stderr()).some((r) => r.msg === 'created replication slot'));
  const verdict = await kafkaVerdict(broker.bootstrap, db);
  t.diagnostic(
    `--offsets kafka: ${verdict.events} events read, resumed at ${String(resumed.lsn)}; lost ${verdict.lost}, ` +
      `extra ${verdict.extra}, mismatched ${verdict.mismatched}, duplicates ${verdict.duplicated}`,
  );
  assertExact(verdict);
});

test('an offsets file behind Kafka is moved forward; one ahead of Kafka is OFFSETS_DIVERGED', { skip }, async (t) => {
  const broker = await kafka();
  const db = await freshDatabase();
  await tableWithRows(db);
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-offsets-file-'));
  const offsets = path.join(dir, 'offsets.json');
  const args = kafkaRunArgs({ db, bootstrap: broker.bootstrap, offsets, config: await writeRunConfig(dir) });
  const first = startPgcdc(args);
  await streaming(first, 'the first pgcdc streaming');
  await someChanges(db, 1000);
  await catchUpAndStop(first, db);
  const behind = await readFile(offsets, 'utf8');

  const second = startPgcdc(args);
  await streaming(second, 'the second pgcdc streaming');
  await someChanges(db, 2000);
  await catchUpAndStop(second, db);
  const inKafka = (await readCheckpoint(offsets))?.lsn ?? '';
  assert.ok(lsnValue(inKafka) > lsnValue((JSON.parse(behind) as { lsn: string }).lsn));

  // A file behind the checkpoint in Kafka (a backup restored, say): moved forward, with a log line.
  await writeFile(offsets, behind);
  const third = startPgcdc(args);
  await streaming(third, 'the third pgcdc streaming');
  const moved = logRecords(third.stderr()).find((r) => /offsets file lagged behind/.test(r.msg));
  assert.ok(moved, `a log line says the file was moved forward:\n${third.stderr().slice(-3000)}`);
  assert.equal(moved.to, inKafka);
  await someChanges(db, 3000);
  await catchUpAndStop(third, db);
  const verdict = await kafkaVerdict(broker.bootstrap, db);
  t.diagnostic(
    `file behind: moved from ${String(moved.from)} to ${String(moved.to)}; duplicates ${verdict.duplicated}`,
  );
  assertExact(verdict);

  // A file ahead of Kafka: Kafka lost what the file says was delivered. Refused, nothing acknowledged.
  const stored = await readCheckpoint(offsets);
  assert.ok(stored);
  const ahead = lsnValue(stored.lsn) + 0x100000n;
  const aheadLsn = `${(ahead >> 32n).toString(16).toUpperCase()}/${(ahead & 0xffffffffn).toString(16).toUpperCase()}`;
  await writeFile(offsets, serializeCheckpoint({ ...stored, lsn: aheadLsn }));
  const confirmed = await slotConfirmed(db);
  await someChanges(db, 4000);
  const refused = await runPgcdc(args);
  assert.equal(refused.code, 1, refused.stderr.slice(-3000));
  const line = errorLine(refused.stderr);
  assert.match(
    line,
    new RegExp(`offsets file .* is at ${aheadLsn}, ahead of the checkpoint in Kafka topic .*\\[OFFSETS_DIVERGED\\]$`),
  );
  assert.equal(await slotConfirmed(db), confirmed, "the slot's confirmed position did not move");
  t.diagnostic(`file ahead: ${line}`);
});
