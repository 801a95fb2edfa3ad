/**
 * Golden bytes from real servers (test/fixtures/pgoutput/*.hex, written by capture.ts): every
 * message decodes, and the decoded fields match the changes the capture script made. LSNs, xids,
 * oids and timestamps differ per capture, so those are checked for consistency, not for value.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  UNCHANGED_TOAST,
  type PgoutputMessage,
  type PgoutputTag,
  type TupleData,
} from '../../../src/protocol/messages.ts';
import { PgoutputDecoder, type PgoutputProtoVersion } from '../../../src/protocol/pgoutput.ts';
import { parseLsn } from '../../../src/protocol/lsn.ts';
import { parseReplicationFrame, pgClockMicros } from '../../../src/protocol/replication.ts';
import type { Msg } from './builder.ts';
import { assertCdcError } from './assertions.ts';

function hexLines(file: string): Buffer[] {
  const text = readFileSync(fileURLToPath(new URL(`../../fixtures/pgoutput/${file}`, import.meta.url)), 'utf8');
  return text
    .split('\n')
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => Buffer.from(line, 'hex'));
}

function decodeFile(file: string, protoVersion: PgoutputProtoVersion): PgoutputMessage[] {
  const decoder = new PgoutputDecoder({ protoVersion });
  const messages = hexLines(file).map((bytes) => decoder.decode(bytes));
  assert.equal(decoder.inStreamBlock, false, 'every stream block is closed');
  return messages;
}

function all<T extends PgoutputTag>(messages: readonly PgoutputMessage[], tag: T): Msg<T>[] {
  return messages.filter((m): m is Msg<T> => m.tag === tag);
}

function one<T extends PgoutputTag>(
  messages: readonly PgoutputMessage[],
  tag: T,
  where: (m: Msg<T>) => boolean = () => true,
): Msg<T> {
  const found = all(messages, tag).filter(where);
  assert.equal(found.length, 1, `exactly one ${tag} expected, found ${found.length}`);
  return found[0] as Msg<T>;
}

const tags = (messages: readonly PgoutputMessage[]): string => messages.map((m) => m.tag).join(' ');

/** Begin..Commit pairs agree on LSN and time; the end LSN follows the commit LSN. */
function assertTransactionsConsistent(messages: readonly PgoutputMessage[]): void {
  let open: Msg<'begin'> | undefined;
  for (const m of messages) {
    if (m.tag === 'begin') {
      assert.equal(open, undefined, 'nested Begin');
      open = m;
    } else if (m.tag === 'commit') {
      assert.ok(open, 'Commit without Begin');
      assert.equal(m.commitLsn, open.finalLsn);
      assert.equal(m.commitTime, open.commitTime);
      assert.ok(m.endLsn > m.commitLsn);
      assert.equal(m.flags, 0);
      open = undefined;
    }
  }
  assert.equal(open, undefined, 'unterminated transaction');
}

const ITEM_COLUMNS = ['id', 'name', 'mood', 'price', 'tags', 'data', 'blob', 'note', 'qty', 'created'];
const NINE_NULLS = [null, null, null, null, null, null, null, null, null];
const ORIGIN_TIME = pgClockMicros(Date.UTC(2026, 0, 1));

