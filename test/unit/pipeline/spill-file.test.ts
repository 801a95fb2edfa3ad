/**
 * The spill file of a streamed transaction: framing round trip across read chunks, records larger
 * than a chunk, and dropping an aborted subtransaction (with what is nested in it).
 */
import '../../harness/tmp.ts'; // temporary files go under a per-process root, removed at exit
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { readSpill, SpillFile } from '../../../src/pipeline/spill-file.ts';

/** A fake xid-prefixed message: type byte, Int32 xid, then `size` bytes of a pattern. */
function message(xid: number, size: number, seed: number): Buffer {
  const buf = Buffer.alloc(5 + size);
  buf[0] = 0x49;
  buf.writeUInt32BE(xid, 1);
  for (let i = 0; i < size; i++) buf[5 + i] = (seed + i) & 0xff;
  return buf;
}

async function readAll(file: string): Promise<{ walStart: number; data: Buffer }[]> {
  const out: { walStart: number; data: Buffer }[] = [];
  for await (const record of readSpill(file)) out.push({ walStart: record.walStart, data: Buffer.from(record.data) });
  return out;
}

async function spillFile(): Promise<SpillFile> {
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-spill-'));
  return new SpillFile(path.join(dir, '7.pgoutput'));
}

test('records read back in order, byte for byte, across chunk boundaries and past the write buffer', async () => {
  const file = await spillFile();
  const written: { walStart: number; data: Buffer }[] = [];
  // Sizes straddle the 1 MiB read chunk and write buffer many times, and include huge records.
  const sizes = [0, 1, 100, 70_000, 1024 * 1024 - 17, 3 * 1024 * 1024, 5, 999_999];
  for (let i = 0; i < 400; i++) {
    const data = message(7, sizes[i % sizes.length] ?? 0, i);
    const walStart = 0x1_0000_0000 * 3 + i * 1000; // beyond 32 bits: the header keeps all 53
    file.append(7, walStart, data);
    if (i % 97 === 0) file.flush();
    // Keep this test's memory small: the first 60 are compared in full, the rest counted.
    if (i < 60) written.push({ walStart, data });
  }
  file.close();
  const read = await readAll(file.path);
  assert.equal(read.length, 400);
  for (let i = 0; i < written.length; i++) {
    assert.equal(read[i]?.walStart, written[i]?.walStart, `walStart of record ${i}`);
    assert.ok(read[i]?.data.equals(written[i]?.data ?? Buffer.alloc(0)), `data of record ${i}`);
  }
  file.remove();
  assert.equal(existsSync(file.path), false);
});

test('dropping a subtransaction truncates at its first record, taking nested subtransactions with it', async () => {
  const file = await spillFile();
  const top = 7;
  file.append(top, 1, message(top, 10, 1));
  file.append(10, 2, message(10, 10, 2)); // subtransaction 10, released later: survives
  file.append(top, 3, message(top, 10, 3));
  file.append(11, 4, message(11, 2_000_000, 4)); // subtransaction 11 (bigger than the write buffer)...
  file.append(12, 5, message(12, 10, 5)); // ...with 12 nested in it
  file.append(11, 6, message(11, 10, 6));
  assert.equal(file.dropSubtransaction(99), false, 'a subtransaction with no records: nothing to drop');
  assert.equal(file.dropSubtransaction(11), true);
  assert.equal(file.dropSubtransaction(12), false, 'already dropped with its parent');
  file.append(13, 7, message(13, 10, 7)); // a later subtransaction, after the rollback
  file.append(top, 8, message(top, 10, 8));
  assert.equal(file.dropSubtransaction(13), true);
  file.append(top, 9, message(top, 10, 9));
  file.close();
  assert.deepEqual(
    (await readAll(file.path)).map((r) => r.walStart),
    [1, 2, 3, 9],
  );
  file.remove();
});

test('files sharing one write buffer, flushed between turns, keep their own records', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-spill-'));
  const shared = Buffer.alloc(64); // smaller than some records: those go straight through
  const a = new SpillFile(path.join(dir, '1.pgoutput'), shared);
  const b = new SpillFile(path.join(dir, '2.pgoutput'), shared);
  for (let turn = 0; turn < 6; turn++) {
    const file = turn % 2 === 0 ? a : b;
    file.append(1, turn * 10, message(1, 10, turn));
    file.append(1, turn * 10 + 1, message(1, 100, turn));
    file.flush(); // what a Stream Stop does
  }
  a.close();
  b.close();
  assert.deepEqual(
    (await readAll(a.path)).map((r) => r.walStart),
    [0, 1, 20, 21, 40, 41],
  );
  const fromB = await readAll(b.path);
  assert.deepEqual(
    fromB.map((r) => r.walStart),
    [10, 11, 30, 31, 50, 51],
  );
  assert.ok(fromB[1]?.data.equals(message(1, 100, 1)));
});
