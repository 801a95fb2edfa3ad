/**
 * The stream loop without a database: the golden pgoutput bytes (test/fixtures/pgoutput/*.hex, captured from real
 * servers) are wrapped in XLogData frames and fed through a recorded FrameSource; a catalog answers from the
 * Relation messages themselves, and an in-memory sink and offset store record what the loop delivers and stores.
 * The loop's own code (scheduler, Delivery, assembler, spill of streamed transactions) is the real one.
 */
import '../../harness/tmp.ts'; // temporary files go under a per-process root, removed at exit
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import pino from 'pino';
import { parseConfig } from '../../../src/config.ts';
import type { CdcError } from '../../../src/core/errors.ts';
import { parseLsn } from '../../../src/protocol/lsn.ts';
import type { Lsn } from '../../../src/protocol/messages.ts';
import { PgoutputDecoder } from '../../../src/protocol/pgoutput.ts';
import { resolveEndpoint } from '../../../src/postgres/connect.ts';
import type { TableRef } from '../../../src/postgres/catalog.ts';
import type { PgType } from '../../../src/source/values.ts';
import type { Checkpoint } from '../../../src/offsets/store.ts';
import { Heartbeat } from '../../../src/pipeline/heartbeat.ts';
import type { FrameSource, FrameStream, StreamCatalog } from '../../../src/pipeline/loop-ports.ts';
import { StreamLoop } from '../../../src/pipeline/stream-loop.ts';
import { keepalive, xlogData } from '../protocol/builder.ts';
import { MemorySink } from '../../harness/memory-sink.ts';
import { MemoryOffsetStore } from '../../harness/memory-offsets.ts';

/** What the loop did, in order: status updates sent and checkpoints stored. */
type Entry =
  | { readonly kind: 'status'; readonly write: Lsn; readonly flush: Lsn; readonly reply: boolean }
  | { readonly kind: 'stored'; readonly lsn: Lsn };

class RecordedStream extends EventEmitter implements FrameStream {
  constructor(private readonly log: Entry[]) {
    super();
  }
  pause(): void {}
  resume(): void {}
  sendStatus(received: Lsn, flush: Lsn, replyRequested = false): void {
    this.log.push({ kind: 'status', write: received, flush, reply: replyRequested });
  }
  stop(): Promise<void> {
    return Promise.resolve();
  }
  /** Delivers one frame as the replication session does. */
  frame(frame: Buffer): void {
    this.emit('frame', frame);
  }
}

