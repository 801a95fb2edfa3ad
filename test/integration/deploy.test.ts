/**
 * deploy/: the systemd unit and the container recipe work as written.
 *
 * - The unit: `systemd-analyze verify` finds nothing to say about it (with ExecStart pointing at
 *   this checkout's launcher), and its ExecStart command line, with the files it names put in a temp
 *   folder, starts a capture that delivers a row, serves /healthz on the HTTP address it gives, and
 *   stops cleanly (exit 0) on the unit's KillSignal.
 * - The Dockerfile cannot be built here (no Docker): its build steps run as a script in a clean
 *   folder (test/harness/dockerfile.ts), and the pgcdc it installs, started with the image's
 *   ENTRYPOINT and CMD, captures a row and stops cleanly. About a minute (npm ci and npm pack).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { eventually, freshDatabase, onTeardown, requireOrSkip, type TestDatabase } from '../harness/pg.ts';
import { readJsonl } from '../harness/cli.ts';
import { onProcessExit } from '../harness/tmp.ts';
import { dockerfileScript } from '../harness/dockerfile.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const UNIT = path.join(ROOT, 'deploy', 'pgcdc.service');
const DOCKERFILE = path.join(ROOT, 'deploy', 'Dockerfile');

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-deploy-'));
  onTeardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0));
    });
  });
}

/** systemd's ExecStart words (the unit uses no quoting, so whitespace splits them). */
function unitSetting(unit: string, key: string): string {
  const line = unit.split('\n').find((l) => l.startsWith(`${key}=`));
  assert.ok(line !== undefined, `${key}= is in the unit`);
  return line.slice(key.length + 1);
}

/**
 * What a user puts in /etc/pgcdc: the config (source without its password, offsets and output in
 * `state`) and the password file. Returns their paths.
 */
async function etcFiles(db: TestDatabase, dir: string, state: string): Promise<{ config: string; password: string }> {
  const url = new URL(db.url);
  const password = decodeURIComponent(url.password);
  url.password = '';
  await mkdir(state, { recursive: true });
  const config = path.join(dir, 'pgcdc.yaml');
  await writeFile(
    config,
    [
      `source:`,
      `  url: ${JSON.stringify(url.toString())}`,
      `slot: s_${db.name}`,
      `publication: p_${db.name}`,
      `tables: [public.items]`,
      `sink: { kind: jsonl, out: ${JSON.stringify(path.join(state, 'events'))} }`,
      `offsets: ${JSON.stringify(path.join(state, 'offsets.json'))}`,
      '',
    ].join('\n'),
  );
  const passwordFile = path.join(dir, 'source-password');
  await writeFile(passwordFile, `${password}\n`, { mode: 0o600 });
  return { config, password: passwordFile };
}

interface Started {
  readonly exited: Promise<number>;
  output(): string;
  kill(signal: NodeJS.Signals): void;
}

function start(file: string, args: readonly string[], cwd: string, env: NodeJS.ProcessEnv): Started {
  const child = spawn(file, args, { cwd, env: { ...process.env, PGCDC_TEST: undefined, ...env } });
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  const exited = new Promise<number>((resolve) =>
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 143 : 0))),
  );
  const forget = onProcessExit(() => child.kill('SIGKILL'));
  void exited.then(forget);
  onTeardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  return { exited, output: () => output, kill: (signal) => child.kill(signal) };
}

/** A row inserted after start reaches the output, then the capture stops cleanly on SIGTERM. */
async function capturesAndStops(db: TestDatabase, run: Started, events: string, note: string): Promise<void> {
  await db.sql.query(`insert into items (note) values ($1)`, [note]);
  await eventually(
    async () =>
      existsSync(events) && (await readJsonl(events)).some((e) => JSON.stringify(e.value).includes(note))
        ? true
        : undefined,
    `the row "${note}" in ${events} (pgcdc said: ${run.output().slice(-2000)})`,
  );
  run.kill('SIGTERM');
  assert.equal(await run.exited, 0, `a clean stop on SIGTERM: ${run.output().slice(-2000)}`);
}

