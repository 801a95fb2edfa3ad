/**
 * `pgcdc demo` end to end, as a user runs it: a child process without a TTY (so plain lines),
 * a fixed duration, then the files and the verification summary are checked, and every printed
 * event line is matched with the event it shows in the JSONL files (nothing printed that the
 * events do not contain, the initial snapshot included).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pc from 'picocolors';
import { renderEvent, short } from '../../src/cli/demo-print.ts';
import { TEST_MAJOR } from '../harness/pg.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function runDemo(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env };
    // The demo must print plain lines when stdout is not a terminal, whatever CI/FORCE_COLOR say.
    delete env.FORCE_COLOR;
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'demo', ...args], {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

test(
  'pgcdc demo captures a live workload, prints durable events and verifies them against the tables',
  { timeout: 180_000 },
  async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-demo-test-'));
    // mkdtemp makes it private; as root the server runs as postgres and must be able to enter it.
    await chmod(dir, 0o755);
    try {
      const { code, stdout, stderr } = await runDemo(['--duration', '8', '--dir', dir, '--pg', String(TEST_MAJOR)]);
      const context = `stdout:\n${stdout.slice(-3000)}\nstderr:\n${stderr.slice(-3000)}`;
      assert.equal(code, 0, context);

      assert.ok(!stdout.includes('\u001b['), 'no colour codes when stdout is not a TTY');
      const lines = stdout.split('\n');
      const events = lines.filter((line) => /^\d{2}:\d{2}:\d{2}\.\d{3} [rcudt] demo\.shop\.\w+ /.test(line));
      assert.ok(events.length >= 20, `expected event lines, got ${events.length}\n${context}`);
      for (const op of ['r', 'c', 'u', 'd'])
        assert.ok(
          events.some((line) => line.slice(13, 14) === op),
          `an event line with op ${op}`,
        );

      // The equivalent run command: printed before the first event, with the source URL minus its password.
      const command = lines.findIndex((line) => line.trimStart().startsWith('pgcdc run '));
      assert.ok(
        command >= 0 && command < lines.indexOf(events[0] ?? ''),
        `a pgcdc run command before the events\n${context}`,
      );
      const runLine = lines[command] ?? '';
      for (const flag of [
        '--source',
        '--slot pgcdc_demo',
        '--publication pgcdc_demo',
        '--tables shop.customers,shop.products,shop.orders,shop.order_items',
        '--sink jsonl',
      ]) {
        assert.ok(runLine.includes(flag), `${flag} in ${runLine}`);
      }
      assert.ok(
        runLine.includes(`--out ${path.join(dir, 'events')}`) &&
          runLine.includes(`--offsets ${path.join(dir, 'offsets.json')}`),
        runLine,
      );
      const source = /--source '?([^' ]+)'?/.exec(runLine)?.[1] ?? '';
      assert.equal(new URL(source).password, '', `no password in ${source}`);
      assert.match(source, /^postgres:\/\/postgres@127\.0\.0\.1:\d+\/demo\?sslmode=disable$/);
      // The embedded cluster's password is "postgres": never printed after a colon (user:password@).
      assert.ok(!stdout.includes(':postgres@') && !stderr.includes(':postgres@'), 'no password printed');

      const eventsDir = path.join(dir, 'events');
      const files = readdirSync(eventsDir).sort();
      assert.deepEqual(files, [
        'demo.shop.customers.jsonl',
        'demo.shop.order_items.jsonl',
        'demo.shop.orders.jsonl',
        'demo.shop.products.jsonl',
      ]);
      assert.ok(existsSync(path.join(dir, 'offsets.json')));

      // Every printed line is the rendering of one event of the files, in order per topic, and every
      // event is printed. The rendering is a function of the event alone, so a value on a line is a
      // value of its event; and an old→new diff appears exactly when the event carries `before`.
      const render = { colours: pc.createColors(false), topicWidth: 'demo.shop.order_items'.length, columns: 200 };
      let withBefore = 0;
      let withoutBefore = 0;
      for (const file of files) {
        const topic = file.replace(/\.jsonl$/, '');
        const jsonl = readFileSync(path.join(eventsDir, file), 'utf8')
          .split('\n')
          .filter((line) => line.length > 0);
        const printed = events.filter((line) => line.split(' ').filter(Boolean)[2] === topic);
        assert.equal(printed.length, jsonl.length, `${topic}: one printed line per event`);
        for (const [i, line] of jsonl.entries()) {
          assert.equal(printed[i], renderEvent(topic, line, render), `${topic} event ${i}`);
          const value = (
            JSON.parse(line) as {
              value: { op: string; before: Record<string, unknown> | null; after: Record<string, unknown> | null };
            }
          ).value;
          if (value.op !== 'u') continue;
          if (value.before === null) {
            withoutBefore++;
            assert.ok(!printed[i]?.includes('→'), `an update without before shows no diff: ${printed[i]}`);
          } else {
            withBefore++;
            const before = value.before;
            const changed = Object.entries(value.after ?? {}).filter(
              ([name, v]) => JSON.stringify(before[name]) !== JSON.stringify(v),
            );
            const first = changed[0];
            if (first)
              assert.ok(
                printed[i]?.includes(`${first[0]} ${short(before[first[0]], 16)}→`),
                `the diff shows the event's before: ${printed[i]}`,
              );
          }
        }
      }
      assert.ok(
        withBefore > 0 && withoutBefore > 0,
        `updates with (REPLICA IDENTITY FULL) and without a before image: ${withBefore}/${withoutBefore}`,
      );
      const snapshotTables = new Set(
        events.filter((line) => line.slice(13, 14) === 'r').map((line) => line.split(' ')[2]),
      );
      assert.equal(snapshotTables.size, 4, `snapshot (r) events for every table: ${[...snapshotTables].join(', ')}`);

      const verdict = stdout.split('\n').find((line) => line.startsWith('verified: '));
      assert.ok(verdict, `a verification line\n${context}`);
      assert.match(verdict, / 0 lost, 0 extra, 0 mismatched, 0 duplicate events: OK$/);
      const matched = Number(/(\d+) matched/.exec(verdict)?.[1]);
      assert.ok(matched > 0, verdict);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  },
);