/** What basicChanges() in capture.ts did, as text values (proto 1 without binary). */
function assertBasicTextChanges(
  messages: readonly PgoutputMessage[],
  options: { messages: boolean; truncate: boolean },
): void {
  assertTransactionsConsistent(messages);
  assert.match(tags(messages), /^begin type type relation insert commit begin insert commit /);

  const items = one(messages, 'relation', (r) => r.name === 'items');
  assert.equal(items.namespace, 'public');
  assert.equal(items.replicaIdentity, 'd');
  assert.deepEqual(
    items.columns.map((c) => c.name),
    ITEM_COLUMNS,
  );
  assert.deepEqual(
    items.columns.map((c) => c.isKey),
    [true, false, false, false, false, false, false, false, false, false],
  );
  const typeOf = (name: string): number => items.columns.find((c) => c.name === name)?.typeOid ?? -1;
  assert.deepEqual(
    ['id', 'name', 'price', 'tags', 'data', 'blob', 'created'].map(typeOf),
    [23, 25, 1700, 1009, 3802, 17, 1184],
  );
  assert.equal(items.columns[3]?.typeMod, ((10 << 16) | 2) + 4, 'numeric(10,2)');
  assert.equal(items.columns[0]?.typeMod, -1);

  // An enum gets a Type message with its own name; a domain gets its own oid but its base type's name.
  const mood = one(messages, 'type', (t) => t.name === 'mood');
  assert.deepEqual([mood.namespace, mood.typeOid], ['public', typeOf('mood')]);
  const domain = one(messages, 'type', (t) => t.typeOid === typeOf('qty'));
  assert.deepEqual([domain.namespace, domain.name], ['', 'int4']);

  const inserts = all(messages, 'insert');
  assert.deepEqual(inserts[0]?.newTuple, [
    '1',
    'widget',
    'happy',
    '19.90',
    '{a,b}',
    '{"gift": true}',
    '\\xdeadbeef',
    null,
    '7',
    '2026-11-21 10:00:00.123456+00',
  ]);
  assert.deepEqual(inserts[1]?.newTuple, ['2', 'Zoë ☃ 🐘', 'sad', null, null, null, null, null, null, null]);
  const toasted = inserts[2]?.newTuple[7];
  assert.equal(typeof toasted === 'string' ? toasted.length : 0, 9600);

  const updates = all(messages, 'update');
  assert.equal(updates[0]?.newTuple[3], '21.50');
  assert.deepEqual([updates[0]?.keyTuple, updates[0]?.oldTuple], [undefined, undefined]);
  assert.deepEqual(updates[1]?.keyTuple, ['2', ...NINE_NULLS], 'key change sends the old key');
  assert.deepEqual(updates[1]?.newTuple.slice(0, 3), ['20', 'Zoë ☃ 🐘', 'sad']);
  assert.deepEqual(updates[2]?.newTuple, ['3', 'toasted', null, '1.00', null, null, null, UNCHANGED_TOAST, null, null]);
  assert.deepEqual(one(messages, 'delete', (d) => d.relationId === items.relationId).keyTuple, ['20', ...NINE_NULLS]);

  // REPLICA IDENTITY FULL marks every column as key and sends whole old rows.
  const audit = all(messages, 'relation').filter((r) => r.name === 'audit');
  if (options.truncate) assert.ok(audit.length >= 2, 'Relation is sent again after the truncate invalidated it');
  assert.deepEqual(audit[0]?.replicaIdentity, 'f');
  assert.deepEqual(
    audit[0]?.columns.map((c) => [c.name, c.isKey, c.typeOid]),
    [
      ['id', true, 20],
      ['msg', true, 25],
    ],
  );
  const auditUpdate = one(messages, 'update', (u) => u.relationId === audit[0]?.relationId);
  assert.deepEqual(
    [auditUpdate.oldTuple, auditUpdate.newTuple, auditUpdate.keyTuple],
    [['1', 'first'], ['1', 'second'], undefined],
  );
  assert.deepEqual(one(messages, 'delete', (d) => d.relationId === audit[0]?.relationId).oldTuple, ['1', 'second']);

  if (options.messages) {
    const hello = one(messages, 'message', (m) => m.transactional);
    assert.deepEqual([hello.prefix, hello.content.toString(), hello.xid], ['pgcdc', 'hello', undefined]);
    const i = messages.indexOf(hello);
    assert.equal(messages[i - 1]?.tag, 'begin', 'a transactional message sits inside its transaction');
    const loose = one(messages, 'message', (m) => !m.transactional);
    assert.deepEqual([loose.prefix, loose.content], ['pgcdc-nt', Buffer.from([0, 255])]);
    const j = messages.indexOf(loose);
    assert.deepEqual(
      [messages[j - 1]?.tag, messages[j + 1]?.tag],
      ['commit', 'begin'],
      'a non-transactional message stands alone',
    );
  } else {
    assert.equal(all(messages, 'message').length, 0);
  }

  if (options.truncate) {
    const t = one(messages, 'truncate');
    const big = one(messages, 'relation', (r) => r.name === 'big');
    assert.deepEqual(
      [t.cascade, t.restartIdentity, t.relationIds],
      [true, true, [audit[0]?.relationId, big.relationId]],
    );
  } else {
    assert.equal(all(messages, 'truncate').length, 0);
  }

  // The transaction replayed from origin 'upstream': Origin right after Begin, origin's commit time.
  const origin = one(messages, 'origin');
  assert.deepEqual([origin.name, origin.originLsn], ['upstream', parseLsn('1/ABCDEF0')]);
  const k = messages.indexOf(origin);
  const originBegin = messages[k - 1];
  assert.equal(originBegin?.tag === 'begin' ? originBegin.commitTime : undefined, ORIGIN_TIME);
  assert.deepEqual(inserts.at(-1)?.newTuple.slice(1), ['from upstream']);
}

