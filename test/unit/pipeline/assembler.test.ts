/**
 * The change assembler fed with golden pgoutput bytes from real servers (test/fixtures/pgoutput/,
 * see test/unit/protocol/golden.test.ts), without a server: each decoded message goes to the
 * assembler as the stream loop hands it over, and each committed transaction is written to the
 * in-memory sink (test/harness/memory-sink.ts), like the delivery does.
 *
 * v1-basic.hex holds 12 transactions (capture.ts, basicChanges): inserts, updates (plain, key
 * change, unchanged TOAST), deletes, REPLICA IDENTITY FULL rows, a transactional and a
 * non-transactional logical message (both with pgcdc's reserved prefix), a truncate of two tables
 * and a transaction replayed from another origin.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { createLogger } from '../../../src/core/log.ts';
import type { ChangeSink } from '../../../src/envelope/change-sink.ts';
import { ChangeAssembler, type AssemblerOptions } from '../../../src/pipeline/assembler.ts';
import { ToastPolicy } from '../../../src/pipeline/toast.ts';
import { formatLsn } from '../../../src/protocol/lsn.ts';
import type { Lsn, PgoutputMessage } from '../../../src/protocol/messages.ts';
import { PgoutputDecoder } from '../../../src/protocol/pgoutput.ts';
import { TopicRegistry } from '../../../src/sinks/batch.ts';
import { EventBatchBuilder } from '../../../src/sinks/batch-builder.ts';
import type { SinkPosition } from '../../../src/sinks/contract.ts';
import type { ChangeObserver } from '../../../src/snapshot/window-tracker.ts';
import { RelationCache } from '../../../src/source/relations.ts';
import { DEFAULT_VALUE_OPTIONS } from '../../../src/source/values.ts';
import { MemorySink, MemorySinkStore } from '../../harness/memory-sink.ts';

const NAMING = { prefix: 'db', database: 'db', naming: 'prefix' } as const;

function golden(file: string): PgoutputMessage[] {
  const path = fileURLToPath(new URL(`../../fixtures/pgoutput/${file}`, import.meta.url));
  const decoder = new PgoutputDecoder({ protoVersion: 1 });
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => decoder.decode(Buffer.from(line, 'hex')));
}

/** One `commit` call of the assembler: a transaction, or a non-transactional message. */
interface Committed {
  readonly endLsn: Lsn;
  readonly commitLsn: Lsn | undefined;
  readonly xid: number | undefined;
  readonly ids: string[];
  /** The sink position once this commit's events were written: what a checkpoint would store. */
  position: SinkPosition;
}

/** The delivery's part: one batch per commit, written to the memory sink in commit order. */
class SinkingChangeSink implements ChangeSink {
  readonly topics = new TopicRegistry();
  readonly writer = new EventBatchBuilder(this.topics);
  readonly committed: Committed[] = [];
  private readonly writes: Promise<unknown>[] = [];

  constructor(private readonly sink: MemorySink) {}

  event(topic: number, line: string): void {
    this.writer.startEvent();
    this.writer.text(line);
    this.writer.endEvent(topic);
  }

  eventEnd(topic: number): void {
    this.writer.endEvent(topic);
  }

  commit(endLsn: Lsn, commitLsn?: Lsn, xid?: number): void {
    const batch = this.writer.take(this.writer.count);
    const ids: string[] = [];
    for (let i = 0; i < batch.count; i++) ids.push(batch.id(i));
    const entry: Committed = { endLsn, commitLsn, xid, ids, position: {} };
    this.committed.push(entry);
    this.writes.push(this.sink.write(batch).then((position) => (entry.position = position)));
  }

  async flushed(): Promise<void> {
    await Promise.all(this.writes);
  }
}

/** Records what the assembler tells a snapshot observer (only reserved-prefix messages here). */
class RecordingObserver implements ChangeObserver {
  readonly active = false;
  readonly messages: string[] = [];
  begin(): void {}
  change(): boolean {
    return false;
  }
  truncate(): void {}
  message(prefix: string, content: Buffer): void {
    this.messages.push(`${prefix}:${content.toString('hex')}`);
  }
  committed(): void {}
  relationChanged(): void {}
}

