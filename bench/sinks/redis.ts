/**
 * For bench/sinks.ts: the Redis target. A redis-server on this machine with the settings the tests
 * use (appendonly yes, appendfsync always, no RDB) and no automatic AOF rewrite (a rewrite forked in
 * the middle of one run and not the other would decide the ratio); the reference is redis-benchmark
 * sending the same number of XADDs with the same fields (id, op, an event of the same size) to the
 * same server, pipelined 10,000 deep on one connection as pgcdc's batches are.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import { freePort } from '../../src/embedded/cluster.ts';
import { RedisConnection } from '../../src/sinks/redis/client.ts';
import type { RespValue } from '../../src/sinks/redis/resp.ts';
import type { SinkTarget, TargetServer } from './target.ts';

const PIPELINE = 10_000;
const REFERENCE_KEY = 'bench-reference';

interface RedisTarget extends TargetServer {
  readonly port: number;
  readonly dir: string;
  readonly child: ChildProcess;
}

function connect(port: number): Promise<RedisConnection> {
  return RedisConnection.connect({ host: '127.0.0.1', port, db: 0, connectTimeoutMs: 1000, requestTimeoutMs: 600_000 });
}

async function withConnection<T>(port: number, step: (connection: RedisConnection) => Promise<T>): Promise<T> {
  const connection = await connect(port);
  try {
    return await step(connection);
  } finally {
    await connection.close();
  }
}

function text(value: RespValue | undefined): string {
  return Buffer.isBuffer(value) ? value.toString('utf8') : String(value);
}

export const redisTarget: SinkTarget<RedisTarget> = {
  name: 'redis',
  available: () => spawnSync('sh', ['-c', 'command -v redis-server redis-benchmark'], { stdio: 'ignore' }).status === 0,
  async start(dir) {
    const data = await mkdtemp(path.join(dir, 'redis-'));
    const port = await freePort();
    // prettier-ignore
    const child = spawn('redis-server', [
      '--port', String(port), '--bind', '127.0.0.1', '--dir', data, '--appendonly', 'yes',
      '--appendfsync', 'always', '--save', '', '--auto-aof-rewrite-percentage', '0',
      '--logfile', '', '--loglevel', 'warning',
    ], { stdio: ['ignore', 'ignore', 'inherit'] });
    for (let attempt = 0; ; attempt++) {
      const ready = await withConnection(port, async (c) => (await c.command(['PING'])) === 'PONG').catch(() => false);
      if (ready) break;
      if (attempt > 200 || child.exitCode !== null) throw new Error('redis-server did not start');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    return { url: `redis://127.0.0.1:${port}/0`, port, dir: data, child };
  },
  sinkArgs: (server) => ['--sink', 'redis', '--redis-url', server.url],
  delivered: (server, prefix) =>
    withConnection(server.port, async (c) => {
      const keys = ((await c.command(['KEYS', `${prefix}.*`])) as RespValue[]).map(text);
      let events = 0;
      let sampled = 0;
      let sampledBytes = 0;
      for (const key of keys) {
        if ((await c.command(['TYPE', key])) !== 'stream') continue;
        events += (await c.command(['XLEN', key])) as number;
        // The event fields' sizes from the first 1000 entries of each stream (reading 1M back costs more
        // than the run): bytes are extrapolated from them.
        for (const entry of (await c.command(['XRANGE', key, '-', '+', 'COUNT', 1000])) as RespValue[]) {
          const fields = (entry as RespValue[])[1] as RespValue[];
          for (let i = 0; i + 1 < fields.length; i += 2)
            if (text(fields[i]) === 'event') sampledBytes += (fields[i + 1] as Buffer).length;
          sampled++;
        }
      }
      const bytes = sampled === 0 ? 0 : Math.round((sampledBytes / sampled) * events);
      return { events, bytes, note: `${keys.length} streams, bytes extrapolated from ${sampled} entries` };
    }),
  async reference(server, events, eventBytes) {
    const event = `{"id":"0/1000000:0",${'"x":0,'.repeat(Math.max(0, Math.floor((eventBytes - 25) / 6)))}"y":0}`;
    const started = performance.now();
    // prettier-ignore
    const result = spawnSync('redis-benchmark', [
      '-p', String(server.port), '-n', String(events), '-c', '1', '-P', String(PIPELINE), '-q',
      'XADD', REFERENCE_KEY, '*', 'id', '0/1000000:0', 'op', 'c', 'event', event,
    ], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    const ms = performance.now() - started;
    if (result.status !== 0) throw new Error(`redis-benchmark failed: ${result.stderr}`);
    const length = await withConnection(server.port, async (c) => {
      const n = (await c.command(['XLEN', REFERENCE_KEY])) as number;
      await c.command(['DEL', REFERENCE_KEY]);
      return n;
    });
    if (length !== events) throw new Error(`redis reference: the stream holds ${length} entries, expected ${events}`);
    return {
      ms,
      what: `redis-benchmark -c 1 -P ${PIPELINE} XADD <key> * id <id> op c event <${event.length} bytes>`,
    };
  },
  async stop(server) {
    if (server.child.exitCode === null) {
      const exited = new Promise((resolve) => server.child.once('exit', resolve));
      server.child.kill('SIGTERM');
      await exited;
    }
    await rm(server.dir, { recursive: true, force: true });
  },
};
