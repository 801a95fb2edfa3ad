/**
 * The HTTP sink's pure parts: request bodies cut from a batch's slab (both formats, contiguous and
 * gathered), request limits, lanes by topic and key, Retry-After, the backoff's bounds, the
 * signature, and the options' refusals (credentials in the URL, reserved headers).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventBatch } from '../../../src/sinks/batch.ts';
import {
  allEvents,
  eventsByLane,
  lanesOf,
  requestBody,
  requestEnd,
  TopicHashes,
} from '../../../src/sinks/http/body.ts';
import { httpOptionsSchema } from '../../../src/sinks/http/options.ts';
import { backoffMs, retryAfterMs } from '../../../src/sinks/http/request.ts';
import { signature, verifySignature } from '../../../src/sinks/http/signing.ts';

const line = (topic: string, n: number, key: string = `{"id":${n % 3}}`): string =>
  `{"id":"0/1:${n}","topic":"${topic}","key":${key},"value":{"n":${n}}}`;

const batch = EventBatch.of(
  [0, 1, 2, 3, 4].map((n) => ({
    topic: n === 2 ? 'shop.public.b' : 'shop.public.a',
    line: line(n === 2 ? 'shop.public.b' : 'shop.public.a', n),
  })),
);

test('bodies: ndjson is the lines as they are, json-array the same events in [...]', () => {
  const events = allEvents(batch.count);
  const ndjson = requestBody(batch, events, 1, 4, 'ndjson').toString();
  assert.equal(ndjson, [1, 2, 3].map((i) => `${batch.line(i)}\n`).join(''));
  const array = requestBody(batch, events, 0, 5, 'json-array').toString();
  assert.deepEqual(
    JSON.parse(array),
    [0, 1, 2, 3, 4].map((i) => JSON.parse(batch.line(i)) as unknown),
  );
  assert.equal(array, `[${[0, 1, 2, 3, 4].map((i) => batch.line(i)).join(',')}]`);
  // Gathered (a lane's events are not contiguous).
  const gathered = Uint32Array.of(0, 2, 4);
  assert.equal(
    requestBody(batch, gathered, 0, 3, 'json-array').toString(),
    `[${batch.line(0)},${batch.line(2)},${batch.line(4)}]`,
  );
  assert.equal(requestBody(batch, gathered, 1, 3, 'ndjson').toString(), `${batch.line(2)}\n${batch.line(4)}\n`);
  assert.equal(requestBody(batch, events, 3, 4, 'json-array').toString(), `[${batch.line(3)}]`);
});

test('requests end at maxEvents or maxBytes, with at least one event', () => {
  const events = allEvents(batch.count);
  assert.equal(requestEnd(batch, events, 0, 2, 1 << 20), 2);
  const size = batch.end(0) - batch.start(0);
  assert.equal(requestEnd(batch, events, 0, 100, size * 2 + 1), 2);
  assert.equal(requestEnd(batch, events, 0, 100, 1), 1, 'one larger event goes alone');
  assert.equal(requestEnd(batch, events, 4, 100, 1 << 20), 5);
});

test('lanes: the same topic and key always take the same lane; every event in one lane', () => {
  const lines = [];
  for (let n = 0; n < 60; n++)
    lines.push({ topic: 'shop.public.a', line: line('shop.public.a', n, `{"id":${n % 7}}`) });
  lines.push({ topic: 'shop.public.a', line: line('shop.public.a', 60, 'null') });
  const big = EventBatch.of(lines);
  const lanes = lanesOf(big, 4, new TopicHashes());
  for (let n = 7; n < 60; n++) assert.equal(lanes[n], lanes[n % 7], `key ${n % 7}`);
  assert.ok(new Set(lanes).size > 1, 'keys spread over lanes');
  const byLane = eventsByLane(lanes, 4);
  assert.equal(
    byLane.reduce((sum, events) => sum + events.length, 0),
    big.count,
  );
  for (const events of byLane)
    for (let k = 1; k < events.length; k++) assert.ok((events[k] as number) > (events[k - 1] as number));
});

test('Retry-After: seconds or an HTTP date, capped; backoff within its ceiling', () => {
  assert.equal(retryAfterMs('2'), 2000);
  assert.equal(retryAfterMs(undefined), undefined);
  assert.equal(retryAfterMs('soon'), undefined);
  const now = Date.parse('2025-01-01T00:00:00Z');
  assert.equal(retryAfterMs('Wed, 01 Jan 2025 00:00:30 GMT', now), 30_000);
  assert.equal(retryAfterMs('Tue, 31 Dec 2024 00:00:00 GMT', now), 0);
  assert.equal(retryAfterMs('86400'), 600_000);
  for (let attempt = 0; attempt < 40; attempt++) {
    const delay = backoffMs(attempt, 100, 5000);
    assert.ok(delay >= 0 && delay < Math.min(5000, 100 * 2 ** attempt));
  }
});

test('signature: verifies with the secret, not with another, not when stale or altered', () => {
  const body = Buffer.from('[{"id":"0/1:0"}]');
  const now = 1_700_000_000;
  const header = signature(Buffer.from('s3cret'), body, now);
  assert.match(header, /^t=1700000000,v1=[0-9a-f]{64}$/);
  assert.ok(verifySignature('s3cret', body, header, 300, now + 10));
  assert.ok(!verifySignature('other', body, header, 300, now));
  assert.ok(!verifySignature('s3cret', body, header, 300, now + 301), 'a replay past the tolerance');
  assert.ok(!verifySignature('s3cret', Buffer.from('[]'), header, 300, now));
  assert.ok(!verifySignature('s3cret', body, undefined));
});

test('options: credentials in the URL, other schemes and reserved headers are refused, without echoing the URL', () => {
  const issues = (input: Record<string, unknown>): string[] => {
    const result = httpOptionsSchema.safeParse({ kind: 'http', ...input });
    return result.success ? [] : result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  };
  const withPassword = issues({ url: 'https://hook:pw-123@example.com/x' });
  assert.equal(withPassword.length, 1);
  assert.match(withPassword[0] ?? '', /^url: must not hold credentials/);
  assert.ok(!(withPassword[0] ?? '').includes('pw-123'));
  assert.match(issues({ url: 'ftp://example.com/' })[0] ?? '', /http:\/\/ or https:\/\//);
  assert.match(issues({ url: 'https://x/', headers: { 'Idempotency-Key': 'k' } })[0] ?? '', /set by pgcdc itself/);
  assert.match(issues({ url: 'http://x/', tls: { ca: '/ca.pem' } })[0] ?? '', /^tls: applies to https/);
  assert.match(
    issues({ url: 'https://x/', ordering: { lanes: 0 } })[0] ?? '',
    /^ordering\.lanes: must be from 1 to 64/,
  );
  assert.deepEqual(issues({ url: 'https://x/', headers: { Authorization: { env: 'A' } }, ordering: { lanes: 8 } }), []);
});
