/**
 * The alerts of a running capture: delivery stalled (the HTTP sink posts to a server that never
 * answers), a server with a small max_slot_wal_keep_size, WAL written. The safe_wal_size alert is
 * logged once per state change, not per sample, and a local webhook receiver gets the state change
 * (with the bearer token from the token file), before the slot is lost.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { eventually, onTeardown, TEST_MAJOR } from '../harness/pg.ts';
import { startPgcdc } from '../harness/cli.ts';
import { logRecords } from '../harness/process.ts';
import { safeWal, slotLimitDatabase } from '../harness/slot-limit.ts';

interface Received {
  readonly auth: string | undefined;
  readonly body: {
    alert: string;
    level: string;
    previousLevel: string;
    sample: { safeWalSizeBytes: number | null; walStatus: string | null };
  };
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTeardown(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return (server.address() as AddressInfo).port;
}

async function bodyOf(request: IncomingMessage): Promise<string> {
  let text = '';
  for await (const chunk of request) text += (chunk as Buffer).toString();
  return text;
}

async function samplesInRunFile(file: string): Promise<number | undefined> {
  const text = await readFile(file, 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  try {
    return (JSON.parse(text) as { samples: number }).samples;
  } catch {
    return undefined; // never: it is renamed into place whole
  }
}

test('a stalled capture alerts once per change, in its log and on the webhook, before the slot is lost', async (t) => {
  if (TEST_MAJOR < 13) {
    t.skip('max_slot_wal_keep_size needs PostgreSQL 13+');
    return;
  }
  const db = await slotLimitDatabase();
  const slot = `s_${db.name}`;

  // The sink's endpoint takes the request and never answers.
  const stalled = createServer(() => undefined);
  const sinkPort = await listen(stalled);
  const received: Received[] = [];
  const receiver = createServer((request, response) => {
    void bodyOf(request).then((text) => {
      received.push({ auth: request.headers.authorization, body: JSON.parse(text) as Received['body'] });
      response.writeHead(204).end();
    });
  });
  const hookPort = await listen(receiver);

  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-alerts-'));
  onTeardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(path.join(dir, 'token'), 'hook-secret\n');
  await writeFile(
    path.join(dir, 'pgcdc.yaml'),
    [
      'alerts:',
      '  intervalMs: 100',
      '  webhook:',
      `    url: http://127.0.0.1:${hookPort}/alerts`,
      `    tokenFile: ${path.join(dir, 'token')}`,
      '    timeoutMs: 2000',
    ].join('\n'),
  );
  const offsets = path.join(dir, 'offsets.json');
  // The HTTP sink takes no --out: the arguments are spelled out here.
  const proc = startPgcdc([
    'run',
    '--config',
    path.join(dir, 'pgcdc.yaml'),
    '--source',
    db.url,
    '--slot',
    slot,
    '--publication',
    `p_${db.name}`,
    '--tables',
    'public.acct',
    '--sink',
    'http',
    '--http-url',
    `http://127.0.0.1:${sinkPort}/events`,
    '--offsets',
    offsets,
    '--log-format',
    'json',
  ]);

  await eventually(() => (proc.stderr().includes('"msg":"streaming"') ? true : undefined), 'streaming');
  const runFile = `${offsets}.run.json`;
  await eventually(async () => ((await samplesInRunFile(runFile)) ?? 0) > 0 || undefined, 'the monitor samples');
  // A captured change the sink never takes: nothing after it is confirmed.
  await db.sql.query('insert into acct values (1, 1)');

  // Write WAL (1 MiB a row, into a table no capture reads) until safe_wal_size is below 20% of 64 MiB.
  for (
    let state = await safeWal(db.sql, slot);
    (state.safe ?? 0) > 12 * 1024 * 1024;
    state = await safeWal(db.sql, slot)
  )
    await db.sql.query(`insert into filler select repeat(md5(g::text), 32768) from generate_series(1, 2) g`);
  const critical = await eventually(
    () => received.find((r) => r.body.alert === 'safe_wal_size_bytes' && r.body.level === 'critical'),
    'the critical webhook',
  );
  assert.equal(critical.auth, 'Bearer hook-secret');
  assert.ok((critical.body.sample.safeWalSizeBytes ?? 0) > 0, 'posted before the slot could be lost');
  assert.notEqual(critical.body.sample.walStatus, 'lost');
  assert.notEqual((await safeWal(db.sql, slot)).status, 'lost');

  // Many more samples at the same level: still one line and one POST per state change.
  const samplesThen = (await samplesInRunFile(runFile)) ?? 0;
  await eventually(
    async () => (((await samplesInRunFile(runFile)) ?? 0) >= samplesThen + 20 ? true : undefined),
    '20 more samples',
  );
  const lines = logRecords(proc.stderr()).filter((r) => r.alert === 'safe_wal_size_bytes');
  const criticalLines = lines.filter((r) => r.level === 50);
  assert.equal(criticalLines.length, 1, JSON.stringify(lines));
  assert.match(criticalLines[0]?.msg ?? '', /^alert safe_wal_size_bytes critical: safe_wal_size: only .* MiB/);
  assert.ok(lines.filter((r) => r.level === 40).length <= 1, 'at most one warning line (ok -> warning)');
  const posts = received.filter((r) => r.body.alert === 'safe_wal_size_bytes');
  assert.equal(posts.filter((r) => r.body.level === 'critical').length, 1);
  assert.ok(posts.filter((r) => r.body.level === 'warning').length <= 1);
  assert.equal(posts.length, lines.length, 'one POST per logged state change');
  process.stderr.write(
    `alerts: ${lines.length} state change line(s) over ${(await samplesInRunFile(runFile)) ?? 0} samples: ` +
      `${lines.map((r) => r.msg).join(' | ')}\n`,
  );
  proc.kill('SIGKILL');
  await proc.exited;
});
