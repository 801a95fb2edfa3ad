/**
 * Runs library-child-main.ts (a program using `capture()` from the library) as a child process,
 * stopped with the test file like the pgcdc processes of cli.ts.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CaptureSettings } from '../../src/index.ts';
import type { PgcdcProcess } from './cli.ts';
import { assertTeardownPending, eventually, onTeardown } from './pg.ts';
import { onProcessExit } from './tmp.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const CHILD_MAIN = path.join(HERE, 'library-child-main.ts');

/** Starts the child; it appends what its handler accepts to `out`. */
export function startLibraryChild(out: string, settings: CaptureSettings): PgcdcProcess {
  assertTeardownPending();
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD_MAIN, out, JSON.stringify(settings)], {
    cwd: path.resolve(HERE, '..', '..'),
    env: { ...process.env, PGCDC_TEST: undefined },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number>((resolve) => {
    child.on('exit', (code, signal) =>
      resolve(code ?? (signal === 'SIGKILL' ? 137 : signal === 'SIGTERM' ? 143 : 128)),
    );
  });
  const forget = onProcessExit(() => child.kill('SIGKILL'));
  void exited.then(forget);
  onTeardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  return { child, stdout: () => stdout, stderr: () => stderr, exited, kill: (signal) => child.kill(signal) };
}

/** Resolves once the child printed `streaming`; rejects when it exited first. */
export async function childStreaming(proc: PgcdcProcess, what: string): Promise<void> {
  await eventually(() => {
    if (proc.child.exitCode !== null)
      throw new Error(`the library child exited (${proc.child.exitCode}): ${proc.stderr()}`);
    return proc.stdout().includes('streaming\n') ? true : undefined;
  }, what);
}