interface Replay {
  readonly out: SinkingChangeSink;
  readonly sink: MemorySink;
  readonly observer: RecordingObserver;
  /** Every durable event, parsed. */
  readonly events: Event[];
}

interface Event {
  id: string;
  topic: string;
  key: Record<string, unknown> | null;
  headers?: Record<string, unknown>;
  value: {
    op?: string;
    status?: string;
    before?: Record<string, unknown> | null;
    after?: Record<string, unknown> | null;
    source?: { commit_lsn: string; txId: number; table: string; unavailable_columns?: string[] };
    transaction?: { total_order: number };
    message?: { prefix: string; content: string };
  };
}

/**
 * Feeds `messages` to an assembler the way the stream loop does (Relation messages update the
 * relation cache; the key is the replica identity's, as the catalog would say), writing to a
 * memory sink on `store`, opened at `resume`.
 */
async function replay(
  messages: readonly PgoutputMessage[],
  options: Omit<Partial<AssemblerOptions>, 'toast'> & {
    toastMode?: 'omit';
    store?: MemorySinkStore;
    resume?: SinkPosition;
  } = {},
): Promise<Replay> {
  const sink = new MemorySink({ store: options.store ?? new MemorySinkStore() });
  await sink.open(options.resume);
  const out = new SinkingChangeSink(sink);
  const observer = new RecordingObserver();
  const relations = new RelationCache(() => undefined, DEFAULT_VALUE_OPTIONS);
  const quiet = createLogger({ level: 'fatal', format: 'json' }, new Writable({ write: (_c, _e, done) => done() }));
  const toast =
    options.toastMode === 'omit' ? new ToastPolicy('omit', undefined, NAMING, out.topics, quiet) : undefined;
  const assembler = new ChangeAssembler(relations, out, {
    naming: NAMING,
    skipBefore: 0,
    observer,
    ...options,
    toast,
  });
  let lsn = 0;
  for (const message of messages) {
    if (message.tag === 'relation') {
      const key = message.replicaIdentity === 'f' ? [] : message.columns.filter((c) => c.isKey).map((c) => c.name);
      relations.apply(message, { primaryKey: key });
      assembler.relationChanged(message.relationId);
      continue;
    }
    if (message.tag === 'begin') lsn = message.finalLsn;
    assembler.handle(message, message.tag === 'message' ? message.lsn : lsn);
  }
  assert.equal(assembler.inTransaction, false, 'every transaction was closed');
  await out.flushed();
  await sink.close();
  const events = sink.store.events.map((event) => JSON.parse(event.line) as Event);
  return { out, sink, observer, events };
}

const transactionsOf = (messages: readonly PgoutputMessage[]) =>
  messages.flatMap((m, i) => {
    if (m.tag !== 'begin') return [];
    const commit = messages.slice(i).find((n) => n.tag === 'commit');
    assert.ok(commit?.tag === 'commit');
    return [{ commitLsn: m.finalLsn, xid: m.xid, endLsn: commit.endLsn }];
  });

/** A golden message with another prefix: the captures only emitted pgcdc's reserved one. */
function reprefixed(messages: readonly PgoutputMessage[]): PgoutputMessage[] {
  return messages.map((m) => (m.tag === 'message' ? { ...m, prefix: m.transactional ? 'app' : 'app-nt' } : m));
}

const basic = golden('v1-basic.hex');

