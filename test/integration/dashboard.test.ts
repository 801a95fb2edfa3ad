/**
 * The dashboard in a real browser (Debian's Chromium through playwright-core): it shows the captured
 * tables and an event count that moves under a workload, and its form requests an incremental
 * snapshot that the capture takes. Bound off loopback, the API refuses requests without the token
 * and the page works once the token is typed. Assertions are on the page's content, never pixels;
 * a screenshot is kept (and copied to PGCDC_SCREENSHOT_DIR when set).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { eventually, freshDatabase, onTeardown, type TestDatabase } from '../harness/pg.ts';
import { captureArgs, readJsonl, runPgcdc, startPgcdc, type PgcdcProcess } from '../harness/cli.ts';
import { Workload } from '../harness/faults.ts';
import { logRecords } from '../harness/process.ts';
import { launchChromium } from '../harness/chromium.ts';

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-dashboard-'));
  onTeardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function run(db: TestDatabase, dir: string, listen: string, extra: string[] = []): PgcdcProcess {
  return startPgcdc(
    captureArgs(db, dir, 'public.acct,public.items', ['--snapshot-mode', 'never', '--http', listen, ...extra]),
  );
}

async function port(proc: PgcdcProcess): Promise<number> {
  const listen = await eventually(
    () => logRecords(proc.stderr()).find((r) => r.msg.startsWith('HTTP server on '))?.listen,
    'the HTTP server start line',
  );
  return Number(String(listen).split(':').at(-1));
}

async function twoTables(): Promise<TestDatabase> {
  const db = await freshDatabase();
  await db.sql.query(`create table acct (id int primary key, balance int)`);
  await db.sql.query(`create table items (id int primary key, name text)`);
  await db.sql.query(`insert into items select g, 'item ' || g from generate_series(1, 500) g`);
  // Planner statistics: the dashboard's snapshot totals (and ETA) come from them.
  await db.sql.query(`analyze items`);
  return db;
}

async function openPage(browser: Browser, url: string): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 1400 } });
  onTeardown(() => context.close().catch(() => undefined));
  const page = await context.newPage();
  const outside: string[] = [];
  // Nothing but this origin: no CDN, no font, no telemetry.
  page.on('request', (request) => {
    if (!request.url().startsWith(new URL(url).origin)) outside.push(request.url());
  });
  onTeardown(() => {
    assert.deepEqual(outside, [], 'the page requested nothing from another origin');
    return Promise.resolve();
  });
  await page.goto(url);
  return page;
}

const eventsShown = async (page: Page): Promise<number> =>
  Number(await page.getByTestId('events-delivered').textContent());

test(
  'the dashboard shows the captured tables, a moving event count, ' + 'and requests a snapshot the capture takes',
  async (t) => {
    const browser = await launchChromium();
    if ('skip' in browser) return t.skip(browser.skip);
    const db = await twoTables();
    const dir = await tempDir();
    const proc = run(db, dir, '127.0.0.1:0');
    const base = `http://127.0.0.1:${await port(proc)}`;
    await eventually(() => (proc.stderr().includes('"msg":"streaming"') ? true : undefined), 'streaming');
    const page = await openPage(browser, `${base}/`);

    await page.getByTestId('state').filter({ hasText: 'streaming' }).waitFor();
    const options = page.getByTestId('table-choices').locator('input[type=checkbox]');
    await eventually(async () => ((await options.count()) === 2 ? true : undefined), 'two table choices');
    const values = await Promise.all((await options.all()).map((option) => option.getAttribute('value')));
    assert.deepEqual(values, ['public.acct', 'public.items']);

    // Under a workload the count on the page moves.
    const workload = new Workload(db.url, 20);
    onTeardown(() => workload.stop());
    await eventually(async () => ((await eventsShown(page)) > 0 ? true : undefined), 'a first count on the page');
    const first = await eventsShown(page);
    await eventually(async () => ((await eventsShown(page)) > first ? true : undefined), 'the count moving');
    await workload.stop();

    // Request an incremental snapshot of items through the form.
    await page.getByLabel('public.items').check();
    await page.getByTestId('snapshot-submit').click();
    const result = page.getByTestId('snapshot-result');
    await result.filter({ hasText: /taken by the capture/ }).waitFor({ timeout: 60_000 });
    assert.match(
      (await result.textContent()) ?? '',
      /^request \S+: taken by the capture; public\.items is being read$/,
    );
    const reads = await eventually(async () => {
      const events = (await readJsonl(path.join(dir, 'events'))).filter(
        (e) => e.topic.endsWith('.public.items') && e.value.op === 'r',
      );
      return events.length === 500 ? events : undefined;
    }, 'the 500 snapshot rows of items in the JSONL output');
    assert.ok(reads.every((e) => e.value.source.snapshot === 'incremental'));
    // Its progress reaches the page: rows from the stored checkpoint, the total from the planner's
    // estimate the health monitor reads for tables snapshotted online.
    const row = page.locator('#snapshot-rows tr[data-table="public.items"][data-kind="incremental"]');
    await row.filter({ hasText: '500 / 500' }).waitFor({ timeout: 60_000 });
    assert.match((await row.textContent()) ?? '', /^public\.items \(incremental\)500 \/ 500100%.*done$/);
    assert.equal(await page.locator('#snapshot-rows tr[data-table="public.items"]').count(), 1, 'shown once');

    // A table the capture does not capture is refused with the server's one line.
    const refused = await page.evaluate(async () => {
      const response = await fetch('/api/snapshot', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ tables: ['public.nope'] }),
      });
      return { status: response.status, body: (await response.json()) as { error: string } };
    });
    assert.equal(refused.status, 400);
    assert.match(refused.body.error, /^public\.nope is not captured by the pgcdc run using /);

    // Slot health from the health monitor: the slot, its wal_status and the alerts at their level.
    await page.getByTestId('wal-status').filter({ hasText: 'reserved' }).waitFor();
    assert.equal(await page.getByTestId('slot-name').textContent(), `s_${db.name} (active)`);
    assert.ok((await page.locator('[data-testid=alerts] li[data-level]').count()) > 0);
    assert.match((await page.getByTestId('events-mode').textContent()) ?? '', /keys only/);
    // Recent events: keys of the rows just read, never their values (the items' names).
    const recent = page.getByTestId('recent-events');
    await recent.filter({ hasText: 'public.items' }).waitFor();
    const shown = (await recent.textContent()) ?? '';
    assert.match(shown, /read\{"id":\d+\}/);
    assert.doesNotMatch(shown, /item \d/);
    const shot = path.join(dir, 'dashboard.png');
    await page.screenshot({ path: shot, fullPage: true });
    const keep = process.env.PGCDC_SCREENSHOT_DIR;
    if (keep !== undefined && keep !== '') {
      await mkdir(keep, { recursive: true });
      await copyFile(shot, path.join(keep, 'dashboard.png'));
      process.stderr.write(`dashboard screenshot: ${path.join(keep, 'dashboard.png')}\n`);
    }

    proc.kill('SIGTERM');
    assert.equal(await proc.exited, 0, proc.stderr());
  },
);

test('off loopback: the API refuses without the token, the page works once it is typed', async (t) => {
  const browser = await launchChromium();
  if ('skip' in browser) return t.skip(browser.skip);
  const db = await twoTables();
  const dir = await tempDir();
  const token = 'dashboard-test-token-0123456789abcdef';
  const tokenFile = path.join(dir, 'token');
  await writeFile(tokenFile, `${token}\n`, { mode: 0o600 });
  const proc = run(db, dir, '0.0.0.0:0', ['--http-token-file', tokenFile]);
  const base = `http://127.0.0.1:${await port(proc)}`;
  await eventually(() => (proc.stderr().includes('"msg":"streaming"') ? true : undefined), 'streaming');
  assert.doesNotMatch(proc.stderr(), new RegExp(token), 'the token is never logged');

  for (const route of ['/status', '/readyz', '/metrics', '/api/tables', '/api/history', '/api/events']) {
    const response = await fetch(`${base}${route}`);
    assert.equal(response.status, 401, route);
    assert.equal(response.headers.get('www-authenticate'), 'Bearer realm="pgcdc"');
    assert.match(((await response.json()) as { error: string }).error, /^missing or wrong bearer token/);
  }
  const wrong = await fetch(`${base}/status`, { headers: { authorization: `Bearer ${token}x` } });
  assert.equal(wrong.status, 401);
  const post = await fetch(`${base}/api/snapshot`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ tables: ['public.items'] }),
  });
  assert.equal(post.status, 401, 'no snapshot request without the token');
  assert.equal((await fetch(`${base}/healthz`)).status, 200, '/healthz needs no token');
  const right = await fetch(`${base}/status`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(right.status, 200);

  const page = await openPage(browser, `${base}/`);
  const form = page.getByTestId('token-form');
  await form.waitFor({ state: 'visible' });
  await page.getByLabel('Token').fill(token);
  await page.getByTestId('token-submit').click();
  await form.waitFor({ state: 'hidden' });
  await page.getByTestId('state').filter({ hasText: 'streaming' }).waitFor();
  const options = page.getByTestId('table-choices').locator('input[type=checkbox]');
  await eventually(async () => ((await options.count()) === 2 ? true : undefined), 'two table choices');

  proc.kill('SIGTERM');
  assert.equal(await proc.exited, 0, proc.stderr());
});

test('listening off loopback without a token stops pgcdc at start with one line, exit 2', async () => {
  const result = await runPgcdc(['run', '--source', 'postgres://nobody@127.0.0.1:1/none', '--http', '0.0.0.0:9187'], {
    PGCDC_HTTP_TOKEN: undefined,
  });
  assert.equal(result.code, 2, result.stderr);
  assert.equal(
    result.stderr,
    'pgcdc: error: the HTTP server would listen on 0.0.0.0:9187, which other machines may reach, without a token. ' +
      'give a bearer token (--http-token-file <file>, http.tokenEnv, or the PGCDC_HTTP_TOKEN variable), or listen ' +
      'on 127.0.0.1 [CONFIG_INVALID]\n',
  );
});
