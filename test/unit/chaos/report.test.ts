/**
 * The chaos runner's arithmetic: the seeded generator repeats its moments for a seed, and the
 * recovery percentiles are nearest-rank over what was measured.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { seeded } from '../../chaos/scenarios.ts';
import { percentile, spread } from '../../chaos/report.ts';

test('the same seed draws the same numbers, another seed others, all in [0, 1)', () => {
  const draw = (seed: number): number[] => {
    const rng = seeded(seed);
    return Array.from({ length: 100 }, () => rng());
  };
  assert.deepEqual(draw(42), draw(42));
  assert.notDeepEqual(draw(42), draw(43));
  assert.ok(draw(7).every((x) => x >= 0 && x < 1));
});

test('percentiles are nearest-rank; none of an empty list', () => {
  const values = [5, 1, 4, 2, 3, 10, 9, 8, 7, 6];
  assert.equal(percentile(values, 50), 5);
  assert.equal(percentile(values, 95), 10);
  assert.equal(percentile(values, 100), 10);
  assert.equal(percentile([3], 95), 3);
  assert.deepEqual(spread([]), { p50: undefined, p95: undefined, max: undefined });
  assert.deepEqual(spread([100, 200]), { p50: 100, p95: 200, max: 200 });
});
