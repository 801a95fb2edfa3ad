/** Shared by the benches (kafka-pgbench.ts, peers/workloads.ts): Debian's pgbench against an embedded cluster. */
import { spawn } from 'node:child_process';
import type { EmbeddedCluster } from '../src/embedded/cluster.ts';

/** Runs `pgbench <args> <database>`; resolves with its output (stdout and stderr), rejects unless it exits 0. */
export function pgbench(cluster: EmbeddedCluster, database: string, args: readonly string[]): Promise<string> {
  const child = spawn('pgbench', ['-h', '127.0.0.1', '-p', String(cluster.port), '-U', 'postgres', ...args, database], {
    env: { ...process.env, PGPASSWORD: cluster.password },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString()));
  return new Promise((resolve, reject) => {
    child.once('error', (error) =>
      reject(new Error(`bench: pgbench could not run (Debian: apt-get install postgresql-client): ${error.message}`)),
    );
    child.once('close', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`pgbench exited with ${code}: ${out}`)),
    );
  });
}
