/**
 * The HTTP webhook sink: POSTs the events to a URL in requests of at most `maxEvents` events and
 * `maxBytes` bytes, as a JSON array or NDJSON, each event's line sent as it is (never parsed).
 *
 * - At-least-once: `write` resolves when the endpoint answered 2xx to every request carrying an
 *   event of this batch; writes run one after another, so also for every earlier batch. After a
 *   crash the events after the last checkpoint are sent again, with the same event ids and the same
 *   Idempotency-Key (`<first event id>..<last event id>`) when the requests are cut the same way.
 * - Order: `strict` sends one request at a time, in commit order. `{ lanes: N }` runs N requests
 *   at once, each event in the lane of its topic and key's hash: a row's changes stay in order,
 *   different rows' changes may overtake each other.
 * - Transient faults (5xx, 408, 409, 429, timeouts, connection errors) are retried inside the sink
 *   with exponential backoff and full jitter, for as long as they last: `write` does not resolve
 *   meanwhile, so Delivery's high-water mark pauses reading from PostgreSQL and nothing is
 *   acknowledged. Any other answer (3xx, 4xx) fails the write with SINK_FAILED, not retryable, and
 *   the sink refuses every later write.
 * - `close` stops the retries: a write still waiting for the endpoint rejects (retryable), nothing
 *   of it acknowledged.
 */
import type { OutgoingHttpHeaders } from 'node:http';
import { CdcError } from '../../core/errors.ts';
import type { Logger } from '../../core/log.ts';
import type { EventBatch, Sink, SinkPosition } from '../contract.ts';
import { allEvents, eventsByLane, lanesOf, requestBody, requestEnd, TopicHashes } from './body.ts';
import { checkReachable, openEndpoint, type Endpoint } from './endpoint.ts';
import { laneCount, type HttpOptions } from './options.ts';
import { backoffMs, postOnce } from './request.ts';
import { SIGNATURE_HEADER, signature } from './signing.ts';

const CONTENT_TYPES = { 'json-array': 'application/json', ndjson: 'application/x-ndjson' } as const;
/** The connection check at start gives up after this long (or timeoutMs, when shorter). */
const CHECK_TIMEOUT_MS = 10_000;

export class HttpSink implements Sink {
  readonly kind = 'http';
  private readonly endpoint: Endpoint;
  private readonly lanes: number;
  private readonly topicHashes = new TopicHashes();
  private tail: Promise<unknown> = Promise.resolve();
  private broken: CdcError | undefined;
  private closed = false;
  private checked = false;
  /** Wakes the retry pauses when the sink closes. */
  private readonly sleepers = new Set<() => void>();

  constructor(
    private readonly options: HttpOptions,
    private readonly log?: Logger,
  ) {
    this.endpoint = openEndpoint(options);
    this.lanes = laneCount(options);
  }

  /** Where events go, for messages: scheme://host:port (never the path or query, which may hold a token). */
  get origin(): string {
    return this.endpoint.origin;
  }

  /** The connection check, before the slot is used: one clear line for an endpoint that is not there. */
  async prepareTopics(_topics: readonly string[]): Promise<void> {
    await this.checkOnce();
  }

  async open(_resume: SinkPosition | undefined): Promise<void> {
    try {
      await this.checkOnce();
    } catch (error) {
      // Nothing else closes a sink whose open failed.
      await this.close();
      throw error;
    }
  }

  write(batch: EventBatch): Promise<SinkPosition> {
    if (this.closed) return Promise.reject(new CdcError('INTERNAL', 'write after close on the HTTP sink'));
    const run = this.tail.then(async () => {
      if (this.broken) throw this.broken;
      await this.deliver(batch);
      return {};
    });
    this.tail = run.catch(() => undefined);
    return run;
  }

  async close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      for (const wake of this.sleepers) wake();
    }
    await this.tail;
    this.endpoint.agent.destroy();
  }

  private async checkOnce(): Promise<void> {
    if (this.checked) return;
    await checkReachable(this.endpoint, Math.min(this.options.timeoutMs, CHECK_TIMEOUT_MS));
    this.checked = true;
  }

  private async deliver(batch: EventBatch): Promise<void> {
    if (batch.count === 0) return;
    if (this.lanes === 1) {
      await this.deliverLane(batch, allEvents(batch.count));
      return;
    }
    const lanes = eventsByLane(lanesOf(batch, this.lanes, this.topicHashes), this.lanes);
    // Every lane settles before the write does: nothing of this batch is still in flight once it rejected.
    const results = await Promise.allSettled(lanes.map((events) => this.deliverLane(batch, events)));
    for (const result of results) if (result.status === 'rejected') throw this.broken ?? result.reason;
  }

  /** Sends `events` of `batch` (one lane's, in order) request after request. */
  private async deliverLane(batch: EventBatch, events: Uint32Array): Promise<void> {
    const { maxEvents, maxBytes, format } = this.options;
    for (let from = 0; from < events.length;) {
      const to = requestEnd(batch, events, from, maxEvents, maxBytes);
      const body = requestBody(batch, events, from, to, format);
      const key = `${batch.id(events[from] as number)}..${batch.id(events[to - 1] as number)}`;
      await this.post(body, key, to - from);
      from = to;
    }
  }

  /** POSTs one request until the endpoint accepts it, refuses it for good, or the sink closes. */
  private async post(body: Buffer, idempotencyKey: string, events: number): Promise<void> {
    const headers: OutgoingHttpHeaders = {
      ...this.endpoint.headers,
      'Content-Type': CONTENT_TYPES[this.options.format],
      'Idempotency-Key': idempotencyKey,
      'X-Pgcdc-Events': events,
    };
    const secret = this.endpoint.secret;
    const failingSince = Date.now();
    for (let attempt = 0; ; attempt++) {
      if (this.broken) throw this.broken;
      // Signed again on every attempt: the timestamp says when this attempt was sent.
      if (secret !== undefined) headers[SIGNATURE_HEADER] = signature(secret, body, Math.floor(Date.now() / 1000));
      const outcome = await postOnce(this.endpoint, body, headers, this.options.timeoutMs);
      if (outcome.kind === 'delivered') {
        if (attempt > 0)
          this.log?.info(
            { endpoint: this.origin, attempts: attempt + 1, failingMs: Date.now() - failingSince },
            'the HTTP endpoint accepts requests again',
          );
        return;
      }
      if (outcome.kind === 'final') {
        this.broken ??= outcome.error;
        throw this.broken;
      }
      if (this.closed)
        throw new CdcError(
          'SINK_FAILED',
          `the HTTP sink closed while ${this.origin} did not accept a request (${outcome.reason})`,
          { retryable: true, hint: 'nothing it did not accept was acknowledged; it is sent again on the next start' },
        );
      const delayMs =
        outcome.retryAfterMs ?? backoffMs(attempt, this.options.retry.initialMs, this.options.retry.maxMs);
      this.log?.warn(
        {
          endpoint: this.origin,
          reason: outcome.reason,
          attempt: attempt + 1,
          delayMs,
          ...(outcome.retryAfterMs === undefined ? {} : { retryAfterMs: outcome.retryAfterMs }),
          idempotencyKey,
        },
        'the HTTP endpoint did not accept a request: retrying (reading from PostgreSQL pauses meanwhile)',
      );
      await this.pause(delayMs);
    }
  }

  /** Waits `ms`, or less when the sink closes. */
  private pause(ms: number): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.sleepers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.sleepers.add(wake);
    });
  }
}