void describe('golden: proto 1 (PostgreSQL 18)', () => {
  void test('v1-basic.hex', () => {
    const messages = decodeFile('v1-basic.hex', 1);
    assert.equal(messages.length, 49);
    assertBasicTextChanges(messages, { messages: true, truncate: true });
  });

  void test('v1-binary.hex: binary values where the type has a send function', () => {
    const messages = decodeFile('v1-binary.hex', 1);
    assertTransactionsConsistent(messages);
    const [first, second] = all(messages, 'insert');
    const int4 = (n: number): Buffer => Buffer.from([0, 0, 0, n]);
    assert.deepEqual(first?.newTuple.slice(0, 3), [int4(1), Buffer.from('widget'), Buffer.from('happy')]);
    assert.deepEqual(first?.newTuple.slice(6, 9), [Buffer.from([0xde, 0xad, 0xbe, 0xef]), null, int4(7)]);
    assert.deepEqual(second?.newTuple[1], Buffer.from('Zoë ☃ 🐘'));
    const toastUpdate = all(messages, 'update')[2];
    assert.equal(toastUpdate?.newTuple[7], UNCHANGED_TOAST, 'unchanged TOAST is still u in binary mode');
    const every: TupleData = all(messages, 'insert').flatMap((i) => i.newTuple);
    assert.ok(
      every.every((v) => v === null || Buffer.isBuffer(v)),
      'no text values in binary mode',
    );
  });
});

void describe('golden: proto 1 (PostgreSQL 10)', () => {
  void test('v1-pg10.hex decodes to the same changes', () => {
    const messages = decodeFile('v1-pg10.hex', 1);
    assertBasicTextChanges(messages, { messages: false, truncate: false });
    // Before PostgreSQL 15, transactions without published changes still send Begin and Commit.
    assert.match(tags(messages), /begin commit/);
    assert.doesNotMatch(tags(decodeFile('v1-basic.hex', 1)), /begin commit/);
    assert.deepEqual(
      all(messages, 'insert').map((i) => i.newTuple),
      all(decodeFile('v1-basic.hex', 1), 'insert')
        .filter((i) => i.newTuple[1] !== 'with message')
        .map((i) => i.newTuple)
        .map((t) => (t[1] === 'from upstream' ? ['2', 'from upstream'] : t)),
    );
  });
});

