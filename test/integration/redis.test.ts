/**
 * The Redis sink end to end: the real CLI, a real PostgreSQL and a real redis-server (AOF,
 * appendfsync always). An initial snapshot and an insert/update/delete workload (with a primary-key
 * change) replayed from XRANGE onto an empty map equal the source; an ACL user whose password comes
 * from a file, with MAXLEN trimming; TLS (rediss://) with the server's CA, and refused with another;
 * `sink.wait` with a replica, and a WAIT that falls short while the replica is down.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { lsnValue, runPgcdc, startPgcdc } from '../harness/cli.ts';
import { logRecords } from '../harness/process.ts';
import { eventually, freshDatabase, requireOrSkip, type TestDatabase } from '../harness/pg.ts';
import { readStream, redisAvailable, redisForFile, RedisServer } from '../harness/redis.ts';
import {
  awaitStreaming,
  redisEvents,
  redisRunArgs,
  redisVerdict,
  slotCaughtUp,
  slotConfirmed,
  writeRunConfig,
} from '../harness/redis-workload.ts';

const skip = requireOrSkip(redisAvailable(), 'redis-server');

const WRITER_PASSWORD = 'writer-secret-7d1c';
const redis = redisForFile({
  tls: true,
  // Only what the sink needs: XADD, TYPE, PING, SELECT and naming its connection, on every key.
  users: [`writer on >${WRITER_PASSWORD} ~* +xadd +type +ping +select +client|setname`],
});

async function setUp(rows: number): Promise<{ db: TestDatabase; dir: string }> {
  const db = await freshDatabase();
  await db.sql.query(`create table acct (id int primary key, note text, n int)`);
  await db.sql.query(`insert into acct select g, 'seed ' || g, g from generate_series(1, ${rows}) g`);
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-redis-'));
  return { db, dir };
}

function sinkSection(url: string, settings: readonly string[]): string[] {
  return ['sink:', '  kind: redis', `  url: ${url}`, ...settings.map((line) => `  ${line}`)];
}

test(
  'an initial snapshot and an insert/update/delete workload: the replay from XRANGE equals the source',
  { skip },
  async (t) => {
    const server = await redis();
    const { db, dir } = await setUp(500);
    const config = await writeRunConfig(dir);
    const proc = startPgcdc(redisRunArgs({ db, url: server.url(), offsets: path.join(dir, 'offsets.json'), config }));
    await awaitStreaming(proc, 'pgcdc streaming');
    for (let round = 0; round < 20; round++) {
      const base = 1000 + round * 50;
      await db.sql.query(`insert into acct select g, 'new ' || g, g from generate_series(${base}, ${base + 49}) g`);
      await db.sql.query(`update acct set n = n + 1, note = note || '!' where id % 7 = ${round % 7}`);
      await db.sql.query(`delete from acct where id % 11 = ${round % 11} and id < ${base}`);
    }
    // A primary-key change: a delete of the old key and a create of the new one.
    await db.sql.query(`update acct set id = 100000 where id = 2`);
    await db.sql.query(`insert into acct values (7777, 'quote " backslash \\ newline\nend', 1)`);
    await eventually(() => slotCaughtUp(db), 'pgcdc caught up', 120_000);
    proc.kill('SIGTERM');
    assert.equal(await proc.exited, 0, proc.stderr().slice(-3000));

    const verdict = await redisVerdict(server, db);
    const { events } = await redisEvents(server, `${db.name}.*`);
    const ops = new Map<string, number>();
    for (const event of events) ops.set(event.value.op, (ops.get(event.value.op) ?? 0) + 1);
    t.diagnostic(
      `redis replay: ${verdict.events} entries (${[...ops].map(([op, n]) => `${op} ${n}`).join(', ')}); lost ` +
        `${verdict.lost}, extra ${verdict.extra}, mismatched ${verdict.mismatched}, duplicates ${verdict.duplicated}`,
    );
    assert.deepEqual(
      { lost: verdict.lost, extra: verdict.extra, mismatched: verdict.mismatched, fields: verdict.mismatchedFields },
      { lost: 0, extra: 0, mismatched: 0, fields: 0 },
    );
    assert.deepEqual(
      ['r', 'c', 'u', 'd'].map((op) => (ops.get(op) ?? 0) > 0),
      [true, true, true, true],
      'every kind of change crossed',
    );
  },
);

test(
  'an ACL user with the password from a file, and MAXLEN ~ trimming: delivers, never prints the password',
  { skip },
  async (t) => {
    const server = await redis();
    const { db, dir } = await setUp(10);
    const passwordFile = path.join(dir, 'redis-password');
    await writeFile(passwordFile, `${WRITER_PASSWORD}\n`, { mode: 0o600 });
    const config = await writeRunConfig(
      dir,
      sinkSection(server.url(3), ['username: writer', `passwordFile: ${passwordFile}`, 'maxLen: 200']),
    );
    const proc = startPgcdc(redisRunArgs({ db, url: server.url(3), offsets: path.join(dir, 'offsets.json'), config }));
    await awaitStreaming(proc, 'pgcdc streaming');
    for (let round = 0; round < 10; round++)
      await db.sql.query(
        `insert into acct select g, 'row ' || g, g from generate_series(${100 + round * 200}, ${299 + round * 200}) g`,
      );
    await eventually(() => slotCaughtUp(db), 'pgcdc caught up', 120_000);
    proc.kill('SIGTERM');
    assert.equal(await proc.exited, 0, proc.stderr().slice(-3000));
    assert.ok(!proc.stderr().includes(WRITER_PASSWORD), 'the password is not in the output');
    assert.ok(!proc.stdout().includes(WRITER_PASSWORD), 'the password is not in the output');

    const key = `${db.name}.public.acct`;
    const length = (await server.command(['XLEN', key], 3)) as number;
    const admin = await server.admin(3);
    const entries = await readStream(admin, key).finally(() => admin.close());
    const last = JSON.parse(entries.at(-1)?.fields.event ?? '{}') as { value?: { after?: { id?: number } } };
    t.diagnostic(`MAXLEN ~ 200: ${length} entries kept of 2010 written; the last is id ${last.value?.after?.id}`);
    // Approximate trimming removes whole nodes (stream-node-max-entries, 100 by default): at least 200 stay.
    assert.ok(length >= 200 && length < 2010, `XLEN ${length}`);
    assert.equal(last.value?.after?.id, 2099, 'the newest entry is the last insert');
  },
);

test(
  'TLS (rediss://) with the CA that signed the server: delivers; another CA: one line, exit 2',
  { skip },
  async (t) => {
    const server = await redis();
    const pki = server.pki;
    assert.ok(pki !== undefined && server.tlsPort !== undefined);
    const { db, dir } = await setUp(50);
    const url = `rediss://localhost:${server.tlsPort}/0`;
    const wrongConfig = await writeRunConfig(dir, sinkSection(url, ['tls:', `  ca: ${pki.otherCa}`]));
    const refused = await runPgcdc(
      redisRunArgs({ db, url, offsets: path.join(dir, 'offsets.json'), config: wrongConfig }),
    );
    assert.equal(refused.code, 2, refused.stderr.slice(-3000));
    const line = refused.stderr.trim().split('\n').at(-1) ?? '';
    assert.match(line, /^pgcdc: error: .*TLS verification of localhost:\d+ failed: .*\[CONNECT_FAILED\]$/);
    assert.equal(await slotConfirmed(db), undefined, 'no slot was created');
    t.diagnostic(line);

    const config = await writeRunConfig(dir, sinkSection(url, ['tls:', `  ca: ${pki.ca}`]));
    const proc = startPgcdc(redisRunArgs({ db, url, offsets: path.join(dir, 'offsets.json'), config }));
    await awaitStreaming(proc, 'pgcdc streaming over TLS');
    await db.sql.query(`update acct set n = -n`);
    await eventually(() => slotCaughtUp(db), 'pgcdc caught up', 120_000);
    proc.kill('SIGTERM');
    assert.equal(await proc.exited, 0, proc.stderr().slice(-3000));
    const verdict = await redisVerdict(server, db);
    assert.deepEqual(
      { lost: verdict.lost, extra: verdict.extra, mismatched: verdict.mismatched },
      { lost: 0, extra: 0, mismatched: 0 },
    );
  },
);

test(
  'sink.wait with a replica: delivers; the replica down: WAIT falls short, retried, nothing confirmed; back: all',
  { skip },
  async (t) => {
    const primary = await RedisServer.start();
    const replica = await RedisServer.start({ replicaOf: primary });
    const replicas = async (): Promise<true | undefined> =>
      /connected_slaves:1/.test(String(await primary.command(['INFO', 'replication']))) ? true : undefined;
    await eventually(replicas, 'the replica to connect');
    const { db, dir } = await setUp(100);
    const config = await writeRunConfig(
      dir,
      sinkSection(primary.url(), ['wait:', '  replicas: 1', '  timeoutMs: 1000']),
    );
    const proc = startPgcdc(
      redisRunArgs({
        db,
        url: primary.url(),
        offsets: path.join(dir, 'offsets.json'),
        config,
        extra: ['--retry-max-delay', '2000'],
      }),
    );
    await awaitStreaming(proc, 'pgcdc streaming');
    await db.sql.query(`update acct set n = n + 1`);
    await eventually(() => slotCaughtUp(db), 'pgcdc caught up', 120_000);

    await replica.kill();
    const logBefore = proc.stderr().length;
    const { rows } = await db.sql.query<{ lsn: string }>(`select pg_current_wal_insert_lsn()::text as lsn`);
    const before = rows[0]?.lsn ?? '0/0';
    await db.sql.query(`insert into acct select g, 'while the replica is down', g from generate_series(1000, 1099) g`);
    const retry = await eventually(
      () =>
        logRecords(proc.stderr().slice(logBefore)).find(
          (r) => typeof r.retry === 'number' && /WAIT: 0 of the 1 replicas/.test(r.msg),
        ),
      'a WAIT that falls short to be retried',
    );
    const confirmed = (await slotConfirmed(db)) ?? '';
    assert.ok(lsnValue(confirmed) <= lsnValue(before), `confirmed ${confirmed} did not pass ${before}`);
    assert.equal(proc.child.exitCode, null, 'pgcdc did not exit');

    await replica.start();
    await eventually(replicas, 'the replica to connect again');
    await eventually(() => slotCaughtUp(db), 'pgcdc caught up after the replica came back', 120_000);
    proc.kill('SIGTERM');
    assert.equal(await proc.exited, 0, proc.stderr().slice(-3000));
    const verdict = await redisVerdict(primary, db);
    t.diagnostic(retry.msg);
    t.diagnostic(
      `sink.wait: ${verdict.events} entries; lost ${verdict.lost}, extra ${verdict.extra}, mismatched ` +
        `${verdict.mismatched}, duplicates ${verdict.duplicated} (added while the replica was down, added again)`,
    );
    assert.deepEqual(
      { lost: verdict.lost, extra: verdict.extra, mismatched: verdict.mismatched },
      { lost: 0, extra: 0, mismatched: 0 },
    );
  },
);
