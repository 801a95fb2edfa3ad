/** The stream loop's frame queue (src/pipeline/frame-queue.ts): first in, first out, however it grows and drains. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FrameQueue } from '../../../src/pipeline/frame-queue.ts';

const frame = (n: number): Buffer => Buffer.from([n & 0xff, (n >> 8) & 0xff]);
const number = (b: Buffer): number => (b[0] as number) + ((b[1] as number) << 8);

test('frames come out in the order they went in, across growth, partial drains and compaction', () => {
  const queue = new FrameQueue();
  assert.equal(queue.size, 0);
  let pushed = 0;
  let shifted = 0;
  // Push more than the compaction threshold, drain in uneven steps, push again while part-drained.
  for (const [push, shift] of [
    [3000, 1500],
    [10, 1200],
    [500, 800],
    [1, 11],
  ] as const) {
    for (let i = 0; i < push; i++) queue.push(frame(pushed++));
    for (let i = 0; i < shift; i++) assert.equal(number(queue.shift()), shifted++);
    assert.equal(queue.size, pushed - shifted);
  }
  assert.equal(queue.size, 0, 'every frame came out once');
  queue.push(frame(7));
  assert.equal(number(queue.shift()), 7, 'an emptied queue starts over');
});
