import '../../harness/tmp.ts'; // temporary files go under a per-process root, removed at exit
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ToastStore } from '../../../src/source/toast-store.ts';

const key = (id: number): string => ToastStore.key('public.docs', JSON.stringify([String(id)]));

test('a reopened store is exactly the state at the stored checkpoint: never newer, never older', async () => {
  const file = path.join(await mkdtemp(path.join(tmpdir(), 'pgcdc-toast-store-')), 'offsets.json.toast');
  let store = await ToastStore.open(file, 1 << 20, undefined);
  store.put(key(1), { body: 'v1' });
  store.put(key(2), { body: 'w1' });
  store.commit(100);
  await store.persist(100); // the checkpoint at 100 is stored after this
  store.put(key(1), { body: 'v2' });
  store.delete(key(2));
  store.commit(200);
  await store.persist(200); // ... but the checkpoint at 200 never is (crash)
  store.put(key(1), { body: 'v3' });
  store.commit(300); // committed, never persisted

  store = await ToastStore.open(file, 1 << 20, 100);
  assert.deepEqual(store.get(key(1)), { body: 'v1' });
  assert.deepEqual(store.get(key(2)), { body: 'w1' });
  // Reopening compacted the journal: the lines past the checkpoint are gone for good.
  store = await ToastStore.open(file, 1 << 20, 200);
  assert.deepEqual(store.get(key(1)), { body: 'v1' });
});

test('a torn last line is ignored; deletes, truncates and the size bound apply', async () => {
  const file = path.join(await mkdtemp(path.join(tmpdir(), 'pgcdc-toast-store-')), 'o.toast');
  let store = await ToastStore.open(file, 200, undefined);
  store.put(key(1), { body: 'a'.repeat(60) });
  store.put(key(2), { body: 'b'.repeat(60) });
  store.commit(10);
  assert.equal(store.get(key(1)), undefined, 'the least recently used row was evicted');
  store.truncate('public.docs');
  assert.equal(store.get(key(2)), undefined);
  store.put(key(3), { body: 'c' });
  store.commit(20);
  await store.persist(20);
  await appendFile(file, '{"lsn":30,"ops":[["p"');
  store = await ToastStore.open(file, 200, 40);
  assert.deepEqual(store.get(key(3)), { body: 'c' });
  assert.equal(store.size.rows, 1);
  assert.doesNotMatch(await readFile(file, 'utf8'), /"lsn":30/);
});
