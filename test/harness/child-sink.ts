/**
 * A sink of a registered kind running in a child process, driven through the `Sink` interface:
 * for conformance checks that need a real process boundary (the stdout sink writing to a real
 * pipe; a process SIGKILLed right after a write resolved).
 *
 * The child (sink-child-main.ts) builds the sink through the registry; its standard output is a
 * pipe this side reads (`output`), its standard error is kept for diagnostics.
 */
import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { CdcError, type ErrorCode } from '../../src/core/errors.ts';
import type { EventBatch, Sink, SinkPosition } from '../../src/sinks/contract.ts';
import { onProcessExit } from './tmp.ts';

const CHILD_MAIN = path.join(path.dirname(fileURLToPath(import.meta.url)), 'sink-child-main.ts');

export type ChildRequest =
  | { readonly seq: number; readonly op: 'open'; readonly resume: SinkPosition | undefined }
  | {
      readonly seq: number;
      readonly op: 'write';
      readonly events: readonly { readonly topic: string; readonly line: string }[];
      /** SIGKILL the child as soon as this write resolved and its reply is sent. */
      readonly killAfter?: boolean;
    }
  | { readonly seq: number; readonly op: 'close' };

export type ChildReply = {
  readonly seq: number;
  /** Bytes of every batch whose write resolved so far (what a reader of the child's output must get). */
  readonly resolvedBytes: number;
} & (
  | { readonly ok: true; readonly position?: SinkPosition }
  | { readonly ok: false; readonly code: ErrorCode; readonly message: string; readonly retryable: boolean }
);

export class ChildSink implements Sink {
  readonly kind: string;
  readonly child: ChildProcess;
  /** The child's standard output. */
  readonly output: Readable;
  /** Resolves when the child has exited, with its exit code or signal. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The highest `resolvedBytes` the child reported. */
  resolvedBytes = 0;
  private stderr = '';
  private seq = 0;
  private closing: Promise<void> | undefined;
  private readonly pending = new Map<number, { resolve: (reply: ChildReply) => void }>();

  /** Starts the child with `config` (a `sink` section: `{ kind: 'jsonl', out: dir }`). */
  constructor(config: { readonly kind: string } & Record<string, unknown>) {
    this.kind = config.kind;
    this.child = fork(CHILD_MAIN, [JSON.stringify(config)], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    const { stdout, stderr } = this.child;
    if (stdout === null || stderr === null) throw new Error('the sink child has no output pipes');
    this.output = stdout;
    stderr.on('data', (chunk: Buffer) => (this.stderr += chunk.toString()));
    const forget = onProcessExit(() => this.child.kill('SIGKILL'));
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        forget();
        for (const waiter of this.pending.values())
          waiter.resolve({
            seq: -1,
            ok: false,
            code: 'SINK_FAILED',
            message: this.gone(),
            retryable: false,
            resolvedBytes: 0,
          });
        this.pending.clear();
        resolve({ code, signal });
      });
    });
    this.child.on('message', (reply: ChildReply) => {
      this.resolvedBytes = Math.max(this.resolvedBytes, reply.resolvedBytes);
      const waiter = this.pending.get(reply.seq);
      this.pending.delete(reply.seq);
      waiter?.resolve(reply);
    });
  }

  async open(resume: SinkPosition | undefined): Promise<void> {
    await this.request({ seq: ++this.seq, op: 'open', resume });
  }

  async write(batch: EventBatch): Promise<SinkPosition> {
    return (await this.request({ seq: ++this.seq, op: 'write', events: eventsOf(batch) })) ?? {};
  }

  /** Writes `batch`; the child is SIGKILLed right after the write resolved. Resolves with its position. */
  async writeThenKill(batch: EventBatch): Promise<SinkPosition> {
    const position = await this.request({ seq: ++this.seq, op: 'write', events: eventsOf(batch), killAfter: true });
    const { signal } = await this.exited;
    if (signal !== 'SIGKILL') throw new Error(`the sink child ended by ${signal ?? 'exiting'}, not by SIGKILL`);
    return position ?? {};
  }

  /** Closes the sink in the child, then lets the child exit. */
  close(): Promise<void> {
    this.closing ??= this.closeNow();
    return this.closing;
  }

  private async closeNow(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    try {
      await this.request({ seq: ++this.seq, op: 'close' });
    } finally {
      if (this.child.connected) this.child.disconnect();
      await this.exited;
    }
  }

  /** Kills the child if it still runs and waits for it. */
  async dispose(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    await this.exited;
  }

  private request(request: ChildRequest): Promise<SinkPosition | undefined> {
    if (!this.child.connected) return Promise.reject(new CdcError('SINK_FAILED', this.gone()));
    return new Promise<ChildReply>((resolve) => {
      this.pending.set(request.seq, { resolve });
      this.child.send(request);
    }).then((reply) => {
      if (!reply.ok) throw new CdcError(reply.code, reply.message, { retryable: reply.retryable });
      return reply.position;
    });
  }

  private gone(): string {
    return `the sink child process is gone${this.stderr ? `: ${this.stderr.trim().split('\n').at(-1) ?? ''}` : ''}`;
  }
}

function eventsOf(batch: EventBatch): { topic: string; line: string }[] {
  const events: { topic: string; line: string }[] = [];
  for (let i = 0; i < batch.count; i++) events.push({ topic: batch.topic(i), line: batch.line(i) });
  return events;
}
