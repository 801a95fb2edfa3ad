/**
 * An in-memory offset store for tests, faithful to the OffsetStore contract (src/offsets/store.ts):
 * atomic (a stored checkpoint is a deep copy, never changed by the caller afterwards), monotonic
 * (`commit` refuses a lower lsn with INTERNAL, `replace` does not), refusing use after `close`, with
 * failures and stalls a test can inject.
 *
 * Like `MemorySinkStore`, the stored checkpoint can outlive one store: pass `initial` (e.g. the
 * previous store's `stored`) to simulate a restart.
 */
import { CdcError } from '../../src/core/errors.ts';
import type { Checkpoint, OffsetStore } from '../../src/offsets/store.ts';
import { tryParseLsn } from '../../src/protocol/lsn.ts';
import { Stall } from './memory-sink.ts';

export class MemoryOffsetStore implements OffsetStore {
  /** Every checkpoint stored (by commit or replace), in order. */
  readonly history: Checkpoint[] = [];
  private current: Checkpoint | undefined;
  private closed = false;
  private readonly injected: CdcError[] = [];
  private stall: Stall | undefined;
  private tail: Promise<unknown> = Promise.resolve();
  private readonly waiters: { accept: (checkpoint: Checkpoint) => boolean; resolve: (c: Checkpoint) => void }[] = [];

  constructor(initial?: Checkpoint) {
    this.current = initial === undefined ? undefined : structuredClone(initial);
  }

  /** The stored checkpoint (a copy), or undefined. */
  get stored(): Checkpoint | undefined {
    return this.current === undefined ? undefined : structuredClone(this.current);
  }

  /** The next `count` commits (or replaces) reject with `error` and store nothing. */
  failNext(error = new CdcError('LOCAL_IO', 'injected offsets failure', { retryable: true }), count = 1): void {
    for (let i = 0; i < count; i++) this.injected.push(error);
  }

  /** Holds every commit from now on before it is stored, until the returned stall is released. */
  stallCommits(): Stall {
    this.stall = new Stall();
    return this.stall;
  }

  /** Resolves with the first checkpoint stored from now on (or already stored) that `accept` accepts. */
  waitFor(accept: (checkpoint: Checkpoint) => boolean): Promise<Checkpoint> {
    const current = this.stored;
    if (current !== undefined && accept(current)) return Promise.resolve(current);
    return new Promise((resolve) => this.waiters.push({ accept, resolve }));
  }

  load(): Promise<Checkpoint | undefined> {
    return this.serialized(() => {
      this.assertOpen();
      return Promise.resolve(this.stored);
    });
  }

  commit(checkpoint: Checkpoint): Promise<void> {
    return this.serialized(() => this.store(checkpoint, false));
  }

  replace(checkpoint: Checkpoint): Promise<void> {
    return this.serialized(() => this.store(checkpoint, true));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stall?.abort(new CdcError('INTERNAL', 'the memory offset store was closed while a commit was stalled'));
    await this.tail;
  }

  private serialized<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.tail.then(fn);
    this.tail = run.catch(() => undefined);
    return run;
  }

  private async store(checkpoint: Checkpoint, rewind: boolean): Promise<void> {
    this.assertOpen();
    const lsn = tryParseLsn(checkpoint.lsn);
    if (lsn === undefined)
      throw new CdcError('INTERNAL', `refusing to store a checkpoint with lsn "${checkpoint.lsn}"`);
    // Copied before any wait: what is stored is what was passed, whatever the caller does next.
    const copy = structuredClone(checkpoint);
    if (this.stall !== undefined) await this.stall.pass();
    this.assertOpen();
    const injected = this.injected.shift();
    if (injected !== undefined) throw injected;
    const storedLsn = this.current === undefined ? undefined : tryParseLsn(this.current.lsn);
    if (!rewind && storedLsn !== undefined && lsn < storedLsn) {
      throw new CdcError(
        'INTERNAL',
        `refusing to move the checkpoint back from ${this.current?.lsn} to ${checkpoint.lsn}`,
      );
    }
    this.current = copy;
    this.history.push(structuredClone(copy));
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      const waiter = this.waiters[i];
      if (waiter !== undefined && waiter.accept(copy)) {
        this.waiters.splice(i, 1);
        waiter.resolve(structuredClone(copy));
      }
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new CdcError('INTERNAL', 'the memory offset store is closed');
  }
}