void describe('golden: proto 2, streaming', () => {
  const messages = decodeFile('v2-stream.hex', 2);
  const commits = all(messages, 'streamCommit');
  const starts = all(messages, 'streamStart');

  void test('two streamed transactions committed, in blocks of the same xid', () => {
    assert.equal(commits.length, 2);
    assert.equal(all(messages, 'begin').length, 0, 'streamed transactions have no Begin');
    for (const commit of commits) {
      const blocks = starts.filter((s) => s.xid === commit.xid);
      assert.ok(blocks.length >= 2);
      assert.deepEqual(
        blocks.map((s) => s.firstSegment),
        [true, ...blocks.slice(1).map(() => false)],
      );
      assert.ok(commit.endLsn > commit.commitLsn);
    }
  });

  void test('the first transaction: rows, a message, types, update, delete and truncate, all with the xid', () => {
    const xid = commits[0]?.xid;
    const end = messages.indexOf(commits[0] as PgoutputMessage);
    const txn = messages.slice(0, end);
    for (const m of txn) if ('xid' in m && m.tag !== 'streamStart') assert.equal(m.xid, xid, m.tag);
    const big = one(txn, 'relation', (r) => r.name === 'big');
    assert.equal(all(txn, 'insert').filter((i) => i.relationId === big.relationId).length, 600);
    assert.equal(one(txn, 'message').content.toString(), 'in stream');
    assert.deepEqual(
      all(txn, 'type')
        .map((t) => t.name)
        .sort(),
      ['int4', 'mood'],
    );
    assert.deepEqual(one(txn, 'insert', (i) => i.newTuple[1] === 'streamed').newTuple.slice(0, 3), [
      '100',
      'streamed',
      'ok',
    ]);
    assert.deepEqual(one(txn, 'update').newTuple, ['1', 'changed']);
    assert.deepEqual(one(txn, 'delete').keyTuple, ['2', null]);
    assert.deepEqual(one(txn, 'truncate').relationIds, [one(txn, 'relation', (r) => r.name === 'audit').relationId]);
  });

  void test('a transaction already aborted when decoded is not streamed at all', () => {
    const values = all(messages, 'insert').map((i) => i.newTuple[1]);
    assert.ok(!values.some((v) => typeof v === 'string' && v.startsWith('aborted ')));
  });

  void test(
    'a rolled-back savepoint: Stream Abort for the subtransaction, ' + 'data messages carry subtransaction xids',
    () => {
      const abort = one(messages, 'streamAbort');
      assert.equal(abort.xid, commits[1]?.xid);
      assert.notEqual(abort.subXid, abort.xid);
      assert.deepEqual([abort.abortLsn, abort.abortTime], [undefined, undefined]);
      const start = messages.indexOf(commits[0] as PgoutputMessage) + 1;
      const txn = all(messages.slice(start), 'insert');
      const text = (t: TupleData): string => String(t[1]);
      assert.equal(txn.filter((i) => i.xid === abort.xid && text(i.newTuple).startsWith('kept ')).length, 600);
      const undone = txn.filter((i) => i.xid === abort.subXid);
      assert.ok(undone.length > 0 && undone.every((i) => text(i.newTuple).startsWith('undone ')));
      const after = one(txn, 'insert', (i) => i.newTuple[0] === '4001');
      assert.ok(
        after.xid !== abort.xid && after.xid !== abort.subXid,
        'the row after ROLLBACK TO is in a new subtransaction',
      );
      assert.ok(messages.indexOf(after) > messages.indexOf(abort));
    },
  );
});

void describe('golden: proto 3, two-phase', () => {
  const messages = decodeFile('v3-twophase.hex', 3);

  void test('PREPARE then COMMIT PREPARED', () => {
    const bp = one(messages, 'beginPrepare', (m) => m.gid === 'gid-commit');
    const i = messages.indexOf(bp);
    assert.equal(tags(messages.slice(i, i + 5)), 'beginPrepare relation insert prepare commitPrepared');
    const p = one(messages, 'prepare', (m) => m.gid === 'gid-commit');
    assert.deepEqual(
      [p.xid, p.prepareLsn, p.endLsn, p.prepareTime, p.flags],
      [bp.xid, bp.prepareLsn, bp.endLsn, bp.prepareTime, 0],
    );
    assert.deepEqual(one(messages, 'insert', (m) => m.newTuple[1] === 'prepared then committed').newTuple, [
      '1',
      'prepared then committed',
    ]);
    const cp = one(messages, 'commitPrepared', (m) => m.gid === 'gid-commit');
    assert.equal(cp.xid, bp.xid);
    assert.ok(cp.commitLsn >= p.endLsn && cp.endLsn > cp.commitLsn && cp.commitTime >= p.prepareTime);
  });

  void test('PREPARE then ROLLBACK PREPARED', () => {
    const bp = one(messages, 'beginPrepare', (m) => m.gid === 'gid-rollback');
    const i = messages.indexOf(bp);
    assert.equal(tags(messages.slice(i, i + 4)), 'beginPrepare insert prepare rollbackPrepared');
    const p = one(messages, 'prepare', (m) => m.gid === 'gid-rollback');
    const rp = one(messages, 'rollbackPrepared');
    assert.deepEqual(
      [rp.xid, rp.prepareEndLsn, rp.prepareTime, rp.gid],
      [bp.xid, p.endLsn, p.prepareTime, 'gid-rollback'],
    );
    assert.ok(rp.rollbackEndLsn > rp.prepareEndLsn && rp.rollbackTime >= rp.prepareTime);
  });

  void test('a streamed prepared transaction ends with Stream Prepare', () => {
    const sp = one(messages, 'streamPrepare');
    assert.equal(sp.gid, 'gid-stream');
    const blocks = all(messages, 'streamStart');
    assert.ok(blocks.length >= 2 && blocks.every((s) => s.xid === sp.xid));
    const rows = all(messages, 'insert').filter((m) => m.xid === sp.xid);
    assert.equal(rows.length, 600);
    assert.deepEqual(rows[0]?.newTuple, ['1', 'prepared 1']);
    assert.equal(messages.at(-2), sp);
    const cp = messages.at(-1);
    assert.deepEqual(cp?.tag === 'commitPrepared' ? [cp.xid, cp.gid] : [], [sp.xid, 'gid-stream']);
  });
});

