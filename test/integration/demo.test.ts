/**
 * `pgcdc demo` end to end, as a user runs it: a child process without a TTY (so plain lines),
 * a fixed duration, then the files and the verification summary are checked.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { TEST_MAJOR } from '../harness/pg.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function runDemo(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env };
    // The demo must print plain lines when stdout is not a terminal, whatever CI/FORCE_COLOR say.
    delete env.FORCE_COLOR;
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'demo', ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

test('pgcdc demo captures a live workload, prints durable events and verifies them against the tables', { timeout: 180_000 }, async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-demo-test-'));
  // mkdtemp makes it private; as root the server runs as postgres and must be able to enter it.
  await chmod(dir, 0o755);
  try {
    const { code, stdout, stderr } = await runDemo(['--duration', '8', '--dir', dir, '--pg', String(TEST_MAJOR)]);
    const context = `stdout:\n${stdout.slice(-3000)}\nstderr:\n${stderr.slice(-3000)}`;
    assert.equal(code, 0, context);

    assert.ok(!stdout.includes('\u001b['), 'no colour codes when stdout is not a TTY');
    const events = stdout.split('\n').filter((line) => /^\d{2}:\d{2}:\d{2}\.\d{3} [cudt] demo\.shop\.\w+ /.test(line));
    assert.ok(events.length >= 20, `expected event lines, got ${events.length}\n${context}`);
    for (const op of ['c', 'u', 'd']) assert.ok(events.some((line) => line.slice(13, 14) === op), `an event line with op ${op}`);

    const eventsDir = path.join(dir, 'events');
    const files = readdirSync(eventsDir).sort();
    assert.deepEqual(files, ['demo.shop.customers.jsonl', 'demo.shop.order_items.jsonl', 'demo.shop.orders.jsonl', 'demo.shop.products.jsonl']);
    assert.ok(existsSync(path.join(dir, 'offsets.json')));

    const verdict = stdout.split('\n').find((line) => line.startsWith('verified: '));
    assert.ok(verdict, `a verification line\n${context}`);
    assert.match(verdict, / 0 lost, 0 extra, 0 mismatched, 0 duplicate events: OK$/);
    const matched = Number(/(\d+) matched/.exec(verdict)?.[1]);
    assert.ok(matched > 0, verdict);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
