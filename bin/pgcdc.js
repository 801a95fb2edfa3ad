#!/usr/bin/env node
// Launcher. An installed pgcdc (a tarball from `npm pack`) has dist/ and no sources: it runs the
// compiled CLI in dist/, with nothing but the runtime dependencies. In a checkout (where `npm ci`
// builds dist/ through the prepare script) it runs dist/ when it is at least as new as every source
// file, and otherwise the TypeScript sources through tsx (a devDependency), so a checkout being
// edited never runs stale code.
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const compiled = path.join(root, 'dist', 'cli', 'main.js');
const sources = path.join(root, 'src');
const sourceMain = path.join(sources, 'cli', 'main.ts');

function newestSource(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestSource(full) : statSync(full).mtimeMs);
  }
  return newest;
}

/** One line on standard error and exit 1 (an installation problem, not bad input). */
function fail(message) {
  process.stderr.write(`pgcdc: error: ${message}\n`);
  process.exit(1);
}

const hasSources = existsSync(sourceMain);
if (existsSync(compiled) && (!hasSources || statSync(compiled).mtimeMs >= newestSource(sources))) {
  await import(pathToFileURL(compiled).href);
} else if (!hasSources) {
  fail(
    `this installation has no compiled CLI (${compiled} is missing): reinstall pgcdc from a tarball made by ` +
      'npm pack, or run it from a checkout after npm ci',
  );
} else {
  let register;
  try {
    ({ register } = await import('tsx/esm/api'));
  } catch {
    fail(
      'the sources in this checkout are newer than dist/ and tsx is not installed: run npm ci (installs tsx), ' +
        'or npm run build',
    );
  }
  register();
  await import(pathToFileURL(sourceMain).href);
}
