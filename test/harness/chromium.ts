/**
 * A real browser for the dashboard tests: Debian's Chromium (/usr/bin/chromium, or `chromium` on
 * PATH; `.ci/run` installs it) driven by playwright-core. Never a browser download: without a
 * Chromium the test skips loudly (and fails under PGCDC_REQUIRE_ALL=1, as in CI).
 */
import { accessSync, constants } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { onTeardown, requireOrSkip } from './pg.ts';

/** The Chromium executable: PGCDC_CHROMIUM, /usr/bin/chromium, or the first `chromium` on PATH. */
export function chromiumPath(): string | undefined {
  const candidates = [
    process.env.PGCDC_CHROMIUM,
    '/usr/bin/chromium',
    ...(process.env.PATH ?? '').split(path.delimiter).map((dir) => path.join(dir, 'chromium')),
  ];
  for (const candidate of candidates) {
    if (candidate === undefined || candidate === '') continue;
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not there: the next one.
    }
  }
  return undefined;
}

/**
 * A headless Chromium, closed after the test file; or the skip message when there is none (pass it
 * to `t.skip`).
 */
export async function launchChromium(): Promise<Browser | { skip: string }> {
  const executablePath = chromiumPath();
  const skip = requireOrSkip(executablePath !== undefined, 'Chromium (/usr/bin/chromium or chromium on PATH)');
  if (skip !== false || executablePath === undefined) return { skip: skip || 'no chromium' };
  const browser = await chromium.launch({
    executablePath,
    headless: true,
    args: [
      '--headless=new',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-dev-shm-usage',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-default-apps',
      '--disable-extensions',
      '--disable-sync',
      '--no-first-run',
      '--metrics-recording-only',
    ],
  });
  // playwright-core kills the browsers it launched when the process exits, however it ends.
  onTeardown(() => browser.close().catch(() => undefined));
  return browser;
}