void describe('golden: proto 4, streaming parallel (walsender)', () => {
  const messages = decodeFile('v4-parallel.hex', 4);

  void test('a transaction streamed while open, then rolled back: Stream Abort with abort LSN and time', () => {
    const abort = one(messages, 'streamAbort');
    assert.equal(abort.subXid, abort.xid);
    assert.equal(messages[0]?.tag === 'streamStart' ? messages[0].xid : -1, abort.xid);
    assert.ok(abort.abortLsn !== undefined && abort.abortLsn > 0);
    assert.ok(abort.abortTime !== undefined && abort.abortTime > pgClockMicros(Date.UTC(2024, 0, 1)));
    const rows = all(messages.slice(0, messages.indexOf(abort)), 'insert');
    assert.ok(
      rows.length > 0 && rows.every((r) => String(r.newTuple[1]).startsWith('aborted ') && r.xid === abort.xid),
    );
  });

  void test('then one committed', () => {
    const commit = one(messages, 'streamCommit');
    const rows = all(messages, 'insert').filter((m) => m.xid === commit.xid);
    assert.equal(rows.length, 600);
    assert.deepEqual(rows.at(-1)?.newTuple, ['600', 'kept 600']);
    assert.ok(commit.commitLsn > (one(messages, 'streamAbort').abortLsn ?? Infinity));
  });
});

void describe('golden: real messages split at every offset', () => {
  const files: [string, PgoutputProtoVersion][] = [
    ['v1-basic.hex', 1],
    ['v1-binary.hex', 1],
    ['v1-pg10.hex', 1],
    ['v2-stream.hex', 2],
    ['v3-twophase.hex', 3],
    ['v4-parallel.hex', 4],
  ];
  for (const [file, protoVersion] of files) {
    test(file, () => {
      const decoder = new PgoutputDecoder({ protoVersion });
      const seen = new Map<string, number>();
      for (const bytes of hexLines(file)) {
        const key = String.fromCharCode(bytes[0] ?? 0);
        const count = seen.get(key) ?? 0;
        // The first three of each type: enough variety, without thousands of identical inserts.
        if (count < 3) {
          seen.set(key, count + 1);
          for (let length = 0; length < bytes.length; length++) {
            // A v4 Stream Abort without its optional fields is a complete 9-byte message.
            if (key === 'A' && length === 9 && protoVersion === 4) continue;
            assertCdcError(() => decoder.decode(bytes.subarray(0, length)), 'PROTOCOL_TRUNCATED');
          }
        }
        decoder.decode(bytes);
      }
    });
  }
});

describe('golden: replication frames over a walsender', () => {
  void test('keepalives and XLogData carrying one transaction', () => {
    const frames = hexLines('replication.hex').map(parseReplicationFrame);
    assert.equal(frames[0]?.kind, 'keepalive');
    assert.equal(frames.at(-1)?.kind, 'keepalive');
    const decoder = new PgoutputDecoder({ protoVersion: 1 });
    const data = frames.flatMap((f) => (f.kind === 'xlogData' ? [{ frame: f, message: decoder.decode(f.data) }] : []));
    assert.equal(tags(data.map((d) => d.message)), 'begin relation insert commit');
    for (const { frame } of data)
      assert.equal(frame.walEnd, frame.walStart, 'a logical walsender sends walEnd = walStart');
    assert.equal(data[1]?.frame.walStart, 0, 'Relation messages come with WAL position 0');
    const commit = data[3]?.message;
    assert.equal(
      commit?.tag === 'commit' ? commit.endLsn : -1,
      data[3]?.frame.walStart,
      'the Commit frame is at the end LSN',
    );
    assert.deepEqual(data[2]?.message.tag === 'insert' ? data[2].message.newTuple.slice(1) : [], [
      'over the walsender',
    ]);
    const last = frames.at(-1);
    assert.ok(last?.kind === 'keepalive' && commit?.tag === 'commit' && last.walEnd >= commit.endLsn);
  });
});