test('deploy/pgcdc.service: systemd-analyze verify is silent, and its ExecStart runs a capture', async (t) => {
  const unit = await readFile(UNIT, 'utf8');
  const dir = await tempDir();
  const analyze = spawnSync('systemd-analyze', ['--version']);
  const skip = requireOrSkip(analyze.status === 0, 'systemd-analyze (Debian package systemd)');
  if (skip === false) {
    const copy = path.join(dir, 'pgcdc.service');
    await writeFile(copy, unit.replace('ExecStart=/usr/local/bin/pgcdc ', `ExecStart=${ROOT}/bin/pgcdc.js `));
    const verified = spawnSync('systemd-analyze', ['verify', copy], { encoding: 'utf8' });
    assert.equal(verified.status, 0, verified.stderr);
    assert.equal(verified.stderr.trim(), '', 'systemd-analyze has nothing to say about the unit');
  } else t.diagnostic(skip);

  assert.equal(unitSetting(unit, 'KillSignal'), 'SIGTERM', "SIGTERM is pgcdc's clean stop");
  const words = unitSetting(unit, 'ExecStart').split(/\s+/);
  assert.equal(words[0], '/usr/local/bin/pgcdc');

  const db = await freshDatabase();
  await db.sql.query(`create table items (id serial primary key, note text)`);
  const state = path.join(dir, 'state');
  const etc = await etcFiles(db, dir, state);
  const credentials = path.join(dir, 'credentials');
  await mkdir(credentials);
  await writeFile(path.join(credentials, 'source-password'), await readFile(etc.password), { mode: 0o600 });
  const port = await freePort();
  const args = words
    .slice(1)
    .map((word) =>
      word
        .replace('${CREDENTIALS_DIRECTORY}', credentials)
        .replace('/etc/pgcdc/pgcdc.yaml', etc.config)
        .replace('127.0.0.1:9187', `127.0.0.1:${port}`),
    );
  const run = start(path.join(ROOT, 'bin', 'pgcdc.js'), args, state, {});
  await eventually(
    async () => {
      const answer = await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined);
      return answer?.ok === true ? true : undefined;
    },
    `/healthz on the unit's --http address (pgcdc said: ${run.output().slice(-2000)})`,
  );
  await capturesAndStops(db, run, path.join(state, 'events'), 'from the unit');
});

test('deploy/Dockerfile: its build steps run as a script in a clean folder; its pgcdc captures', async () => {
  const dir = await tempDir();
  const root = path.join(dir, 'image');
  const recipe = dockerfileScript(await readFile(DOCKERFILE, 'utf8'), ROOT, root);
  const scriptFile = path.join(dir, 'build.sh');
  await writeFile(scriptFile, recipe.script);
  const build = start('bash', [scriptFile], dir, { npm_config_prefer_offline: 'true' });
  assert.equal(await build.exited, 0, `the Dockerfile's steps as a script:\n${build.output().slice(-4000)}`);
  assert.deepEqual(recipe.entrypoint, ['pgcdc']);
  const installed = path.join(root, 'opt', 'pgcdc', 'node_modules', '.bin', 'pgcdc');
  assert.ok(existsSync(installed), 'the image has pgcdc where its PATH says');
  assert.ok(recipe.env.PATH?.startsWith(path.dirname(installed)), 'the image PATH leads to it');

  const db = await freshDatabase();
  await db.sql.query(`create table items (id serial primary key, note text)`);
  const state = recipe.workdir;
  const etc = await etcFiles(db, dir, state);
  const mounted = (p: string): string => path.join(root, p);
  await mkdir(mounted('/etc/pgcdc'), { recursive: true });
  await mkdir(mounted('/run/secrets'), { recursive: true });
  await writeFile(mounted('/etc/pgcdc/pgcdc.yaml'), await readFile(etc.config));
  await writeFile(mounted('/run/secrets/source-password'), await readFile(etc.password), { mode: 0o600 });
  const port = await freePort();
  const args = recipe.cmd.map((word) =>
    word.startsWith('/') ? mounted(word) : word.replace('127.0.0.1:9187', `127.0.0.1:${port}`),
  );
  const run = start(installed, args, state, { PATH: recipe.env.PATH });
  await capturesAndStops(db, run, path.join(state, 'events'), 'from the image');
});
