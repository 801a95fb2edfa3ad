/**
 * The JSONL sink against the sink conformance suite (test/harness/sink-conformance.ts): a
 * temporary directory per test, read back by reopening its files; failures come from a directory
 * squatting on a topic's file name; the SIGKILL check runs the sink in a child process.
 */
import '../../harness/tmp.ts'; // temporary files go under a per-process root, removed at exit
import { appendFile, mkdir, mkdtemp, readdir, readFile, rm, rmdir, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { jsonlFileName } from '../../../src/sinks/jsonl/index.ts';
import { createSink } from '../../../src/sinks/registry.ts';
import { ChildSink } from '../../harness/child-sink.ts';
import { sinkConformance, type DurableEvents } from '../../harness/sink-conformance.ts';

/** Every `*.jsonl` file's lines by topic (the tests' topics are plain: the file name is the topic). */
async function readJsonlDir(dir: string): Promise<DurableEvents> {
  const out = new Map<string, string[]>();
  for (const name of await readdir(dir)) {
    const file = path.join(dir, name);
    if (!name.endsWith('.jsonl') || !(await stat(file)).isFile()) continue;
    const pieces = (await readFile(file, 'utf8')).split('\n');
    // The piece after the last newline is empty, or a torn partial line: kept to be seen.
    if (pieces.at(-1) === '') pieces.pop();
    out.set(name.slice(0, -'.jsonl'.length), pieces);
  }
  return out;
}

sinkConformance({
  name: 'jsonl',
  delivery: 'exactly-once',
  async setup() {
    const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-jsonl-conformance-'));
    const children: ChildSink[] = [];
    return {
      makeSink: () => createSink({ kind: 'jsonl', out: dir }),
      readDurable: () => readJsonlDir(dir),
      tear: (topic) => appendFile(path.join(dir, jsonlFileName(topic)), '{"id":"0/1:torn'),
      async injectFailure(topic) {
        const squatter = path.join(dir, jsonlFileName(topic));
        await mkdir(squatter);
        return () => rmdir(squatter);
      },
      async writeThenKill(batches) {
        const child = new ChildSink({ kind: 'jsonl', out: dir });
        children.push(child);
        await child.open(undefined);
        const last = batches.at(-1);
        if (last === undefined) throw new Error('writeThenKill needs a batch');
        for (const batch of batches.slice(0, -1)) await child.write(batch);
        return child.writeThenKill(last);
      },
      async dispose() {
        for (const child of children) await child.dispose();
        await rm(dir, { recursive: true, force: true });
      },
    };
  },
});
