/**
 * The sink registry: the config's `sink` section is validated by the chosen kind's schema, the CLI
 * builds sinks through it, an unknown kind is one line listing the known ones (exit 2), and the
 * pipeline never names a kind.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PassThrough } from 'node:stream';
import { parseConfig } from '../../../src/config.ts';
import { CdcError } from '../../../src/core/errors.ts';
import { EventBatch } from '../../../src/sinks/batch.ts';
import { createSink, DEFAULT_SINK_KIND, SINK_KINDS } from '../../../src/sinks/registry.ts';
import { JsonlSink } from '../../../src/sinks/jsonl/index.ts';
import { StdoutSink } from '../../../src/sinks/stdout/index.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

function configError(input: unknown, origin = 'f.yaml'): CdcError {
  try {
    parseConfig(input, origin);
  } catch (error) {
    assert.ok(error instanceof CdcError);
    return error;
  }
  assert.fail('expected an error');
}

void describe('sink registry', () => {
  void it('knows jsonl (the default), stdout, kafka, nats, redis and http', () => {
    assert.deepEqual(SINK_KINDS, ['jsonl', 'stdout', 'kafka', 'nats', 'redis', 'http']);
    assert.equal(DEFAULT_SINK_KIND, 'jsonl');
  });

  void it('keeps the config keys of before: kind defaults to jsonl, out to ./events, stdout tolerates out', () => {
    assert.deepEqual(parseConfig({}).sink, { kind: 'jsonl', out: './events' });
    assert.deepEqual(parseConfig({ sink: { out: 'x' } }).sink, { kind: 'jsonl', out: 'x' });
    assert.deepEqual(parseConfig({ sink: { kind: 'stdout' } }).sink, { kind: 'stdout' });
    assert.deepEqual(parseConfig({ sink: { kind: 'stdout', out: 'x' } }).sink, { kind: 'stdout', out: 'x' });
  });

  void it('an unknown kind is one issue at sink.kind listing the known kinds; bad options name their key', () => {
    const unknown = configError({ sink: { kind: 'pigeon' } });
    assert.equal(unknown.code, 'CONFIG_INVALID');
    assert.equal(
      unknown.message,
      'f.yaml: sink.kind: unknown sink kind "pigeon"; the known kinds are jsonl, stdout, kafka, nats, redis, http',
    );
    assert.match(configError({ sink: { kind: 'jsonl', brokers: 'x' } }).message, /^f\.yaml: sink: Unrecognized key/);
    assert.equal(configError({ sink: { out: '' } }).message, 'f.yaml: sink.out: must name a directory');
    assert.match(configError({ sink: 'jsonl' }).message, /^f\.yaml: sink: must be a mapping with a kind/);
  });

  void it('builds the configured kind; createSink refuses a kind nobody registered', async () => {
    assert.ok(createSink(parseConfig({ sink: { out: 'x' } }).sink) instanceof JsonlSink);
    const stream = new PassThrough();
    const sink = createSink(parseConfig({ sink: { kind: 'stdout' } }).sink, { stdout: stream });
    assert.ok(sink instanceof StdoutSink);
    await sink.open(undefined);
    await sink.write(EventBatch.of([{ topic: 't', line: '{"id":"0/1:0"}' }]));
    await sink.close();
    assert.equal(String(stream.read()), '{"id":"0/1:0"}\n');
    assert.throws(
      () => createSink({ kind: 'pigeon' }),
      (error: unknown) => error instanceof CdcError && error.code === 'CONFIG_INVALID',
    );
  });

  void it('pgcdc run --sink with an unknown kind prints one line listing the known kinds and exits 2', async () => {
    const result = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const args = ['--import', 'tsx', path.join(ROOT, 'src/cli/main.ts'), 'run', '--sink', 'pigeon'];
      const child = execFile(process.execPath, args, { cwd: ROOT }, (_error, stdout, stderr) =>
        resolve({ code: child.exitCode, stdout, stderr }),
      );
    });
    assert.equal(result.code, 2);
    assert.equal(result.stdout, '');
    const lines = result.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, result.stderr);
    assert.match(
      lines[0] ?? '',
      /^pgcdc: error: --sink: unknown sink kind "pigeon"; the known kinds are jsonl, stdout, kafka, nats, redis, http/,
    );
  });

  void it('nothing in pipeline/ imports the registry or a sink kind', async () => {
    const dir = path.join(ROOT, 'src', 'pipeline');
    for (const name of await readdir(dir)) {
      if (!name.endsWith('.ts')) continue;
      const text = await readFile(path.join(dir, name), 'utf8');
      const imports = [...text.matchAll(/from '([^']+)'/g)].map((m) => m[1] ?? '');
      const offending = imports.filter((spec) => /sinks\/(registry|kind|jsonl|stdout)/.test(spec));
      assert.deepEqual(offending, [], `${name} imports ${offending.join(', ')}`);
    }
  });
});
