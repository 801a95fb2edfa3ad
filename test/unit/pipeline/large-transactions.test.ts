/**
 * Streamed transactions without a server: hand-built pgoutput bytes go through `take` as the
 * capture loop sends them, and what the replay hands to the normal path is recorded.
 */
import '../../harness/tmp.ts'; // temporary files go under a per-process root, removed at exit
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { checkStreamingSupported, StreamedTransactions } from '../../../src/pipeline/large-transactions.ts';
import { CdcError } from '../../../src/core/errors.ts';
import type { PgoutputMessage } from '../../../src/protocol/messages.ts';
import { PgoutputDecoder } from '../../../src/protocol/pgoutput.ts';
import { encode } from '../protocol/builder.ts';
import { eventually } from '../../harness/pg.ts';

const REL = 16384;

interface Harness {
  streamed: StreamedTransactions;
  seen: string[];
  dir: string;
  /** Feeds one message that is not a Stream Commit; returns whether `take` took it. */
  feed(message: PgoutputMessage, walStart?: number): boolean;
  /** Feeds a Stream Commit; returns its replay. */
  commit(xid: number): Promise<void>;
}

async function harness(setup?: (dir: string) => Promise<void>): Promise<Harness> {
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-streamed-'));
  await setup?.(dir);
  const decoder = new PgoutputDecoder({ protoVersion: 2 });
  const seen: string[] = [];
  const streamed = new StreamedTransactions({
    dir,
    decoder,
    log: pino({ level: 'silent' }),
    target: {
      handle: (m, lsn) => {
        if (m.tag === 'begin') seen.push(`begin ${m.xid} ${m.finalLsn} ${m.commitTime}`);
        else if (m.tag === 'commit') seen.push(`commit ${m.commitLsn} ${m.endLsn}`);
        else if (m.tag === 'insert') seen.push(`insert ${m.xid} ${String(m.newTuple[0])} @${lsn}`);
        else seen.push(m.tag);
      },
      applyRelation: (m) => {
        seen.push(`relation ${m.relationId} ${m.columns.length}`);
        return Promise.resolve();
      },
      stopped: () => false,
    },
  });
  const feed = (message: PgoutputMessage, walStart = 0): boolean => {
    const bytes = encode(message);
    const taken = streamed.take(bytes, walStart);
    if (taken instanceof Promise) throw new Error('a replay started outside commit()');
    // The loop decodes whatever `take` leaves; keep the shared decoder's state as the loop would.
    if (!taken) decoder.decode(bytes);
    return taken;
  };
  const commit = (xid: number): Promise<void> => {
    const taken = streamed.take(encode(streamCommit(xid)), 0);
    if (!(taken instanceof Promise)) throw new Error('a Stream Commit must start a replay');
    return taken;
  };
  return { streamed, seen, dir, feed, commit };
}

const insert = (xid: number | undefined, id: string): PgoutputMessage => ({
  tag: 'insert',
  xid,
  relationId: REL,
  newTuple: [id],
});
const start = (xid: number, firstSegment: boolean): PgoutputMessage => ({ tag: 'streamStart', xid, firstSegment });
const stop: PgoutputMessage = { tag: 'streamStop' };
const streamCommit = (xid: number): PgoutputMessage => ({
  tag: 'streamCommit',
  xid,
  flags: 0,
  commitLsn: 5000,
  endLsn: 5100,
  commitTime: 777,
});
const abort = (xid: number, subXid: number): PgoutputMessage => ({
  tag: 'streamAbort',
  xid,
  subXid,
  abortLsn: undefined,
  abortTime: undefined,
});

