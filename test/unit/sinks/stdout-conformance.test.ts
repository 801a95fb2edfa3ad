/**
 * The stdout sink against the sink conformance suite (test/harness/sink-conformance.ts), across a
 * real process boundary: the sink runs in a child process (test/harness/child-sink.ts) writing to
 * its standard output, a pipe this test reads like a consumer would. A restart is a new child;
 * the destination is everything read from every child, run after run. A failure is the reader
 * closing the pipe (the child gets EPIPE).
 */
import { ChildSink } from '../../harness/child-sink.ts';
import { sinkConformance, type DurableEvents } from '../../harness/sink-conformance.ts';

/** One child and what was read from its standard output. */
class Run {
  readonly sink = new ChildSink({ kind: 'stdout' });
  private readonly chunks: Buffer[] = [];
  private received = 0;
  private ended = false;
  private wake: (() => void) | undefined;

  constructor() {
    this.sink.output.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.received += chunk.length;
      this.wake?.();
    });
    const end = (): void => {
      this.ended = true;
      this.wake?.();
    };
    this.sink.output.on('end', end);
    this.sink.output.on('close', end);
  }

  /** Waits until every byte of every resolved write has arrived (or the pipe ended), then returns them. */
  async read(): Promise<Buffer> {
    while (!this.ended && this.received < this.sink.resolvedBytes) {
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
    return Buffer.concat(this.chunks);
  }

  /** The reader goes away: reads what the child acknowledged, then closes the pipe. */
  async closeReader(): Promise<void> {
    await this.read();
    const closed = new Promise<void>((resolve) => this.sink.output.once('close', resolve));
    this.sink.output.destroy();
    await closed;
  }
}

function parse(text: string): DurableEvents {
  const out = new Map<string, string[]>();
  const pieces = text.split('\n');
  if (pieces.at(-1) === '') pieces.pop();
  for (const line of pieces) {
    let topic = '(torn)';
    try {
      topic = String((JSON.parse(line) as { topic: unknown }).topic);
    } catch {
      // A partial line is kept under its own name: the assertions then show it.
    }
    const lines = out.get(topic) ?? [];
    lines.push(line);
    out.set(topic, lines);
  }
  return out;
}

sinkConformance({
  name: 'stdout',
  delivery: 'at-least-once',
  setup() {
    const runs: Run[] = [];
    const start = (): Run => {
      const run = new Run();
      runs.push(run);
      return run;
    };
    return Promise.resolve({
      makeSink: () => start().sink,
      async readDurable() {
        const outputs = await Promise.all(runs.map((run) => run.read()));
        return parse(Buffer.concat(outputs).toString('utf8'));
      },
      async injectFailure() {
        const run = runs.at(-1);
        if (run === undefined) throw new Error('no stdout sink to break');
        await run.closeReader();
        return () => Promise.resolve();
      },
      async writeThenKill(batches) {
        const { sink } = start();
        await sink.open(undefined);
        const last = batches.at(-1);
        if (last === undefined) throw new Error('writeThenKill needs a batch');
        for (const batch of batches.slice(0, -1)) await sink.write(batch);
        return sink.writeThenKill(last);
      },
      async dispose() {
        for (const run of runs) await run.sink.dispose();
      },
    });
  },
});