void describe('ChangeAssembler on golden pgoutput bytes', () => {
  void it('each transaction is one commit with its events in order, under its commit LSN; ids are unique', async () => {
    for (const file of ['v1-basic.hex', 'v1-pg10.hex']) {
      const messages = golden(file);
      const { out, events, sink } = await replay(messages);
      const transactions = transactionsOf(messages);
      assert.deepEqual(
        out.committed.map((c) => [c.commitLsn, c.xid, c.endLsn]),
        transactions.map((t) => [t.commitLsn, t.xid, t.endLsn]),
        `${file}: one commit per Begin/Commit pair, with its LSNs and xid`,
      );
      for (const commit of out.committed) {
        const lsn = formatLsn(commit.commitLsn ?? 0);
        assert.deepEqual(
          commit.ids,
          commit.ids.map((_, i) => `${lsn}:${i}`),
          `${file}: ids are <commit lsn>:<ordinal>`,
        );
      }
      assert.deepEqual(
        sink.ids,
        out.committed.flatMap((c) => c.ids),
        `${file}: the sink holds the commits in order`,
      );
      assert.equal(new Set(sink.ids).size, sink.ids.length, `${file}: ids are unique`);
      let previous = '';
      let order = 0;
      for (const event of events) {
        const commitLsn = event.id.split(':')[0] ?? '';
        order = commitLsn === previous ? order + 1 : 1;
        previous = commitLsn;
        assert.equal(event.value.source?.commit_lsn, commitLsn);
        assert.equal(event.value.transaction?.total_order, order, `${event.id}: total_order counts from 1`);
      }
    }
  });

  void it('v1-basic.hex: the changes capture.ts made, as events', async () => {
    const { events } = await replay(basic);
    const summary = events.map((e) => {
      const table = e.topic.split('.').at(-1);
      const row = e.value.after ?? e.value.before;
      return `${table} ${e.value.op} ${JSON.stringify(e.key)} ${row?.id === undefined ? '-' : JSON.stringify(row.id)}`;
    });
    assert.deepEqual(summary, [
      'items c {"id":1} 1',
      'items c {"id":2} 2',
      'items u {"id":1} 1',
      'items d {"id":2} 2',
      'items c {"id":20} 20',
      'items c {"id":3} 3',
      'items u {"id":3} 3',
      'items d {"id":20} 20',
      'audit c null 1',
      'audit u null 1',
      'audit d null 1',
      'audit c null 2',
      'audit t null -',
      'big t null -',
      'audit c null 1',
    ]);
    // A key change is a delete of the old key (before: the old key) and a create of the new one, with
    // Debezium's headers naming the other key; REPLICA IDENTITY FULL carries whole old rows.
    assert.equal(events[3]?.value.before?.id, 2);
    assert.deepEqual(events[3]?.headers, { '__debezium.newkey': { id: 20 } });
    assert.deepEqual([events[4]?.value.before, events[4]?.headers], [null, { '__debezium.oldkey': { id: 2 } }]);
    assert.deepEqual(events[9]?.value.before, { id: 1, msg: 'first' });
    assert.deepEqual(events[10]?.value.before, { id: 1, msg: 'second' });
    assert.equal(events[14]?.value.after?.msg, 'from upstream');
  });

  void it('an unchanged TOASTed value is the placeholder (default) or left out (omit), and named', async () => {
    const placeholder = (await replay(basic)).events[6];
    assert.equal(placeholder?.value.after?.note, '__pgcdc_unavailable_value');
    assert.deepEqual(placeholder?.value.source?.unavailable_columns, ['note']);
    assert.equal(placeholder?.value.after?.price, '1.00');

    const omitted = (await replay(basic, { toastMode: 'omit' })).events[6];
    assert.equal(omitted?.value.after?.price, '1.00');
    assert.ok(omitted?.value.after !== undefined && omitted.value.after !== null);
    assert.equal('note' in omitted.value.after, false, 'omit leaves the column out');
    assert.deepEqual(omitted.value.source?.unavailable_columns, ['note']);
    // The insert before it had the whole value: nothing is unavailable there.
    assert.equal((await replay(basic)).events[5]?.value.after?.note?.toString().length, 9600);
  });

  void it('a truncate of two tables: one t event per table in one transaction; truncate.skip drops them', async () => {
    const { events, out } = await replay(basic);
    const truncates = events.filter((e) => e.value.op === 't');
    assert.deepEqual(
      truncates.map((e) => [e.topic, e.value.before, e.value.after, e.key]),
      [
        ['db.public.audit', null, null, null],
        ['db.public.big', null, null, null],
      ],
    );
    assert.equal(truncates[0]?.id.split(':')[0], truncates[1]?.id.split(':')[0], 'the same transaction');

    const skipped = await replay(basic, { skipTruncate: true });
    assert.equal(skipped.events.filter((e) => e.value.op === 't').length, 0);
    assert.equal(skipped.out.committed.length, out.committed.length, 'the transaction still commits, empty');
    const truncating = skipped.out.committed.find(
      (c) => formatLsn(c.commitLsn ?? 0) === truncates[0]?.id.split(':')[0],
    );
    assert.deepEqual(truncating?.ids, []);
  });

  void it("logical messages: pgcdc's prefix goes to the observer only; others become events", async () => {
    const reserved = await replay(basic);
    assert.equal(reserved.events.filter((e) => e.topic === 'db.message').length, 0);
    assert.deepEqual(reserved.observer.messages, [`pgcdc:${Buffer.from('hello').toString('hex')}`, 'pgcdc-nt:00ff']);

    const messages = reprefixed(basic);
    const { events, out } = await replay(messages);
    const loose = messages.find((m) => m.tag === 'message' && !m.transactional);
    assert.ok(loose?.tag === 'message');
    const inTransaction = events.findIndex((e) => e.topic === 'db.message' && e.value.message?.prefix === 'app');
    assert.ok(inTransaction >= 0);
    const tx = events[inTransaction];
    assert.match(tx?.id ?? '', /:0$/, 'the transactional message is its transaction first event');
    assert.equal(events[inTransaction + 1]?.id.split(':')[0], tx?.id.split(':')[0], 'the insert follows it');
    const standalone = events.find((e) => e.value.message?.prefix === 'app-nt');
    assert.equal(standalone?.id, `${formatLsn(loose.lsn)}:message`);
    const alone = out.committed.find((c) => c.commitLsn === undefined);
    assert.deepEqual([alone?.endLsn, alone?.ids], [loose.lsn, [standalone?.id]], 'committed alone at its LSN');
    assert.equal(new Set(events.map((e) => e.id)).size, events.length);

    const filtered = await replay(messages, { messageFilter: (prefix) => prefix !== 'app-nt' });
    assert.deepEqual(
      filtered.events.filter((e) => e.topic === 'db.message').map((e) => e.value.message?.prefix),
      ['app'],
    );
  });

  void it('transaction events: BEGIN first and END last in every transaction with events', async () => {
    const { out, events } = await replay(basic, { transactionEvents: true });
    const byId = new Map(events.map((e) => [e.id, e]));
    for (const commit of out.committed) {
      if (commit.ids.length === 0) continue;
      const lsn = formatLsn(commit.commitLsn ?? 0);
      assert.equal(commit.ids[0], `${lsn}:begin`);
      assert.equal(commit.ids.at(-1), `${lsn}:end`);
      assert.equal(byId.get(`${lsn}:end`)?.value.status, 'END');
    }
    assert.equal(new Set(events.map((e) => e.id)).size, events.length);
  });

  void it('resuming from a checkpoint delivers each event once: the sink cuts back, the assembler skips', async () => {
    const store = new MemorySinkStore();
    const first = await replay(basic, { store });
    const full = first.sink.ids;
    // A crash after the whole stream was written but only the 6th transaction checkpointed.
    const checkpoint = first.out.committed[5];
    assert.ok(checkpoint !== undefined);
    const resumed = await replay(basic, { store, resume: checkpoint.position, skipBefore: checkpoint.endLsn });
    assert.deepEqual(store.ids(), full, 'the same events, none lost or repeated');
    assert.deepEqual(
      resumed.out.committed.flatMap((c) => c.ids),
      first.out.committed.slice(6).flatMap((c) => c.ids),
      'only the transactions after the checkpoint were assembled again, with the same ids',
    );
  });
});