test(
  'chunks spill until Stream Commit, then replay as one transaction with the commit LSN; other messages are ' +
    'left to the loop',
  async () => {
    const h = await harness();
    assert.equal(h.feed(start(500, true)), true);
    assert.equal(h.streamed.open, true);
    h.feed({
      tag: 'relation',
      xid: 500,
      relationId: REL,
      namespace: 'public',
      name: 't',
      replicaIdentity: 'd',
      columns: [{ isKey: true, name: 'id', typeOid: 23, typeMod: -1 }],
    });
    assert.equal(h.feed(insert(500, '1'), 100), true);
    assert.equal(h.feed(insert(501, '2'), 200), true); // a subtransaction's change
    h.feed(stop);
    // A non-streamed transaction in between is not taken.
    assert.equal(h.feed({ tag: 'begin', finalLsn: 300, commitTime: 1, xid: 600 }), false);
    assert.equal(h.feed(insert(undefined, 'x')), false);
    assert.equal(h.feed({ tag: 'commit', flags: 0, commitLsn: 300, endLsn: 310, commitTime: 1 }), false);
    h.feed(start(500, false));
    h.feed(insert(500, '3'), 400);
    h.feed(stop);
    assert.deepEqual(h.seen, [], 'nothing replayed before the commit');
    await h.commit(500);
    assert.deepEqual(h.seen, [
      'begin 500 5000 777',
      `relation ${REL} 1`,
      'insert 500 1 @100',
      'insert 501 2 @200',
      'insert 500 3 @400',
      'commit 5000 5100',
    ]);
    assert.equal(h.streamed.open, false);
    assert.deepEqual(await readdir(h.dir), [], 'spill file removed after the commit');
  },
);

test('Stream Abort drops the transaction, or only the aborted subtransaction', async () => {
  const h = await harness();
  h.feed(start(500, true));
  h.feed(insert(500, '1'));
  h.feed(stop);
  h.feed(abort(500, 500));
  assert.equal(h.streamed.open, false);
  assert.deepEqual(await readdir(h.dir), []);

  h.feed(start(700, true));
  h.feed(insert(700, 'a'));
  h.feed(insert(701, 'b'));
  h.feed(stop);
  h.feed(abort(700, 701));
  h.feed(abort(700, 999)); // nothing of it was received: no-op
  h.feed(start(700, false));
  h.feed(insert(702, 'c'));
  h.feed(stop);
  await h.commit(700);
  assert.deepEqual(h.seen, ['begin 700 5000 777', 'insert 700 a @0', 'insert 702 c @0', 'commit 5000 5100']);
  assert.equal(h.streamed.stats.aborted, 1);
  assert.equal(h.streamed.stats.subtransactionsAborted, 1);
});

test('a replay waits while Delivery is above its high-water mark', async () => {
  const h = await harness();
  h.feed(start(500, true));
  for (let i = 0; i < 3; i++) h.feed(insert(500, String(i)));
  h.feed(stop);
  h.streamed.pressure(true);
  const replay = h.commit(500);
  let done = false;
  void replay.then(() => (done = true));
  // The replay checks for room right after each message, synchronously: once the first change is
  // seen, it is waiting, and nothing more arrives until the pressure falls.
  await eventually(() => (h.seen.length >= 2 ? true : undefined), 'the first change');
  assert.deepEqual(h.seen, ['begin 500 5000 777', 'insert 500 0 @0']);
  assert.equal(done, false);
  h.streamed.pressure(false);
  await replay;
  assert.equal(h.seen.length, 5);
});

test('stale spill files are deleted at start (other files are left alone); protocol surprises are errors', async () => {
  const h = await harness(async (dir) => {
    await writeFile(path.join(dir, '123.pgoutput'), 'stale');
    await writeFile(path.join(dir, 'notes.txt'), 'mine');
  });
  assert.deepEqual(await readdir(h.dir), ['notes.txt']);
  assert.throws(
    () => h.feed(start(9, false)),
    (e: unknown) => e instanceof CdcError && e.code === 'PROTOCOL_INVALID',
  );
  h.feed(stop); // the loop fails the capture on such an error; here the test goes on
  h.feed(start(9, true));
  h.feed(stop);
  assert.throws(
    () => h.feed(start(9, true)),
    (e: unknown) => e instanceof CdcError && e.code === 'PROTOCOL_INVALID',
  );
  h.feed(stop);
  assert.throws(
    () => h.commit(10),
    (e: unknown) => e instanceof CdcError && e.code === 'PROTOCOL_INVALID' && /never streamed/.test(e.message),
  );
  h.streamed.close();
  assert.equal(existsSync(path.join(h.dir, '9.pgoutput')), false, 'close removes open spill files');
});

test('streaming is refused below PostgreSQL 14 with a usage error', () => {
  assert.doesNotThrow(() => checkStreamingSupported(true, 14, 'db:5432'));
  assert.doesNotThrow(() => checkStreamingSupported(false, 10, 'db:5432'));
  assert.throws(
    () => checkStreamingSupported(true, 13, 'db:5432'),
    (e: unknown) => e instanceof CdcError && e.code === 'CONFIG_INVALID' && /PostgreSQL 14/.test(e.message),
  );
});
