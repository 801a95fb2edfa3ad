/**
 * The sink of a library capture: the caller's async handler. A batch is handed to the handler and
 * the write resolves when the handler's promise resolves, so the engine stores the checkpoint and
 * acknowledges the batch to PostgreSQL only after that (the acknowledgement rule, ARCHITECTURE.md).
 *
 * At least once: `open` accepts any position (the position is `{}`), and after a restart the
 * events since the last stored checkpoint are handed over again, with the same ids.
 */
import { CdcError } from '../core/errors.ts';
import type { EventBatch } from '../sinks/batch.ts';
import type { Sink, SinkPosition } from '../sinks/contract.ts';

/** What happens after the handler rejected: start again from the checkpoint, or end the capture. */
export type HandlerErrorAction = 'retry' | 'stop';

/** A handler's failure, as the capture reports it: `cause` is what the handler threw. */
export class HandlerError extends CdcError {
  constructor(message: string, retry: boolean, cause: unknown) {
    // The caller's decision is final: passed as `cause` to CdcError, a SQLSTATE or errno inside the
    // handler's error would override it (core/error-policy.ts reads the cause first).
    super('SINK_FAILED', message, {
      retryable: retry,
      hint: retry
        ? 'the batch is handed to the handler again from the last checkpoint after a backoff'
        : 'nothing after the last checkpoint was acknowledged; the next capture hands it over again',
    });
    this.name = 'HandlerError';
    Object.defineProperty(this, 'cause', { value: cause, writable: true, configurable: true, enumerable: false });
  }
}

const NO_POSITION: SinkPosition = Object.freeze({});

export class HandlerSink implements Sink {
  readonly kind = 'handler';
  private readonly deliver: (batch: EventBatch) => Promise<void>;
  private readonly decide: (error: unknown) => HandlerErrorAction;
  /** The last write in call order: the next one starts after it settled (writes take effect in call order). */
  private tail: Promise<unknown> = Promise.resolve();
  /** Set by the first rejected write: every later write is refused (the capture restarts from the checkpoint). */
  private failure: CdcError | undefined;
  private closed = false;

  constructor(deliver: (batch: EventBatch) => Promise<void>, decide: (error: unknown) => HandlerErrorAction) {
    this.deliver = deliver;
    this.decide = decide;
  }

  open(_resume: SinkPosition | undefined): Promise<void> {
    return Promise.resolve();
  }

  write(batch: EventBatch): Promise<SinkPosition> {
    if (this.closed) return Promise.reject(new CdcError('INTERNAL', 'a write after the handler sink was closed'));
    const written = this.tail.then(() => this.deliverOne(batch));
    this.tail = written.catch(() => undefined);
    return written;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.tail;
  }

  private async deliverOne(batch: EventBatch): Promise<SinkPosition> {
    // Queued behind a rejected write: it was issued expecting that one to land, so it fails too.
    if (this.failure !== undefined) throw this.failure;
    if (batch.count === 0) return NO_POSITION;
    try {
      await this.deliver(batch);
      return NO_POSITION;
    } catch (error) {
      this.failure = this.wrap(batch, error);
      throw this.failure;
    }
  }

  private wrap(batch: EventBatch, error: unknown): CdcError {
    let action: HandlerErrorAction;
    try {
      action = this.decide(error);
    } catch {
      action = 'stop';
    }
    const reason = error instanceof Error ? error.message : String(error);
    const span = batch.count === 1 ? batch.id(0) : `${batch.id(0)} .. ${batch.id(batch.count - 1)}`;
    const events = `${batch.count} event${batch.count === 1 ? '' : 's'}`;
    return new HandlerError(
      `the capture handler rejected a batch of ${events} (${span}): ${reason}`,
      action === 'retry',
      error,
    );
  }
}

const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const COMMA = 0x2c;

/** The shape every event line has, as far as lifting `op` needs it. */
interface ParsedLine {
  op?: unknown;
  value?: { op?: unknown; status?: unknown } | null;
}

/**
 * Every event of `batch`, parsed, with `op` copied to the top (library/events.ts). One JSON.parse
 * of the whole batch as an array (the slab with its newlines turned into commas: a newline never
 * occurs inside an event line). It costs about what JSON.parse line by line costs, 5-18 µs per
 * event on the 2-core test machine (bench/library-parse.ts); raw handlers skip it.
 */
export function parseBatch(batch: EventBatch): unknown[] {
  const n = batch.count;
  if (n === 0) return [];
  const size = batch.end(n - 1);
  const text = Buffer.allocUnsafe(size + 1);
  text[0] = OPEN_BRACKET;
  batch.data.copy(text, 1, 0, size);
  // Event i's newline is data[end(i) - 1], at end(i) in `text`; the last one becomes the closing bracket.
  for (let i = 0; i < n - 1; i++) text[batch.end(i)] = COMMA;
  text[size] = CLOSE_BRACKET;
  const events = JSON.parse(text.toString('utf8')) as ParsedLine[];
  for (const event of events) {
    const value = event.value;
    if (value === null || value === undefined) continue;
    if (typeof value.op === 'string') event.op = value.op;
    else if (value.status === 'BEGIN') event.op = 'begin';
    else if (value.status === 'END') event.op = 'end';
  }
  return events;
}
