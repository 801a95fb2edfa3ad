/**
 * One POST and what its answer means for delivery:
 *
 * - 2xx: delivered.
 * - 5xx, 408 Request Timeout, 429 Too Many Requests, a timeout (no answer within timeoutMs), a
 *   connection error: retried (Retry-After, in seconds or as a date, is honoured on any of them).
 * - 409 Conflict: retried too. Under the Idempotency-Key convention (IETF httpapi draft, Stripe) it
 *   means "a request with this key is still being processed"; the receiver answers the retry with
 *   the first request's outcome once it has one. Taking 409 as success could acknowledge a batch
 *   whose first attempt then fails on the receiver's side.
 * - any other status (3xx, 4xx): final; the sink stops with the status and the answer's first bytes.
 */
import http from 'node:http';
import https from 'node:https';
import { CdcError } from '../../core/errors.ts';
import { redact, type Endpoint } from './endpoint.ts';

export type Outcome =
  | { readonly kind: 'delivered' }
  | { readonly kind: 'retry'; readonly reason: string; readonly retryAfterMs: number | undefined }
  | { readonly kind: 'final'; readonly error: CdcError };

/** Bytes of an answer's body kept for the error line. */
const SNIPPET_BYTES = 200;
/** The longest Retry-After honoured: a larger one (a day, a misconfigured date) waits this long. */
const MAX_RETRY_AFTER_MS = 10 * 60_000;

/** Retry-After as milliseconds from now: delay-seconds or an HTTP date; undefined when absent or unreadable. */
export function retryAfterMs(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  let ms: number;
  if (/^\d+$/.test(text)) ms = Number(text) * 1000;
  else {
    const at = Date.parse(text);
    if (Number.isNaN(at)) return undefined;
    ms = Math.max(0, at - now);
  }
  return Math.min(ms, MAX_RETRY_AFTER_MS);
}

/** Full jitter: a uniformly random delay up to min(maxMs, initialMs * 2^attempt). */
export function backoffMs(attempt: number, initialMs: number, maxMs: number): number {
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
  return Math.floor(Math.random() * ceiling);
}

function retryable(status: number): boolean {
  return status >= 500 || status === 408 || status === 409 || status === 429;
}

const CREDENTIALS = 'sink.headers, sink.secret';
/** Some endpoints (API gateways) answer a refused client certificate with 403 (nginx: 400, its answer says why). */
const CREDENTIALS_TLS = `${CREDENTIALS}, sink.tls.cert and key`;

function finalError(endpoint: Endpoint, status: number, statusText: string, snippet: string): CdcError {
  const answered = snippet === '' ? 'an empty answer' : `answer: ${snippet}`;
  const hint =
    status === 401 || status === 403
      ? `check the credentials the endpoint expects (${endpoint.https ? CREDENTIALS_TLS : CREDENTIALS})`
      : status === 413
        ? 'lower sink.maxBytes and sink.maxEvents, or raise the endpoint body limit'
        : status >= 300 && status < 400
          ? 'redirects are not followed: set sink.url to the final location'
          : 'fix the endpoint (or what it refuses) and start pgcdc again: ' +
            'the events after the last checkpoint are sent again';
  return new CdcError(
    'SINK_FAILED',
    `the HTTP endpoint ${endpoint.origin} refused a request with ${status} ${statusText} (${answered})`,
    { retryable: false, hint: `${hint}; nothing it refused was acknowledged to PostgreSQL` },
  );
}

/**
 * POSTs `body` with `headers` and resolves with what the answer means (never rejects). A request
 * without an answer after `timeoutMs` is abandoned (its socket destroyed) and retried.
 */
export function postOnce(
  endpoint: Endpoint,
  body: Buffer,
  headers: http.OutgoingHttpHeaders,
  timeoutMs: number,
): Promise<Outcome> {
  return new Promise((resolve) => {
    let settled = false;
    const settle = (outcome: Outcome): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(outcome);
    };
    const send = endpoint.https ? https.request : http.request;
    const request = send(endpoint.url, {
      method: 'POST',
      agent: endpoint.agent,
      headers: { ...headers, 'Content-Length': body.length },
    });
    const timer = setTimeout(() => {
      settle({ kind: 'retry', reason: `no answer within ${timeoutMs} ms`, retryAfterMs: undefined });
      request.destroy();
    }, timeoutMs);
    request.on('error', (error: NodeJS.ErrnoException) =>
      settle({ kind: 'retry', reason: error.code ?? error.message, retryAfterMs: undefined }),
    );
    request.on('response', (response) => {
      const status = response.statusCode ?? 0;
      if (status >= 200 && status < 300) {
        // Read the answer to its end so the socket goes back to the agent for the next request.
        response.resume();
        response.on('end', () => settle({ kind: 'delivered' }));
        response.on('error', () => settle({ kind: 'delivered' }));
        return;
      }
      const chunks: Buffer[] = [];
      let kept = 0;
      response.on('data', (chunk: Buffer) => {
        if (kept < SNIPPET_BYTES) {
          chunks.push(chunk);
          kept += chunk.length;
        }
      });
      const done = (): void => {
        if (retryable(status)) {
          settle({
            kind: 'retry',
            reason: `${status} ${response.statusMessage ?? ''}`.trim(),
            retryAfterMs: retryAfterMs(response.headers['retry-after']),
          });
          return;
        }
        const text = Buffer.concat(chunks).subarray(0, SNIPPET_BYTES).toString('utf8');
        const snippet = redact(text.replace(/\uFFFD+$/, ''), endpoint.secrets)
          .replace(/\s+/g, ' ')
          .trim();
        settle({ kind: 'final', error: finalError(endpoint, status, response.statusMessage ?? '', snippet) });
      };
      response.on('end', done);
      response.on('error', done);
    });
    request.end(body);
  });
}
