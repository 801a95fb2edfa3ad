/**
 * SinkOffsetStore: the sink's checkpoints are authoritative and the offsets file mirrors them, written
 * off the delivery path. These tests use a real offsets file and an in-memory checkpoint channel.
 */
import '../../harness/tmp.ts'; // temporary files go under a per-process root, removed at exit
import { after, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { CdcError } from '../../../src/core/errors.ts';
import { createLogger } from '../../../src/core/log.ts';
import { FileOffsetStore, readCheckpoint, serializeCheckpoint } from '../../../src/offsets/file.ts';
import { SinkOffsetStore } from '../../../src/offsets/sink-store.ts';
import type { Checkpoint } from '../../../src/offsets/store.ts';
import type { SinkCheckpoints } from '../../../src/sinks/contract.ts';

const quiet = createLogger({ level: 'fatal', format: 'json' }, new Writable({ write: (_c, _e, done) => done() }));
const roots: string[] = [];
after(async () => {
  await Promise.all(roots.map((dir) => rm(dir, { recursive: true, force: true })));
});

async function offsetsPath(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-sink-store-'));
  roots.push(dir);
  return path.join(dir, 'offsets.json');
}

function checkpoint(lsn: string): Checkpoint {
  return {
    version: 2,
    systemId: '7312345678901234567',
    timeline: 1,
    database: 'shop',
    slot: 'pgcdc',
    publication: 'pgcdc',
    lsn,
    sink: {},
    updatedAt: new Date(0).toISOString(),
  };
}

/** The sink's checkpoints, kept in memory: what `store` was given last. */
class MemoryCheckpoints implements SinkCheckpoints {
  readonly where = 'memory';
  text: string | undefined;
  load(): Promise<string | undefined> {
    return Promise.resolve(this.text);
  }
  store(text: string): Promise<void> {
    this.text = text;
    return Promise.resolve();
  }
}

it('commit stores in the sink and the file follows; close leaves the file at the last checkpoint', async () => {
  const file = await offsetsPath();
  const channel = new MemoryCheckpoints();
  const store = new SinkOffsetStore(channel, await FileOffsetStore.open(file), quiet);
  assert.equal(await store.load(), undefined);
  for (let n = 1; n <= 50; n++) await store.commit(checkpoint(`0/${(n * 16).toString(16).toUpperCase()}`));
  assert.equal(channel.text, serializeCheckpoint(checkpoint('0/320')));
  await store.close();
  assert.equal((await readCheckpoint(file))?.lsn, '0/320');
});

it('a file that lags behind the sink is moved forward on load', async () => {
  const file = await offsetsPath();
  const channel = new MemoryCheckpoints();
  const first = await FileOffsetStore.open(file);
  await first.commit(checkpoint('0/10'));
  await first.close();
  channel.text = serializeCheckpoint(checkpoint('0/20'));
  const store = new SinkOffsetStore(channel, await FileOffsetStore.open(file), quiet);
  assert.equal((await store.load())?.lsn, '0/20');
  await store.close();
  assert.equal((await readCheckpoint(file))?.lsn, '0/20');
});

it('a file that cannot be written fails a later commit and close, never silently', async () => {
  const file = await offsetsPath();
  const channel = new MemoryCheckpoints();
  const store = new SinkOffsetStore(channel, await FileOffsetStore.open(file), quiet);
  await store.load();
  // The file store writes <path>.tmp and renames it: a directory in its place makes every write fail.
  await mkdir(`${file}.tmp`);
  let caught: unknown;
  try {
    // The in-memory channel resolves at once: let the file write's I/O run between commits.
    for (let n = 1; n < 100_000; n++) {
      await store.commit(checkpoint(`0/${(n * 16).toString(16)}`));
      await new Promise((resolve) => setImmediate(resolve));
    }
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof CdcError, `a commit after the failed file write must reject: ${String(caught)}`);
  await assert.rejects(store.close(), CdcError);
});
