import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough, Writable } from 'node:stream';
import { CdcError } from '../../../src/core/errors.ts';
import { StdoutSink } from '../../../src/sinks/stdout/stdout.ts';
import { EventBatch } from '../../../src/sinks/batch.ts';

type SinkEvent = { topic: string; id: string; line: string };

function ev(n: number): SinkEvent {
  return { topic: 't', id: `0/${n}:0`, line: JSON.stringify({ n }) };
}

/** A Writable whose writes complete only when the test says so. */
class GatedWritable extends Writable {
  readonly chunks: string[] = [];
  private readonly pending: ((error?: Error | null) => void)[] = [];
  private waiter: (() => void) | undefined;

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.chunks.push(chunk.toString('utf8'));
    this.pending.push(callback);
    this.waiter?.();
  }

  /** Resolves once a chunk is waiting for completion. */
  async nextPending(): Promise<void> {
    while (this.pending.length === 0) await new Promise<void>((resolve) => (this.waiter = resolve));
  }

  complete(error?: Error): void {
    const callback = this.pending.shift();
    assert.ok(callback !== undefined, 'no pending write');
    callback(error);
  }
}

async function rejectsWith(promise: Promise<unknown>, code: string): Promise<CdcError> {
  let caught: unknown;
  await promise.then(
    () => assert.fail('expected a rejection'),
    (error: unknown) => {
      caught = error;
    },
  );
  assert.ok(caught instanceof CdcError, String(caught));
  assert.equal(caught.code, code);
  return caught;
}

void describe('StdoutSink', () => {
  void it('writes each batch as newline-terminated lines and resolves the empty position', async () => {
    const stream = new PassThrough();
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    const sink = new StdoutSink({ stream });
    assert.equal(sink.kind, 'stdout');
    await sink.open(undefined);
    assert.deepEqual(await sink.write(EventBatch.of([ev(1), ev(2)])), {});
    assert.deepEqual(await sink.write(EventBatch.of([])), {});
    assert.deepEqual(await sink.write(EventBatch.of([ev(3)])), {});
    await sink.close();
    assert.equal(Buffer.concat(chunks).toString('utf8'), '{"n":1}\n{"n":2}\n{"n":3}\n');
    assert.equal(stream.writableEnded, false, 'close does not end the stream');
  });

  void it('resolves only when the stream flushed the batch, and hands over one batch at a time', async () => {
    const stream = new GatedWritable({ highWaterMark: 1 });
    const sink = new StdoutSink({ stream });
    await sink.open(undefined);
    let firstDone = false;
    const first = sink.write(EventBatch.of([ev(1)])).then(() => (firstDone = true));
    const second = sink.write(EventBatch.of([ev(2)]));
    await stream.nextPending();
    assert.deepEqual(stream.chunks, ['{"n":1}\n']);
    await Promise.resolve();
    assert.equal(firstDone, false, 'not flushed yet');

    stream.complete();
    await first;
    await stream.nextPending();
    assert.deepEqual(stream.chunks, ['{"n":1}\n', '{"n":2}\n'], 'the second batch waited for the first');
    stream.complete();
    await second;
    await sink.close();
  });

  void it('a stream error fails the write in flight and every later one', async () => {
    const stream = new GatedWritable();
    const sink = new StdoutSink({ stream });
    await sink.open(undefined);
    const write = sink.write(EventBatch.of([ev(1)]));
    await stream.nextPending();
    const epipe = Object.assign(new Error('write EPIPE'), { code: 'EPIPE' });
    stream.complete(epipe);
    const error = await rejectsWith(write, 'SINK_FAILED');
    assert.match(error.hint ?? '', /exited/);
    await rejectsWith(sink.write(EventBatch.of([ev(2)])), 'SINK_FAILED');
    await sink.close();
  });

  void it('an error event on the stream does not crash the process', async () => {
    const stream = new PassThrough();
    const sink = new StdoutSink({ stream });
    await sink.open(undefined);
    stream.destroy(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
    await new Promise<void>((resolve) => stream.once('close', resolve));
    await rejectsWith(sink.write(EventBatch.of([ev(1)])), 'SINK_FAILED');
    await sink.close();
  });

  void it('refuses writes after close', async () => {
    const sink = new StdoutSink({ stream: new PassThrough() });
    await sink.open(undefined);
    await sink.close();
    await rejectsWith(sink.write(EventBatch.of([ev(1)])), 'INTERNAL');
  });
});
