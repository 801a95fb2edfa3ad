import '../../harness/tmp.ts'; // temporary files go under a per-process root, removed at exit
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { appendFile, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CdcError } from '../../../src/core/errors.ts';
import { JsonlSink, jsonlFileName } from '../../../src/sinks/jsonl/jsonl.ts';
import type { SinkPosition } from '../../../src/sinks/contract.ts';
import { EventBatch } from '../../../src/sinks/batch.ts';
import { Writable } from 'node:stream';
import { createLogger } from '../../../src/core/log.ts';

type SinkEvent = { topic: string; id: string; line: string };

const roots: string[] = [];
after(async () => {
  await Promise.all(roots.map((dir) => rm(dir, { recursive: true, force: true })));
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-jsonl-'));
  roots.push(dir);
  return dir;
}

function ev(topic: string, n: number): SinkEvent {
  return { topic, id: `0/${n.toString(16).toUpperCase()}:0`, line: JSON.stringify({ id: n, topic }) };
}

function lines(topic: string, from: number, to: number): string {
  let out = '';
  for (let n = from; n < to; n++) out += `${ev(topic, n).line}\n`;
  return out;
}

function filesOf(position: SinkPosition): Record<string, number> {
  const files = position.files;
  assert.ok(typeof files === 'object' && files !== null);
  return files as Record<string, number>;
}

async function isCdcError(promise: Promise<unknown>, code: string): Promise<CdcError> {
  let caught: unknown;
  await promise.then(
    () => assert.fail('expected a rejection'),
    (error: unknown) => {
      caught = error;
    },
  );
  assert.ok(caught instanceof CdcError, `not a CdcError: ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  return caught;
}

void describe('jsonlFileName', () => {
  void it('keeps plain topics and escapes everything else injectively', () => {
    assert.equal(jsonlFileName('shop.public.orders'), 'shop.public.orders.jsonl');
    assert.equal(jsonlFileName('shop.public.my/table'), 'shop.public.my%2Ftable.jsonl');
    assert.equal(jsonlFileName('a%2Fb'), 'a%252Fb.jsonl');
    assert.equal(jsonlFileName('..'), '%2E..jsonl');
    assert.equal(jsonlFileName('shop.public.café'), 'shop.public.caf%C3%A9.jsonl');
    assert.equal(jsonlFileName('a b'), 'a%20b.jsonl');
  });

  void it('refuses empty and over-long topics', () => {
    assert.throws(
      () => jsonlFileName(''),
      (e: unknown) => e instanceof CdcError && e.code === 'SINK_FAILED',
    );
    assert.throws(
      () => jsonlFileName('x'.repeat(250)),
      (e: unknown) => e instanceof CdcError && e.code === 'SINK_FAILED',
    );
  });
});

void describe('JsonlSink', () => {
  void it('creates the directory and appends batches to one file per topic', async () => {
    const dir = path.join(await tempDir(), 'out', 'nested');
    const sink = new JsonlSink({ dir });
    await sink.open(undefined);
    const p1 = await sink.write(
      EventBatch.of([ev('shop.public.orders', 1), ev('shop.public.items', 2), ev('shop.public.orders', 3)]),
    );
    const p2 = await sink.write(EventBatch.of([ev('shop.public.orders', 4)]));
    await sink.close();

    const orders = await readFile(path.join(dir, 'shop.public.orders.jsonl'), 'utf8');
    const items = await readFile(path.join(dir, 'shop.public.items.jsonl'), 'utf8');
    assert.equal(
      orders,
      `${ev('shop.public.orders', 1).line}\n${ev('shop.public.orders', 3).line}\n${ev('shop.public.orders', 4).line}\n`,
    );
    assert.equal(items, `${ev('shop.public.items', 2).line}\n`);
    assert.deepEqual(filesOf(p1), {
      'shop.public.orders': Buffer.byteLength(orders) - Buffer.byteLength(`${ev('shop.public.orders', 4).line}\n`),
      'shop.public.items': Buffer.byteLength(items),
    });
    // untouched files keep their length in later positions
    assert.deepEqual(filesOf(p2), {
      'shop.public.orders': Buffer.byteLength(orders),
      'shop.public.items': Buffer.byteLength(items),
    });
  });

  void it('a sink opened on a directory waits for the writes of the one before it there', async () => {
    const dir = await tempDir();
    const first = new JsonlSink({ dir });
    await first.open(undefined);
    const start = await first.write(EventBatch.of([]));
    // A write of the first sink still running when a new attempt opens a sink at the old checkpoint.
    const order: string[] = [];
    const big = Array.from({ length: 20_000 }, (_, n) => ev('shop.public.orders', n));
    const writing = first.write(EventBatch.of(big)).then(() => order.push('old write done'));
    const second = new JsonlSink({ dir });
    await second.open(start);
    order.push('new sink open');
    await writing;
    assert.deepEqual(order, ['old write done', 'new sink open']);
    // The old write's file is not in the checkpoint: the new sink removed it, after it landed.
    assert.deepEqual(await readdir(dir), []);
    await first.close();
    await second.close();
  });

  void it('counts bytes, not characters, and escapes unsafe topics into their own file', async () => {
    const dir = await tempDir();
    const sink = new JsonlSink({ dir });
    await sink.open(undefined);
    const event: SinkEvent = { topic: 'shop.public.we/ird', id: '0/1:0', line: '{"name":"café ☕"}' };
    const position = await sink.write(EventBatch.of([event]));
    await sink.close();
    assert.deepEqual(await readdir(dir), ['shop.public.we%2Fird.jsonl']);
    assert.deepEqual(filesOf(position), { 'shop.public.we/ird': Buffer.byteLength(event.line) + 1 });
  });

  void it('an empty batch resolves the current position', async () => {
    const dir = await tempDir();
    const sink = new JsonlSink({ dir });
    await sink.open(undefined);
    assert.deepEqual(await sink.write(EventBatch.of([])), { files: {} });
    const p = await sink.write(EventBatch.of([ev('t', 1)]));
    assert.deepEqual(await sink.write(EventBatch.of([])), p);
    await sink.close();
  });

  void it('serializes concurrent writes in call order', async () => {
    const dir = await tempDir();
    const sink = new JsonlSink({ dir });
    await sink.open(undefined);
    const batches = Array.from({ length: 20 }, (_, b) =>
      Array.from({ length: 50 }, (_, i) => ev(i % 2 === 0 ? 'a' : 'b', b * 50 + i)),
    );
    const positions = await Promise.all(batches.map((batch) => sink.write(EventBatch.of(batch))));
    await sink.close();
    const a = await readFile(path.join(dir, 'a.jsonl'), 'utf8');
    const expectedA = batches
      .flat()
      .filter((e) => e.topic === 'a')
      .map((e) => `${e.line}\n`)
      .join('');
    assert.equal(a, expectedA);
    for (let i = 1; i < positions.length; i++) {
      const prev = filesOf(positions[i - 1] ?? {});
      const cur = filesOf(positions[i] ?? {});
      assert.ok((cur.a ?? 0) > (prev.a ?? 0) && (cur.b ?? 0) > (prev.b ?? 0), 'positions grow in call order');
    }
    assert.equal(filesOf(positions.at(-1) ?? {}).a, Buffer.byteLength(a));
  });

  void it('says at info level, per file, how many bytes and events it cut and why', async () => {
    const dir = await tempDir();
    const first = new JsonlSink({ dir });
    await first.open(undefined);
    const checkpoint = await first.write(EventBatch.of([ev('a', 0), ev('b', 1)]));
    // Written, never checkpointed: the process "crashes" here.
    await first.write(EventBatch.of([ev('a', 2), ev('a', 3), ev('c', 4)]));
    await first.close();
    await appendFile(path.join(dir, 'b.jsonl'), '{"torn":');

    const records: Record<string, unknown>[] = [];
    const out = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        for (const line of chunk.toString('utf8').split('\n'))
          if (line) records.push(JSON.parse(line) as Record<string, unknown>);
        callback();
      },
    });
    const second = new JsonlSink({ dir, log: createLogger({ level: 'info', format: 'json' }, out) });
    await second.open(checkpoint);
    await second.close();
    const cutA = Buffer.byteLength(lines('a', 2, 4));
    const byFile = new Map(records.map((r) => [path.basename(String(r.file)), r]));
    assert.equal(records.length, 3, JSON.stringify(records));
    assert.ok(
      records.every((r) => r.level === 30),
      'info level',
    );
    assert.deepEqual(
      { ...byFile.get('a.jsonl'), time: 0, msg: '' },
      {
        level: 30,
        time: 0,
        msg: '',
        action: 'truncated',
        file: path.join(dir, 'a.jsonl'),
        bytes: cutA,
        events: 2,
        tornLine: false,
        fromBytes: Buffer.byteLength(lines('a', 0, 1)) + cutA,
        toBytes: Buffer.byteLength(lines('a', 0, 1)),
      },
    );
    assert.match(
      String(byFile.get('a.jsonl')?.msg),
      new RegExp(
        `^cut ${cutA} bytes \\(2 events\\) from .*a\\.jsonl: they were written after the last stored ` +
          (`checkpoint \\(pgcdc ended, by a crash, a kill or a failure, before storing the checkpoint that ` +
            `covers them\\); they are written again as the capture resumes from that checkpoint$`),
      ),
    );
    assert.match(String(byFile.get('b.jsonl')?.msg), /^cut 8 bytes \(0 events and a torn last line\) from /);
    assert.match(
      String(byFile.get('c.jsonl')?.msg),
      new RegExp(
        /^removed \d+ bytes \(1 event\) from .*c\.jsonl/.source +
          /, a file the checkpoint does not know: they were written after the last stored checkpoint/.source,
      ),
    );
  });

  void it('restores exactly the checkpointed state after a crash: truncates, removes unlisted files', async () => {
    const dir = await tempDir();
    const first = new JsonlSink({ dir });
    await first.open(undefined);
    await first.write(EventBatch.of([ev('a', 0), ev('a', 1), ev('b', 2)]));
    const checkpoint = await first.write(EventBatch.of([ev('a', 3)]));
    // Written after the checkpoint, never checkpointed: the engine "crashes" here.
    await first.write(EventBatch.of([ev('a', 4), ev('b', 5), ev('c', 6)]));
    await first.close();
    await appendFile(path.join(dir, 'a.jsonl'), '{"torn":'); // a torn write past the position

    const second = new JsonlSink({ dir });
    await second.open(checkpoint);
    assert.deepEqual(second.recovered.map((r) => [path.basename(r.file), r.action]).sort(), [
      ['a.jsonl', 'truncated'],
      ['b.jsonl', 'truncated'],
      ['c.jsonl', 'removed'],
    ]);
    assert.equal(await readFile(path.join(dir, 'a.jsonl'), 'utf8'), lines('a', 0, 2) + lines('a', 3, 4));
    assert.equal(await readFile(path.join(dir, 'b.jsonl'), 'utf8'), lines('b', 2, 3));
    assert.deepEqual((await readdir(dir)).sort(), ['a.jsonl', 'b.jsonl']);

    // Replaying the lost batch after the restart yields every event exactly once.
    const replayed = await second.write(EventBatch.of([ev('a', 4), ev('b', 5), ev('c', 6)]));
    await second.close();
    assert.equal(await readFile(path.join(dir, 'a.jsonl'), 'utf8'), lines('a', 0, 2) + lines('a', 3, 5));
    assert.equal(await readFile(path.join(dir, 'c.jsonl'), 'utf8'), lines('c', 6, 7));
    assert.deepEqual(filesOf(replayed), {
      a: Buffer.byteLength(lines('a', 0, 2) + lines('a', 3, 5)),
      b: Buffer.byteLength(lines('b', 2, 3) + lines('b', 5, 6)),
      c: Buffer.byteLength(lines('c', 6, 7)),
    });
  });

  void it('an empty checkpoint position removes every event file', async () => {
    const dir = await tempDir();
    await writeFile(path.join(dir, 'x.jsonl'), lines('x', 0, 3));
    await writeFile(path.join(dir, 'notes.txt'), 'not ours');
    const sink = new JsonlSink({ dir });
    await sink.open({ files: {} });
    await sink.close();
    assert.deepEqual(await readdir(dir), ['notes.txt']);
  });

  void it('refuses a directory with event files when there is no checkpoint, leaving them intact', async () => {
    const dir = await tempDir();
    await writeFile(path.join(dir, 'shop.public.orders.jsonl'), lines('o', 0, 2));
    const error = await isCdcError(new JsonlSink({ dir }).open(undefined), 'CONFIG_INVALID');
    assert.match(error.message, /already has event files/);
    assert.match(error.message, /no checkpoint/);
    assert.match(error.hint ?? '', /--out/);
    assert.equal(await readFile(path.join(dir, 'shop.public.orders.jsonl'), 'utf8'), lines('o', 0, 2));
  });

  void it('accepts a fresh directory holding only empty event files or other files', async () => {
    const dir = await tempDir();
    await writeFile(path.join(dir, 'a.jsonl'), '');
    await writeFile(path.join(dir, 'README'), 'x');
    const sink = new JsonlSink({ dir });
    await sink.open(undefined);
    assert.deepEqual(filesOf(await sink.write(EventBatch.of([ev('a', 1)]))), {
      a: Buffer.byteLength(lines('a', 1, 2)),
    });
    await sink.close();
  });

  void it('refuses to open when a checkpointed file is missing, shorter, or replaced', async () => {
    const dir = await tempDir();
    await writeFile(path.join(dir, 'a.jsonl'), lines('a', 0, 2));
    const full = Buffer.byteLength(lines('a', 0, 2));
    await isCdcError(new JsonlSink({ dir }).open({ files: { a: full + 10 } }), 'SINK_FAILED');
    await isCdcError(new JsonlSink({ dir }).open({ files: { a: full, gone: 5 } }), 'SINK_FAILED');
    await isCdcError(new JsonlSink({ dir }).open({ files: { a: full - 3 } }), 'SINK_FAILED');
    assert.equal(await readFile(path.join(dir, 'a.jsonl'), 'utf8'), lines('a', 0, 2), 'nothing was truncated');
    await isCdcError(new JsonlSink({ dir }).open({ offsets: 'from another sink' }), 'CONFIG_INVALID');
  });

  void it('a zero-length checkpointed file may be missing', async () => {
    const dir = await tempDir();
    const sink = new JsonlSink({ dir });
    await sink.open({ files: { a: 0 } });
    assert.deepEqual(filesOf(await sink.write(EventBatch.of([ev('b', 1)]))), {
      a: 0,
      b: Buffer.byteLength(lines('b', 1, 2)),
    });
    await sink.close();
  });

  void it('a failed write rejects with SINK_FAILED, writes nothing and leaves the position unchanged', async () => {
    const dir = await tempDir();
    const sink = new JsonlSink({ dir });
    await sink.open(undefined);
    const before = await sink.write(EventBatch.of([ev('a', 1)]));
    // A directory squatting on the file name makes the open fail (EISDIR/EEXIST), even as root.
    await mkdir(path.join(dir, 'b.jsonl'));
    const error = await isCdcError(sink.write(EventBatch.of([ev('a', 2), ev('b', 3)])), 'SINK_FAILED');
    assert.equal(error.retryable, false);
    assert.equal(await readFile(path.join(dir, 'a.jsonl'), 'utf8'), lines('a', 1, 2));
    // Nothing was written, so the sink is still consistent and usable.
    assert.deepEqual(await sink.write(EventBatch.of([])), before);
    assert.deepEqual(filesOf(await sink.write(EventBatch.of([ev('a', 2)]))), {
      a: Buffer.byteLength(lines('a', 1, 3)),
    });
    await sink.close();
  });

  void it(
    'after a write it cannot undo, the sink refuses every later write',
    { skip: !existsSync('/dev/full') && 'no /dev/full' },
    async () => {
      const dir = await tempDir();
      await writeFile(path.join(dir, 'a.jsonl'), lines('a', 0, 1));
      // /dev/full fails every write with ENOSPC and cannot be truncated: the rollback fails too.
      await symlink('/dev/full', path.join(dir, 'full.jsonl'));
      const sink = new JsonlSink({ dir });
      await sink.open({ files: { a: Buffer.byteLength(lines('a', 0, 1)), full: 0 } });
      // A full disk is LOCAL_IO (exit 1), naming the output directory and the free space there.
      const error = await isCdcError(sink.write(EventBatch.of([ev('a', 1), ev('full', 2)])), 'LOCAL_IO');
      assert.match(error.message, /no space|ENOSPC/i);
      assert.ok(error.message.includes(dir), error.message);
      assert.match(error.message, /\((\d+ bytes|[\d.]+ [KMGT]iB) free on that file system\)/);
      assert.equal(error.retryable, false);
      assert.equal(
        await readFile(path.join(dir, 'a.jsonl'), 'utf8'),
        lines('a', 0, 1),
        'the other file was rolled back',
      );
      const later = await isCdcError(sink.write(EventBatch.of([ev('a', 1)])), 'SINK_FAILED');
      assert.match(later.hint ?? '', /restart/);
      await sink.close();
    },
  );

  void it('refuses writes before open and after close, and a second open', async () => {
    const dir = await tempDir();
    const sink = new JsonlSink({ dir });
    await isCdcError(sink.write(EventBatch.of([ev('a', 1)])), 'INTERNAL');
    await sink.open(undefined);
    await isCdcError(sink.open(undefined), 'INTERNAL');
    await sink.close();
    await isCdcError(sink.write(EventBatch.of([ev('a', 1)])), 'INTERNAL');
    await sink.close(); // idempotent
  });
});
