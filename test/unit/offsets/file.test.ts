import '../../harness/tmp.ts'; // temporary files go under a per-process root, removed at exit
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { CdcError } from '../../../src/core/errors.ts';
import { FileOffsetStore, readCheckpoint } from '../../../src/offsets/file.ts';
import type { Checkpoint } from '../../../src/offsets/store.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const moduleUrl = pathToFileURL(path.join(repoRoot, 'src/offsets/file.ts')).href;

const roots: string[] = [];
after(async () => {
  await Promise.all(roots.map((dir) => rm(dir, { recursive: true, force: true })));
});

async function offsetsPath(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-offsets-'));
  roots.push(dir);
  return path.join(dir, 'offsets.json');
}

function checkpoint(lsn: string, sink: Record<string, unknown> = { files: { t: 10 } }): Checkpoint {
  return {
    version: 2,
    systemId: '7312345678901234567',
    timeline: 1,
    database: 'shop',
    slot: 'pgcdc',
    publication: 'pgcdc',
    lsn,
    sink,
    updatedAt: new Date(0).toISOString(),
  };
}

async function rejectsWith(promise: Promise<unknown>, code: string): Promise<CdcError> {
  let caught: unknown;
  await promise.then(
    () => assert.fail('expected a rejection'),
    (error: unknown) => {
      caught = error;
    },
  );
  assert.ok(caught instanceof CdcError, String(caught));
  assert.equal(caught.code, code, caught.message);
  return caught;
}

type Child = ChildProcessByStdio<Writable, Readable, null>;

/**
 * A separate pgcdc-like process that opens the store and reports `won` (then holds the lock until
 * its stdin closes) or the error code it got.
 */
function contender(file: string): { child: Child; outcome: Promise<string> } {
  const script = `
    const { FileOffsetStore } = await import(${JSON.stringify(moduleUrl)});
    try {
      const store = await FileOffsetStore.open(${JSON.stringify(file)});
      process.stdout.write('won\\n');
      process.stdin.on('end', () => { void store.close().then(() => process.exit(0)); });
      process.stdin.resume();
    } catch (error) {
      process.stdout.write(String(error.code ?? error) + '\\n');
      process.exit(0);
    }`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: repoRoot,
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout });
  const outcome = new Promise<string>((resolve, reject) => {
    lines.once('line', resolve);
    child.once('exit', (code) => reject(new Error(`contender exited (${code}) without reporting`)));
  });
  return { child, outcome };
}

async function release(child: Child): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return; // a loser exits by itself
  const exited = once(child, 'exit');
  child.stdin.end();
  await exited;
}

async function kill(child: Child): Promise<void> {
  const exited = once(child, 'exit');
  child.kill('SIGKILL');
  await exited; // node has reaped it: no zombie left
}

