/**
 * Real helper daemons for tests (pgbouncer, sshd): started in the foreground, stopped after the
 * test file, and awaited until they accept connections on their port.
 */
import { spawn, type SpawnOptions } from 'node:child_process';
import net from 'node:net';
import { assertTeardownPending, eventually, onTeardown } from './pg.ts';
import { onProcessExit } from './tmp.ts';

/** True when something accepts TCP connections on 127.0.0.1:`port`. */
export function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** A started daemon: what it has written so far (stdout and stderr). */
export interface Daemon {
  output(): string;
}

/** Starts `file args` and resolves once it listens on `port`; its output is in the error if it dies first. */
export async function startDaemon(
  name: string,
  file: string,
  args: string[],
  port: number,
  options: SpawnOptions = {},
): Promise<Daemon> {
  assertTeardownPending();
  const child = spawn(file, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (output += c.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const forget = onProcessExit(() => child.kill('SIGKILL'));
  void exited.then(forget);
  onTeardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  });
  await eventually(
    async () => {
      if (child.exitCode !== null) throw new Error(`${name} exited with ${child.exitCode}: ${output}`);
      return (await listening(port)) ? true : undefined;
    },
    `${name} to listen`,
    30_000,
  );
  return { output: () => output };
}
