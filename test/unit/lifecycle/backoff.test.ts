import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Backoff } from '../../../src/lifecycle/backoff.ts';

const unit = fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true });

test('full jitter: attempt n waits within [0, min(cap, initial x 2^n)], never past the cap', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 10_000 }),
      fc.integer({ min: 1, max: 100_000 }),
      fc.array(unit, { minLength: 1, maxLength: 80 }),
      (initial, extra, draws) => {
        const max = initial + extra;
        let i = 0;
        const backoff = new Backoff({ initialDelayMs: initial, maxDelayMs: max, jitter: 'full' }, () => draws[i] ?? 0);
        for (i = 0; i < draws.length; i++) {
          const delay = backoff.next();
          assert.ok(Number.isInteger(delay));
          assert.ok(delay >= 0 && delay <= Math.min(max, initial * 2 ** i), `attempt ${i}: ${delay}`);
        }
      },
    ),
  );
});

test('full jitter: the random draw scales the doubled delay, and it reaches the cap', () => {
  const top = new Backoff({ initialDelayMs: 100, maxDelayMs: 1000, jitter: 'full' }, () => 0.999999);
  assert.deepEqual(
    Array.from({ length: 6 }, () => top.next()),
    [100, 200, 400, 800, 1000, 1000],
  );
  const half = new Backoff({ initialDelayMs: 100, maxDelayMs: 1000, jitter: 'full' }, () => 0.5);
  assert.deepEqual(
    Array.from({ length: 3 }, () => half.next()),
    [50, 100, 200],
  );
  const zero = new Backoff({ initialDelayMs: 100, maxDelayMs: 1000, jitter: 'full' }, () => 0);
  assert.equal(zero.next(), 0);
});

test('decorrelated jitter: each delay within [initial, min(cap, 3 x previous)]', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 10_000 }),
      fc.integer({ min: 0, max: 100_000 }),
      fc.array(unit, { minLength: 1, maxLength: 80 }),
      (initial, extra, draws) => {
        const max = initial + extra;
        let i = 0;
        const backoff = new Backoff(
          { initialDelayMs: initial, maxDelayMs: max, jitter: 'decorrelated' },
          () => draws[i] ?? 0,
        );
        let previous = initial;
        for (i = 0; i < draws.length; i++) {
          const delay = backoff.next();
          // Rounded to whole milliseconds (the next ceiling is 3 x the unrounded delay): a little slack.
          assert.ok(delay >= initial - 0.5 && delay <= Math.min(max, previous * 3) + 2, `attempt ${i}: ${delay}`);
          previous = Math.max(initial, delay);
        }
      },
    ),
  );
});

test('a reset starts the schedule again from the first delay', () => {
  const backoff = new Backoff({ initialDelayMs: 100, maxDelayMs: 10_000, jitter: 'full' }, () => 0.999999);
  for (let i = 0; i < 5; i++) backoff.next();
  assert.equal(backoff.attempts, 5);
  backoff.reset();
  assert.equal(backoff.attempts, 0);
  assert.equal(backoff.next(), 100);
});

test('a long outage never overflows: the doubling stops at the cap', () => {
  const backoff = new Backoff({ initialDelayMs: 1, maxDelayMs: 86_400_000, jitter: 'full' }, () => 0.999999);
  let last = 0;
  for (let i = 0; i < 5000; i++) last = backoff.next();
  assert.equal(last, 86_399_914);
});