void describe('FileOffsetStore: checkpoints', () => {
  void it('load is undefined before the first commit; commit replaces the file atomically', async () => {
    const file = await offsetsPath();
    const store = await FileOffsetStore.open(file);
    assert.equal(await store.load(), undefined);
    await store.commit(checkpoint('0/16B3748'));
    const firstInode = (await stat(file)).ino;
    await writeFile(`${file}.tmp`, '{"left by a crash'); // must not matter
    await store.commit(checkpoint('0/16B3800', { files: { t: 20 } }));
    assert.notEqual((await stat(file)).ino, firstInode, 'replaced by rename, not rewritten in place');
    assert.deepEqual(await store.load(), checkpoint('0/16B3800', { files: { t: 20 } }));
    await store.close();

    assert.deepEqual((await readdir(path.dirname(file))).sort(), ['offsets.json'], 'no temp or lock file left');
    assert.deepEqual(await readCheckpoint(file), checkpoint('0/16B3800', { files: { t: 20 } }));
    const reopened = await FileOffsetStore.open(file);
    assert.deepEqual(await reopened.load(), checkpoint('0/16B3800', { files: { t: 20 } }));
    await reopened.close();
  });

  void it('is monotonic: compares LSNs as numbers and refuses to move back', async () => {
    const file = await offsetsPath();
    const store = await FileOffsetStore.open(file);
    await store.commit(checkpoint('0/A'));
    await store.commit(checkpoint('0/10')); // 0x10 > 0xA although "0/10" < "0/A" as strings
    await store.commit(checkpoint('0/10')); // equal is fine
    await store.commit(checkpoint('1/0')); // > 0/FFFFFFFF
    const error = await rejectsWith(store.commit(checkpoint('0/FFFFFFFF')), 'INTERNAL');
    assert.match(error.message, /back from 1\/0 to 0\/FFFFFFFF/);
    assert.equal((await store.load())?.lsn, '1/0');
    await store.close();

    // Against what an earlier process stored, without a load first.
    const next = await FileOffsetStore.open(file);
    await rejectsWith(next.commit(checkpoint('0/B')), 'INTERNAL');
    await next.commit(checkpoint('1/1'));
    await next.close();
    assert.equal((await readCheckpoint(file))?.lsn, '1/1');
  });

  void it('refuses an invalid checkpoint', async () => {
    const store = await FileOffsetStore.open(await offsetsPath());
    await rejectsWith(store.commit(checkpoint('not-an-lsn')), 'INTERNAL');
    await store.close();
  });

  for (const [name, content] of [
    ['empty', ''],
    ['garbage', '\u0000\u0000\u0000'],
    ['a torn write', JSON.stringify(checkpoint('0/1')).slice(0, 40)],
    ['a wrong shape', JSON.stringify({ ...checkpoint('0/1'), lsn: 42 })],
    ['another version', JSON.stringify({ ...checkpoint('0/1'), version: 3 })],
    ['no checksum', JSON.stringify(checkpoint('0/1'))],
    ['a wrong checksum', JSON.stringify({ ...checkpoint('0/1'), checksum: `sha256:${'0'.repeat(64)}` })],
  ] as const) {
    void it(`a file with ${name} is OFFSETS_CORRUPT with a hint`, async () => {
      const file = await offsetsPath();
      await writeFile(file, content);
      const store = await FileOffsetStore.open(file);
      const error = await rejectsWith(store.load(), 'OFFSETS_CORRUPT');
      assert.ok(error.message.includes(file));
      assert.ok((error.hint ?? '').length > 0);
      // Never overwritten silently by a commit either.
      await rejectsWith(store.commit(checkpoint('0/2')), 'OFFSETS_CORRUPT');
      await store.close();
      assert.equal(await readFile(file, 'utf8'), content);
      await rejectsWith(readCheckpoint(file), 'OFFSETS_CORRUPT');
    });
  }

  void it('every file is sealed with a checksum: a hand-edited lsn or a flipped digit is OFFSETS_CORRUPT', async () => {
    const file = await offsetsPath();
    const store = await FileOffsetStore.open(file);
    const sealed = {
      ...checkpoint('0/16B3748'),
      lastCommit: { commitLsn: '0/16B3700', endLsn: '0/16B3748', xid: 755 },
    };
    await store.commit(sealed);
    await store.close();
    const text = await readFile(file, 'utf8');
    assert.match(text, /"checksum": "sha256:[0-9a-f]{64}"/);
    assert.deepEqual(await readCheckpoint(file), sealed);
    const edits: [string, string][] = [
      ['"lsn": "0/16B3748"', '"lsn": "F/FFFFFF00"'],
      ['"lsn": "0/16B3748"', '"lsn": "0/16B3749"'],
      ['"xid": 755', '"xid": 765'],
      ['"t": 10', '"t": 11'],
    ];
    for (const [from, to] of edits) {
      assert.ok(text.includes(from), from);
      await writeFile(file, text.replace(from, to));
      const error = await rejectsWith(readCheckpoint(file), 'OFFSETS_CORRUPT');
      assert.match(error.message, /checksum does not match/);
      assert.ok(error.message.includes(file));
    }
    // The layout may change (a reformat keeps every value): still valid.
    await writeFile(file, JSON.stringify(JSON.parse(text)));
    assert.deepEqual(await readCheckpoint(file), sealed);
  });

  void it('a version 1 file (before checksums) is accepted once and rewritten sealed at load', async () => {
    const file = await offsetsPath();
    const { version: _version, ...fields } = checkpoint('0/16B3748');
    await writeFile(file, JSON.stringify({ version: 1, ...fields }));
    const store = await FileOffsetStore.open(file);
    assert.deepEqual(await store.load(), checkpoint('0/16B3748'));
    assert.equal(store.upgradedFrom, 1);
    await store.close();
    const text = await readFile(file, 'utf8');
    assert.match(text, /"version": 2[\s\S]*"checksum": "sha256:/);
    const again = await FileOffsetStore.open(file);
    assert.deepEqual(await again.load(), checkpoint('0/16B3748'));
    assert.equal(again.upgradedFrom, undefined);
    await again.close();
  });

  void it('refuses use after close; close is idempotent and removes the lock', async () => {
    const file = await offsetsPath();
    const store = await FileOffsetStore.open(file);
    await store.close();
    await store.close();
    await rejectsWith(store.commit(checkpoint('0/1')), 'INTERNAL');
    await rejectsWith(store.load(), 'INTERNAL');
    assert.deepEqual(await readdir(path.dirname(file)), []);
  });
});

void describe('FileOffsetStore: single writer', () => {
  void it('fails at once while another live process holds the lock, succeeds once it is released', async () => {
    const file = await offsetsPath();
    const holder = contender(file);
    assert.equal(await holder.outcome, 'won');
    const error = await rejectsWith(FileOffsetStore.open(file), 'OFFSETS_LOCKED');
    assert.match(
      error.message,
      new RegExp(`offsets file .*offsets\\.json is in use by another pgcdc process \\(pid ${holder.child.pid}\\)`),
    );
    assert.ok((error.hint ?? '').length > 0);
    await release(holder.child);
    const store = await FileOffsetStore.open(file);
    await store.close();
  });

  void it('takes over the lock of a SIGKILLed process', async () => {
    const file = await offsetsPath();
    const holder = contender(file);
    assert.equal(await holder.outcome, 'won');
    await kill(holder.child);
    assert.match(
      await readFile(`${file}.lock`, 'utf8'),
      new RegExp(`"pid":${holder.child.pid}`),
      'the stale lock is still there',
    );
    const store = await FileOffsetStore.open(file);
    assert.match(await readFile(`${file}.lock`, 'utf8'), new RegExp(`"pid":${process.pid}`));
    await store.commit(checkpoint('0/1'));
    await store.close();
  });

  void it('concurrent opens in one process: exactly one wins, with or without a stale lock', async () => {
    const file = await offsetsPath();
    const race = async (n: number): Promise<void> => {
      const results = await Promise.allSettled(Array.from({ length: n }, () => FileOffsetStore.open(file)));
      const won = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
      assert.equal(won.length, 1);
      for (const r of results) {
        if (r.status === 'rejected')
          assert.ok(r.reason instanceof CdcError && r.reason.code === 'OFFSETS_LOCKED', String(r.reason));
      }
      await Promise.all(won.map((s) => s.close()));
    };
    await race(2);
    const dead = contender(file);
    assert.equal(await dead.outcome, 'won');
    await kill(dead.child);
    await race(5);
  });

  void it('processes racing to take over a stale lock: exactly one wins', async () => {
    const file = await offsetsPath();
    const dead = contender(file);
    assert.equal(await dead.outcome, 'won');
    await kill(dead.child);

    const racers = Array.from({ length: 4 }, () => contender(file));
    const outcomes = await Promise.all(racers.map((r) => r.outcome));
    assert.equal(outcomes.filter((o) => o === 'won').length, 1, outcomes.join(','));
    assert.equal(outcomes.filter((o) => o === 'OFFSETS_LOCKED').length, 3, outcomes.join(','));
    await Promise.all(racers.map((r) => release(r.child)));
    assert.deepEqual(await readdir(path.dirname(file)), [], 'the winner removed its lock, nobody left debris');
  });

  void it('takes over a lock with garbage content or a reused pid, not one from another host', async () => {
    const file = await offsetsPath();
    const lock = `${file}.lock`;
    await writeFile(lock, 'not a lock');
    await (await FileOffsetStore.open(file)).close();

    // A breaker left by a process killed while it was taking over a stale lock.
    await writeFile(lock, 'not a lock');
    await writeFile(
      `${lock}.break`,
      JSON.stringify({ pid: process.pid, host: hostname(), startTime: '1', nonce: 'x' }),
    );
    await (await FileOffsetStore.open(file)).close();
    assert.deepEqual(await readdir(path.dirname(file)), []);

    // Our own pid, but another process start time: the pid was reused since the lock was taken.
    await writeFile(lock, JSON.stringify({ pid: process.pid, host: hostname(), startTime: '1', nonce: 'x' }));
    await (await FileOffsetStore.open(file)).close();

    await writeFile(lock, JSON.stringify({ pid: 1, host: 'elsewhere.example', startTime: null, nonce: 'x' }));
    const error = await rejectsWith(FileOffsetStore.open(file), 'OFFSETS_LOCKED');
    assert.match(error.message, /pid 1 on elsewhere\.example/);
    assert.match(await readFile(lock, 'utf8'), /elsewhere/, 'left alone');
  });
});
