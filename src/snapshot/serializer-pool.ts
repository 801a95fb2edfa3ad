/**
 * Serializer threads for the initial snapshot (snapshot/serializer-thread.ts): chunks of COPY text
 * go out, their event lines come back, so the main thread only reads COPY, writes and checkpoints.
 *
 * Contracts:
 * - `serialize` resolves with the chunk's lines, byte for byte what initial.ts writes on the main
 *   thread for the same chunk, ids and "last" marker included. The caller keeps the order: jobs
 *   may finish in any order across threads.
 * - The chunk's bytes are moved to the thread (the caller must not read `data` afterwards).
 * - A thread that fails or exits fails every job it holds, and the pool: later jobs reject too.
 * - `close` ends the threads; jobs still running then reject.
 */
import { Worker } from 'node:worker_threads';
import { CdcError } from '../core/errors.ts';
import type { TopicNaming } from '../envelope/topics.ts';
import type { PgType, ValueOptions } from '../source/values.ts';
import type { BackfillTable } from './query.ts';

/** What every thread is started with (workerData): plain data only. */
export interface SerializerSetup {
  readonly types: readonly (readonly [number, PgType])[];
  readonly values: ValueOptions;
  /** Without `shaping` (a class): a snapshot with shaping rules serializes on the main thread. */
  readonly naming: TopicNaming;
  /** The position read events stand at (the slot's consistent point) and its text. */
  readonly lsn: number;
  readonly lsnText: string;
}

/** One chunk to serialize. */
export interface SerializeJob {
  readonly id: number;
  readonly table: BackfillTable;
  /** The chunk's COPY text (whole rows). */
  readonly data: Uint8Array;
  readonly rowCount: number;
  /** The table's position in the snapshot's table list (part of every event id). */
  readonly tableIndex: number;
  /** The ordinal of the chunk's first row within its table (the rest of the event id). */
  readonly firstOrdinal: number;
  /** The chunk's last row is the snapshot's last: its source.snapshot is "last". */
  readonly last: boolean;
}

/** The event lines of one chunk: line i is `data[ends[i-1] (0 for i = 0), ends[i])`, newline included. */
export interface SerializedChunk {
  readonly id: number;
  readonly data: Uint8Array;
  readonly ends: Uint32Array;
  readonly rows: number;
}

interface Failed {
  readonly id: number;
  readonly error: string;
}

interface Pending {
  readonly resolve: (lines: SerializedChunk) => void;
  readonly reject: (error: unknown) => void;
}

interface Thread {
  readonly worker: Worker;
  readonly pending: Map<number, Pending>;
}

/** The thread's module next to this one: .ts when running the sources (through tsx), .js in dist/. */
function threadEntry(): { entry: string; eval: boolean } {
  const own = import.meta.url;
  const entry = new URL(`./serializer-thread${own.endsWith('.ts') ? '.ts' : '.js'}`, own).href;
  if (!own.endsWith('.ts')) return { entry, eval: false };
  // The sources run through tsx, whose hooks a worker does not inherit: register them in the thread first.
  const api = import.meta.resolve('tsx/esm/api');
  return {
    entry: `import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); })`,
    eval: true,
  };
}

export class SerializerPool {
  private readonly threads: Thread[] = [];
  private nextId = 0;
  private failure: CdcError | undefined;
  private closing = false;
  /** The thread each chunk's bytes came from (see recycle). */
  private readonly madeBy = new WeakMap<ArrayBufferLike, Thread>();

  constructor(size: number, setup: SerializerSetup) {
    const { entry, eval: isEval } = threadEntry();
    for (let i = 0; i < size; i++) {
      const worker = isEval
        ? new Worker(entry, {
            eval: true,
            workerData: setup,
            execArgv: process.env.ZZPROF ? ['--cpu-prof', '--cpu-prof-dir=/tmp/prof2'] : [],
          })
        : new Worker(new URL(entry), { workerData: setup });
      const thread: Thread = { worker, pending: new Map() };
      worker.on('message', (message: SerializedChunk | Failed) => {
        const job = thread.pending.get(message.id);
        if (job === undefined) return;
        thread.pending.delete(message.id);
        if (thread.pending.size === 0) worker.unref();
        if ('error' in message) job.reject(this.fail(`a snapshot serializer thread failed: ${message.error}`));
        else {
          this.madeBy.set(message.data.buffer, thread);
          job.resolve(message);
        }
      });
      worker.on('error', (error) => this.abandon(thread, `a snapshot serializer thread failed: ${error.message}`));
      worker.on('exit', (code) => {
        if (this.closing) return;
        // Even an idle thread's exit fails the pool: a job sent to it later would never finish.
        this.fail(`a snapshot serializer thread exited (code ${code})`);
        this.abandon(thread, `a snapshot serializer thread exited (code ${code})`);
      });
      // A thread waiting for work must not keep the process alive; one with work must (see serialize).
      worker.unref();
      this.threads.push(thread);
    }
  }

  /** Serializes a chunk on the least busy thread. `job.data` is moved there. */
  serialize(job: Omit<SerializeJob, 'id'>): Promise<SerializedChunk> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    let thread = this.threads[0] as Thread;
    for (const t of this.threads) if (t.pending.size < thread.pending.size) thread = t;
    const id = this.nextId++;
    const data = job.data;
    // Moved, not copied, when the chunk has its buffer to itself (copy-out.ts allocates one per chunk).
    const own = data.byteOffset === 0 && data.buffer.byteLength >= 1 << 16 ? data : data.slice();
    return new Promise<SerializedChunk>((resolve, reject) => {
      thread.pending.set(id, { resolve, reject });
      thread.worker.ref();
      thread.worker.postMessage({ ...job, id, data: own } satisfies SerializeJob, [own.buffer as ArrayBuffer]);
    });
  }

  /** Hands a chunk's bytes back to its thread once its lines are copied: the thread fills them again. */
  recycle(chunk: SerializedChunk): void {
    const buffer = chunk.data.buffer as ArrayBuffer;
    const thread = this.madeBy.get(buffer);
    if (thread === undefined || chunk.data.byteOffset !== 0 || this.failure !== undefined) return;
    this.madeBy.delete(buffer);
    thread.worker.postMessage({ recycle: buffer }, [buffer]);
  }

  async close(): Promise<void> {
    this.closing = true;
    const threads = this.threads.splice(0);
    for (const t of threads) this.abandon(t, 'the snapshot ended');
    await Promise.all(threads.map((t) => t.worker.terminate()));
  }

  private fail(message: string): CdcError {
    this.failure ??= new CdcError('INTERNAL', message);
    return this.failure;
  }

  private abandon(thread: Thread, message: string): void {
    if (thread.pending.size === 0) return;
    const error = this.fail(message);
    for (const job of thread.pending.values()) job.reject(error);
    thread.pending.clear();
  }
}
