/**
 * The 2,000,000-row transaction again, with protocol v2 streaming on a server whose
 * logical_decoding_work_mem is 64kB: it arrives while it runs, spills to disk, and is delivered
 * from the spill file at its commit with memory still bounded, every row exactly once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createReadStream } from 'node:fs';
import { mkdtemp, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { eventually, TEST_MAJOR } from '../harness/pg.ts';
import { startPgcdc, type DeliveredEvent } from '../harness/cli.ts';
import { logRecords, peakRssMb } from '../harness/process.ts';
import { connect, databaseOn, streamingCluster } from '../harness/streaming.ts';

const ROWS = 2_000_000;

/** Checks the JSONL line by line (2M parsed events would not fit this process comfortably). */
async function verify(file: string): Promise<{ events: number; bad: string[] }> {
  const seen = new Uint8Array(ROWS + 1);
  const bad: string[] = [];
  const commitLsns = new Set<string>();
  let events = 0;
  for await (const line of createInterface({ input: createReadStream(file), crlfDelay: Infinity })) {
    if (line.length === 0) continue;
    const e = JSON.parse(line) as DeliveredEvent;
    events++;
    const id = Number(e.value.after?.id);
    commitLsns.add(e.value.source.commit_lsn);
    if (e.value.op !== 'c' || !(id >= 1 && id <= ROWS)) bad.push(`unexpected event ${e.id}`);
    else if (seen[id] === 1) bad.push(`row ${id} twice`);
    else if (e.value.after?.v !== id % 1000 || e.value.after.t !== `row ${id}`) bad.push(`row ${id} differs`);
    else if (e.value.transaction.total_order !== id)
      bad.push(`row ${id} has ordinal ${e.value.transaction.total_order}`);
    seen[id] = 1;
    if (bad.length > 10) break;
  }
  if (commitLsns.size !== 1) bad.push(`${commitLsns.size} commit LSNs for one transaction`);
  return { events, bad };
}

test(
  `a ${ROWS.toLocaleString('en-US')}-row transaction with --streaming spills to disk, stays within bounded ` +
    `memory and lands exactly once`,
  { skip: TEST_MAJOR < 14 ? 'streaming needs PostgreSQL 14+' : false },
  async () => {
    const db = await databaseOn(await streamingCluster(TEST_MAJOR));
    const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-big-streaming-'));
    await db.sql.query(`create table big (id int primary key, v int, t text)`);
    const proc = startPgcdc(
      [
        'run',
        '--source',
        db.url,
        '--slot',
        `s_${db.name}`,
        '--publication',
        'big_pub',
        '--tables',
        'public.big',
        '--streaming',
        '--out',
        path.join(dir, 'events'),
        '--offsets',
        path.join(dir, 'offsets.json'),
        '--log-format',
        'json',
      ],
      // As in big-transaction.test.ts: pgcdc's buffers are bounded and off the JS heap; the cap stops
      // V8 from letting short-lived garbage grow the old space (docs/operations.md).
      { NODE_OPTIONS: '--max-old-space-size=128' },
    );
    await eventually(
      async () =>
        (await db.sql.query(`select 1 from pg_replication_slots where slot_name = $1 and active`, [`s_${db.name}`]))
          .rowCount === 1
          ? true
          : undefined,
      'slot',
    );
    const writer = await connect(db.url);
    await writer.query('begin');
    const { rows: xids } = await writer.query<{ xid: string }>(
      `select (pg_current_xact_id()::text::bigint % 4294967296)::text as xid`,
    );
    const xid = Number(xids[0]?.xid);
    await writer.query(`insert into big select g, g % 1000, 'row ' || g from generate_series(1, ${ROWS}) g`);
    await writer.query('commit');
    const { rows } = await db.sql.query<{ lsn: string }>(`select pg_current_wal_lsn()::text as lsn`);
    await eventually(
      async () => {
        const { rows: done } = await db.sql.query<{ done: boolean }>(
          `select confirmed_flush_lsn >= $1::pg_lsn as done from pg_replication_slots where slot_name = $2`,
          [rows[0]?.lsn ?? '', `s_${db.name}`],
        );
        return done[0]?.done ? true : undefined;
      },
      'the whole transaction to be confirmed',
      600_000,
    );
    const peak = await peakRssMb(proc.child.pid ?? 0);
    proc.kill('SIGTERM');
    assert.equal(await proc.exited, 0, proc.stderr());

    const logs = logRecords(proc.stderr());
    assert.ok(
      logs.some(
        (r) => r.msg === 'a large transaction streams in before its commit: spilling it to disk' && r.xid === xid,
      ),
      'the transaction was streamed',
    );
    const replayed = logs.find(
      (r) => r.msg === 'streamed transaction committed: delivering it from its spill file' && r.xid === xid,
    );
    assert.equal(replayed?.messages, ROWS + 1, 'every change (and the Relation message) went through the spill file');
    const { events, bad } = await verify(path.join(dir, 'events', `${db.name}.public.big.jsonl`));
    assert.deepEqual(bad, []);
    assert.equal(events, ROWS, 'every row exactly once');
    assert.deepEqual(
      (await readdir(path.join(dir, 'offsets.json.spill'))).filter((f) => f.endsWith('.pgoutput')),
      [],
      'spill file removed',
    );
    const spillMb = Number(replayed?.bytes) / 1e6;
    process.stdout.write(
      `# peak RSS ${peak.toFixed(0)} MB for ${ROWS} streamed rows (spill file ${spillMb.toFixed(0)} MB)\n`,
    );
    assert.ok(peak < 300, `peak RSS ${peak.toFixed(0)} MB`);
  },
);