class RecordedSource implements FrameSource {
  readonly backendPid = 1;
  stream: RecordedStream | undefined;
  constructor(private readonly log: Entry[]) {}
  start(): FrameStream {
    return (this.stream = new RecordedStream(this.log));
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** The harness's offset store, recording each stored checkpoint in the loop's log before the loop hears of it. */
class LoggedOffsets extends MemoryOffsetStore {
  constructor(private readonly log: Entry[]) {
    super();
  }
  override async commit(checkpoint: Checkpoint): Promise<void> {
    await super.commit(checkpoint);
    this.log.push({ kind: 'stored', lsn: parseLsn(checkpoint.lsn) });
  }
}

function hexLines(file: string): Buffer[] {
  const text = readFileSync(fileURLToPath(new URL(`../../fixtures/pgoutput/${file}`, import.meta.url)), 'utf8');
  return text
    .split('\n')
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => Buffer.from(line, 'hex'));
}

interface Golden {
  /** XLogData frames, one per message, walStart as the walsender sets it (0 for Relation and Type). */
  readonly frames: Buffer[];
  /** Commit LSNs of the transactions with row changes, in commit order, and their row change counts. */
  readonly transactions: { readonly commitLsn: Lsn; readonly changes: number }[];
  /** The end LSN of the last commit. */
  readonly lastEnd: Lsn;
}

/** Reads a golden file, wraps its messages in frames and works out what the loop must deliver. */
function golden(file: string, protoVersion: 1 | 2): Golden {
  const decoder = new PgoutputDecoder({ protoVersion });
  const frames: Buffer[] = [];
  const transactions: { commitLsn: Lsn; changes: number }[] = [];
  const streamed = new Map<number, number>();
  let open: { commitLsn: Lsn; changes: number } | undefined;
  let lsn = 0;
  let lastEnd = 0;
  for (const data of hexLines(file)) {
    const message = decoder.decode(data);
    const row = message.tag === 'insert' || message.tag === 'update' || message.tag === 'delete';
    if (message.tag === 'begin') open = { commitLsn: (lsn = message.finalLsn), changes: 0 };
    else if (row && message.xid === undefined && open) open.changes++;
    else if (row && message.xid !== undefined) streamed.set(message.xid, (streamed.get(message.xid) ?? 0) + 1);
    else if (message.tag === 'streamAbort' && message.xid === message.subXid) streamed.delete(message.xid);
    else if (message.tag === 'commit' || message.tag === 'streamCommit') {
      lsn = message.commitLsn;
      lastEnd = message.endLsn;
    }
    const walStart = message.tag === 'relation' || message.tag === 'type' ? 0 : lsn;
    frames.push(xlogData({ walStart, walEnd: walStart, sendTime: 0, data }));
    if (message.tag === 'commit' && open) {
      if (open.changes > 0) transactions.push(open);
      open = undefined;
    } else if (message.tag === 'streamCommit') {
      const changes = streamed.get(message.xid) ?? 0;
      if (changes > 0) transactions.push({ commitLsn: message.commitLsn, changes });
      streamed.delete(message.xid);
    }
  }
  return { frames, transactions, lastEnd };
}

/** Answers from the Relation message itself: the key columns it flags, no partitions. */
class RelationCatalog implements StreamCatalog {
  /** Holds `table()` while set (a slow catalog lookup). */
  gate: Promise<void> | undefined;
  /** Makes `table()` fail (a lost catalog connection). */
  failure: Error | undefined;
  readonly keys = new Map<number, string[]>();
  checkStart(): Promise<{ readonly history: undefined }> {
    return Promise.resolve({ history: undefined });
  }
  types(): Promise<ReadonlyMap<number, PgType>> {
    return Promise.resolve(new Map<number, PgType>());
  }
  async table(relationId: number): Promise<TableRef | undefined> {
    await this.gate;
    if (this.failure) throw this.failure;
    const primaryKey = this.keys.get(relationId) ?? [];
    return {
      oid: relationId,
      schema: 'public',
      table: String(relationId),
      kind: 'r',
      replicaIdentity: 'd',
      primaryKey,
    };
  }
  partitionRoot(): Promise<undefined> {
    return Promise.resolve(undefined);
  }
}

interface Harness {
  readonly loop: StreamLoop;
  readonly stream: RecordedStream;
  readonly sink: MemorySink;
  readonly offsets: LoggedOffsets;
  readonly catalog: RelationCatalog;
  readonly log: Entry[];
  readonly failures: CdcError[];
  close(): Promise<void>;
}

async function harness(options: { streaming?: boolean; heartbeatMs?: number } = {}): Promise<Harness> {
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-stream-loop-'));
  const config = parseConfig({
    offsets: path.join(dir, 'offsets.json'),
    streaming: options.streaming ?? false,
    // Only the loop's own reasons send status updates here: the interval never comes round in a test.
    statusIntervalMs: 600_000,
    heartbeat: { interval: options.heartbeatMs ?? 0 },
    batch: { maxEvents: 50, maxDelayMs: 0 },
  });
  const log: Entry[] = [];
  const source = new RecordedSource(log);
  const sink = new MemorySink();
  await sink.open(undefined);
  const offsets = new LoggedOffsets(log);
  const catalog = new RelationCatalog();
  const failures: CdcError[] = [];
  const quiet = pino({ level: 'silent' });
  const endpoint = resolveEndpoint(config.source, {});
  const startLsn = 0;
  const loop = new StreamLoop({
    config,
    endpoint,
    facts: { versionNum: 180000, major: 18, walLevel: 'logical', walSenderTimeoutMs: 0 },
    // Never used: every catalog question goes to `catalog`.
    query: {} as pg.Client,
    session: source,
    catalog,
    sink,
    offsets,
    tables: [],
    selection: { tables: [], fromPublication: true, unmatched: [], captures: () => true },
    generatedColumns: 'none',
    log: quiet,
    identity: { systemId: '1', timeline: 1, database: 'db', slot: config.slot, publication: config.publication },
    naming: { prefix: 'pgcdc', database: 'db', naming: 'prefix' },
    types: new Map(),
    heartbeat: await Heartbeat.open(endpoint, config.heartbeat, quiet),
    toastStore: undefined,
    startLsn,
    replayFrom: startLsn,
    lastCommit: undefined,
    skipBefore: 0,
    startPosition: {},
    progress: {},
    method: { unavailable: 'not in this test' },
    signalTable: undefined,
    onFailure: (error) => failures.push(error),
    onStatusSent: undefined,
  });
  loop.start();
  const stream = source.stream;
  assert.ok(stream, 'the loop started a stream');
  await settled(); // the start check
  return {
    loop,
    stream,
    sink,
    offsets,
    catalog,
    log,
    failures,
    close: async () => {
      await loop.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Lets promise callbacks and setImmediate callbacks run (sink writes, stores, catalog lookups, the scheduler). */
async function settled(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

/** The walStart of the last frame with one before `at` (what the loop has received when it processed it). */
function relationFrame(expected: Golden, at: number): Lsn | undefined {
  for (let i = at; i >= 0; i--) {
    const walStart = expected.frames[i]?.readUIntBE(3, 6);
    if (walStart) return walStart;
  }
  return undefined;
}

/** The commit LSN part of an event id (`<commit_lsn>:<ordinal>`, the LSN in PostgreSQL's text form). */
const commitOf = (id: string): Lsn => parseLsn(id.slice(0, id.lastIndexOf(':')));

async function until(what: string, done: () => boolean): Promise<void> {
  for (let i = 0; i < 10_000 && !done(); i++) await settled(1);
  assert.ok(done(), what);
}

/** Every golden transaction's row changes, delivered once each, in commit order. */
function assertDeliveredInOrder(sink: MemorySink, expected: Golden): void {
  const rowIds = sink.ids.filter((id) => expected.transactions.some((t) => t.commitLsn === commitOf(id)));
  const seen: { commitLsn: Lsn; count: number }[] = [];
  for (const id of rowIds) {
    const lsn = commitOf(id);
    const last = seen.at(-1);
    if (last?.commitLsn === lsn) last.count++;
    else seen.push({ commitLsn: lsn, count: 1 });
  }
  assert.deepEqual(
    seen.map((t) => t.commitLsn),
    expected.transactions.map((t) => t.commitLsn),
    'every transaction, once, in commit order',
  );
  for (const [i, t] of expected.transactions.entries()) {
    assert.ok((seen[i]?.count ?? 0) >= t.changes, `transaction ${i}: at least its ${t.changes} row changes`);
  }
  assert.equal(new Set(sink.ids).size, sink.ids.length, 'no event id twice');
}

/** No status update reports a flush position beyond the checkpoint stored when it was sent. */
function assertFlushNeverPastCheckpoint(log: readonly Entry[], startLsn: Lsn): void {
  let stored = startLsn;
  for (const entry of log) {
    if (entry.kind === 'stored') stored = entry.lsn;
    else assert.ok(entry.flush <= stored, `status flush ${entry.flush} beyond the stored checkpoint ${stored}`);
  }
}

/** Each stored checkpoint is followed by a status update reporting it, before anything else is stored. */
function assertStatusAfterEachCheckpoint(log: readonly Entry[]): void {
  for (const [i, entry] of log.entries()) {
    if (entry.kind !== 'stored') continue;
    const next = log.slice(i + 1).find((e) => e.kind === 'status' || e.kind === 'stored');
    assert.ok(next?.kind === 'status' && next.flush === entry.lsn, `a status update reports checkpoint ${entry.lsn}`);
  }
}

for (const [file, protoVersion] of [
  ['v1-basic.hex', 1],
  ['v1-pg10.hex', 1],
  ['v2-stream.hex', 2],
] as const) {
  const name = `${file}: every transaction is delivered in order; status updates follow each checkpoint, never pass it`;
  void test(name, async () => {
    const expected = golden(file, protoVersion);
    assert.ok(expected.transactions.length > 0);
    const h = await harness({ streaming: protoVersion === 2 });
    try {
      for (const frame of expected.frames) h.stream.frame(frame);
      await until('every transaction checkpointed', () =>
        h.offsets.history.some((c) => parseLsn(c.lsn) >= expected.lastEnd),
      );
      await settled();
      assert.deepEqual(h.failures, []);
      assertDeliveredInOrder(h.sink, expected);
      assertFlushNeverPastCheckpoint(h.log, 0);
      assertStatusAfterEachCheckpoint(h.log);
      const last = h.log.filter((e) => e.kind === 'status').at(-1);
      assert.equal(last?.flush, expected.lastEnd, 'the slot is told the last commit is durable');
    } finally {
      await h.close();
    }
  });
}

void test('the recorded replication frames (keepalives around a transaction) go through whole', async () => {
  const frames = hexLines('replication.hex');
  const h = await harness();
  try {
    for (const frame of frames) h.stream.frame(frame);
    await until('a checkpoint', () => h.offsets.history.length > 0);
    await settled();
    assert.deepEqual(h.failures, []);
    assert.ok(h.sink.ids.length > 0, 'the transaction was delivered');
    assertFlushNeverPastCheckpoint(h.log, 0);
    assertStatusAfterEachCheckpoint(h.log);
  } finally {
    await h.close();
  }
});

void test('a keepalive that asks for a reply is answered before the next frame is processed', async () => {
  const expected = golden('v1-basic.hex', 1);
  const h = await harness();
  try {
    // Hold the loop on the first Relation message's catalog lookup, as a slow catalog would.
    let release!: () => void;
    h.catalog.gate = new Promise((resolve) => (release = resolve));
    const relationAt = expected.frames.findIndex((f) => f[25] === 0x52);
    assert.ok(relationAt >= 0);
    for (const frame of expected.frames.slice(0, relationAt + 1)) h.stream.frame(frame);
    const statuses = (): number => h.log.filter((e) => e.kind === 'status').length;
    const received = relationFrame(expected, relationAt) ?? 0;
    // Later transactions' frames wait behind the lookup, then the keepalive arrives.
    for (const frame of expected.frames.slice(relationAt + 1)) h.stream.frame(frame);
    const before = statuses();
    h.stream.frame(keepalive({ walEnd: 0x7fff_0000, sendTime: 0, replyRequested: true }));
    assert.equal(statuses(), before + 1, 'the reply went out at once, ahead of the frames waiting before it');
    const reply = h.log.filter((e) => e.kind === 'status').at(-1);
    assert.equal(reply?.write, received, 'no frame after the Relation message was processed before the reply');
    // A keepalive without the request is no reason for a status update.
    h.stream.frame(keepalive({ walEnd: 0x7fff_0000, sendTime: 0, replyRequested: false }));
    assert.equal(statuses(), before + 1);
    release();
    await until('every transaction checkpointed', () =>
      h.offsets.history.some((c) => parseLsn(c.lsn) >= expected.lastEnd),
    );
    assertDeliveredInOrder(h.sink, expected);
    assertFlushNeverPastCheckpoint(h.log, 0);
  } finally {
    await h.close();
  }
});

void test('a heartbeat moves the checkpoint over idle WAL, and a status update reports it at once', async () => {
  const expected = golden('v1-pg10.hex', 1);
  const h = await harness({ heartbeatMs: 20 });
  try {
    for (const frame of expected.frames) h.stream.frame(frame);
    const idleEnd = expected.lastEnd + 0x1000;
    // Writes elsewhere: the server's position moves on past the last captured commit.
    h.stream.frame(keepalive({ walEnd: idleEnd, sendTime: 0, replyRequested: false }));
    await until('the checkpoint at the idle position', () =>
      h.offsets.history.some((c) => parseLsn(c.lsn) === idleEnd),
    );
    await until('a status update reporting it', () => h.log.some((e) => e.kind === 'status' && e.flush === idleEnd));
    assert.deepEqual(h.failures, []);
    assertFlushNeverPastCheckpoint(h.log, 0);
    assertStatusAfterEachCheckpoint(h.log);
  } finally {
    await h.close();
  }
});

void test('a failed catalog lookup stops the loop with one error, and nothing past it is acknowledged', async () => {
  const expected = golden('v1-basic.hex', 1);
  const h = await harness();
  try {
    h.catalog.failure = new Error('connection to the catalog lost');
    for (const frame of expected.frames) h.stream.frame(frame);
    await until('the failure', () => h.failures.length > 0);
    assert.equal(h.failures.length, 1);
    assert.equal(h.failures[0]?.code, 'SOURCE_QUERY_FAILED');
    assert.match(h.failures[0]?.message ?? '', /catalog lost/);
    assert.deepEqual(h.sink.ids, [], 'nothing after the Relation message was processed');
    assert.ok(h.log.every((e) => e.kind !== 'status' || e.flush === 0));
  } finally {
    await h.close();
  }
});
