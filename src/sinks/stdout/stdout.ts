/**
 * The stdout sink: every event as one JSON line on a stream (process.stdout by default), for
 * piping pgcdc into other tools.
 */
import type { Writable } from 'node:stream';
import { CdcError } from '../../core/errors.ts';
import type { EventBatch, Sink, SinkPosition } from '../contract.ts';

/**
 * Writes lines to a Writable with backpressure.
 *
 * - `write(batch)` hands the whole batch to the stream as one chunk and resolves, with the empty
 *   position `{}`, when the stream's write callback reports it flushed to the underlying
 *   resource. Writes are serialized, so at most one batch sits in the stream's buffer: a slow
 *   reader slows pgcdc down instead of growing memory.
 * - At-least-once: a stream has no position to restore, so after a restart the events after the
 *   last checkpoint are written again; consumers deduplicate on the event `id`.
 * - "Flushed" is as durable as a stream gets: bytes handed to the kernel (pipe, file, TTY). A
 *   reader that dies before reading them loses them; nothing here can know.
 * - A stream error (EPIPE when the reader exits...) fails the in-flight write and every later one.
 * - `close()` waits for writes in flight and does not end the stream: its owner does that (ending
 *   process.stdout would break later log output).
 */
export class StdoutSink implements Sink {
  readonly kind = 'stdout';
  /** Nothing of a batch is kept once its write resolved. */
  readonly releasesBatches = true;
  private readonly stream: Writable;
  private failure: Error | undefined;
  private closed = false;
  private tail: Promise<unknown> = Promise.resolve();
  private readonly onError = (error: Error): void => {
    this.failure ??= error;
  };

  constructor(options: { stream?: Writable } = {}) {
    this.stream = options.stream ?? process.stdout;
    // Without a listener an 'error' (EPIPE) would crash the process instead of failing a write.
    this.stream.on('error', this.onError);
  }

  open(_resume: SinkPosition | undefined): Promise<void> {
    return Promise.resolve();
  }

  write(batch: EventBatch): Promise<SinkPosition> {
    const run = this.tail.then(() => this.writeNow(batch));
    this.tail = run.catch(() => undefined);
    return run;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.tail;
    // A failed stream still emits its 'error' after the failed write's callback: keep swallowing
    // it, or it would crash the process after close.
    if (this.failure === undefined && !this.stream.destroyed) this.stream.off('error', this.onError);
  }

  private writeNow(batch: EventBatch): Promise<SinkPosition> {
    if (this.closed) return Promise.reject(new CdcError('INTERNAL', 'StdoutSink.write called after close'));
    if (this.failure !== undefined) return Promise.reject(streamFailed(this.failure));
    if (batch.count === 0) return Promise.resolve({});
    // The batch is already the lines in commit order, newline-terminated.
    return new Promise<SinkPosition>((resolve, reject) => {
      this.stream.write(batch.data, (error?: Error | null) => {
        if (error !== undefined && error !== null) {
          this.failure ??= error;
          reject(streamFailed(error));
        } else {
          resolve({});
        }
      });
    });
  }
}

function streamFailed(error: Error): CdcError {
  const code = 'code' in error ? error.code : undefined;
  return new CdcError('SINK_FAILED', `cannot write events to the output stream: ${error.message}`, {
    hint: code === 'EPIPE' ? "the program reading pgcdc's output exited; restart both" : undefined,
    cause: error,
  });
}
