/**
 * `pgcdc demo`: a self-contained tour. Starts an embedded PostgreSQL, creates a small shop, runs
 * a workload of realistic transactions, captures it into JSONL with the real engine, prints every
 * event as one line once it is durable, and on exit replays the files and compares them with the
 * source tables (demo-verify.ts). Exit 0 when they agree, 1 when they do not or anything failed.
 */
import { mkdir, readFile, rm, stat } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import pg from 'pg';
import pc from 'picocolors';
import { Capture } from '../capture/run.ts';
import { parseConfig } from '../config.ts';
import { DEFAULT_MAJOR, EmbeddedCluster, SUPPORTED_MAJORS } from '../embedded/cluster.ts';
import { CdcError, toCdcError } from '../errors.ts';
import { createLogger } from '../log.ts';
import { LockFile } from '../offsets/lock.ts';
import { parseLsn } from '../protocol/lsn.ts';
import { JsonlSink } from '../sinks/jsonl.ts';
import type { EventBatch, Sink, SinkPosition } from '../sinks/sink.ts';
import { SHOP_TABLES, ShopWorkload, createShop, seedShop } from './demo-shop.ts';
import { verifyShop, type VerifyReport } from './demo-verify.ts';
import { EXIT_FAILURE, EXIT_OK, reportFatal } from './exit.ts';

interface DemoFlags {
  duration?: string;
  dir: string;
  pg: string;
  rate: string;
}

const DATABASE = 'demo';

/** picocolors enables colours whenever CI is set; the demo wants plain lines whenever stdout is not a terminal. */
const colourful = process.env.FORCE_COLOR ? true : process.stdout.isTTY === true && !process.env.NO_COLOR && process.env.TERM !== 'dumb';
const c = pc.createColors(colourful);
const say = (text: string): boolean => process.stdout.write(`${text}\n`);

function positive(value: string, flag: string, max: number): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0 || n > max) throw new CdcError('USAGE', `${flag} must be a number above 0 and at most ${max}, not ${JSON.stringify(value)}`);
  return n;
}

/** Delegates to the JSONL sink, then shows the batch: what is printed is durable. */
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

type Row = Record<string, unknown>;
const OP_COLOUR: Record<string, (text: string) => string> = { c: c.green, u: c.yellow, d: c.red, t: c.magenta, r: c.blue };

const ISO_INSTANT = /^\d{4}-\d{2}-\d{2}T(\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?)\d*Z$/;

function short(value: unknown, max = 24): string {
  // Timestamps of a live demo are all today: the time of day is what a reader can compare.
  const instant = typeof value === 'string' ? ISO_INSTANT.exec(value)?.[1] : undefined;
  if (instant !== undefined) return instant;
  const text = typeof value === 'string' ? value : JSON.stringify(value) ?? 'null';
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function isRow(value: unknown): value is Row {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/**
 * Renders events as `time op topic key summary`. Updates without a `before` image (the default
 * replica identity) are diffed against the last row this printer saw for the key.
 */
class EventPrinter {
  private readonly last = new Map<string, Row>();
  private readonly topicWidth: number;

  constructor(topicWidth: number) {
    this.topicWidth = topicWidth;
  }

  print(batch: EventBatch): void {
    let text = '';
    for (let i = 0; i < batch.count; i++) text += `${this.render({ topic: batch.topic(i), line: batch.line(i) })}\n`;
    process.stdout.write(text);
  }

  private render(event: { topic: string; line: string }): string {
    const parsed = JSON.parse(event.line) as { key: unknown; value: { op: string; before: unknown; after: unknown; source: { ts_ms: number } } };
    const { op, before, after, source } = parsed.value;
    const key = isRow(parsed.key) ? parsed.key : {};
    const keyText = Object.entries(key).map(([k, v]) => `${k}=${short(v, 13)}`).join(',') || '-';
    const id = `${event.topic} ${JSON.stringify(key)}`;
    const previous = isRow(before) ? before : this.last.get(id);
    let summary: string;
    if (op === 'd') {
      summary = 'deleted';
      this.last.delete(id);
    } else if (op === 't') {
      summary = 'table truncated';
      for (const k of this.last.keys()) if (k.startsWith(`${event.topic} `)) this.last.delete(k);
    } else {
      const row = isRow(after) ? after : {};
      const columns = Object.entries(row).filter(([name]) => !(name in key));
      if (op === 'u' && previous) {
        const changed = columns.filter(([name, value]) => JSON.stringify(previous[name]) !== JSON.stringify(value));
        summary = changed.map(([name, value]) => `${name} ${short(previous[name], 16)}→${short(value, 28)}`).join('  ') || '(no column changed)';
      } else summary = columns.map(([name, value]) => `${name}=${short(value)}`).join(' ');
      this.last.set(id, row);
    }
    const time = new Date(source.ts_ms).toTimeString().slice(0, 8) + `.${String(source.ts_ms % 1000).padStart(3, '0')}`;
    const head = `${time} ${op} ${event.topic.padEnd(this.topicWidth)} ${keyText.padEnd(20)} `;
    const room = Math.max(20, (process.stdout.columns ?? 200) - head.length - 1);
    const body = summary.length > room ? `${summary.slice(0, room - 1)}…` : summary;
    return `${c.dim(time)} ${(OP_COLOUR[op] ?? c.white)(c.bold(op))} ${c.cyan(event.topic.padEnd(this.topicWidth))} ${keyText.padEnd(20)} ${c.dim(body)}`;
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
  for (let i = 0; i < 200 && (await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '')) !== ''; i++) await new Promise((r) => setTimeout(r, 50));
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

function printReport(report: VerifyReport, eventsDir: string): void {
  say('');
  say(c.bold('verification'));
  say(`replayed ${report.events} events from ${eventsDir} onto empty tables (c/u: key -> after, d: remove, t: clear) and compared`);
  say('every source row by primary key and every column, read in the event encoding (numeric as text, bytea as base64, timestamps as instants)');
  say(c.dim(`  ${'table'.padEnd(20)} ${'events c/u/d/t'.padEnd(20)} ${'rows'.padStart(6)} ${'matched'.padStart(8)} ${'lost'.padStart(5)} ${'extra'.padStart(6)} ${'mismatched'.padStart(11)}`));
  let rows = 0;
  let matched = 0;
  let lost = 0;
  let extra = 0;
  let mismatched = 0;
  for (const t of report.tables) {
    const ops = `${['c', 'u', 'd', 't'].map((op) => t.ops[op] ?? 0).join('/')}`;
    const total = Object.values(t.ops).reduce((a, b) => a + b, 0);
    say(`  ${t.table.padEnd(20)} ${`${total} (${ops})`.padEnd(20)} ${String(t.sourceRows).padStart(6)} ${String(t.matched).padStart(8)} ${String(t.lost).padStart(5)} ${String(t.extra).padStart(6)} ${String(t.mismatched).padStart(11)}`);
    for (const example of t.examples) say(c.red(`    ${example}`));
    rows += t.sourceRows;
    matched += t.matched;
    lost += t.lost;
    extra += t.extra;
    mismatched += t.mismatched;
  }
  const verdict = report.ok ? c.green('OK') : c.red('DIFFERENCES FOUND');
  const malformed = report.malformed > 0 ? `, ${report.malformed} malformed lines` : '';
  say(`verified: ${report.tables.length} tables, ${rows} source rows, ${matched} matched, ${lost} lost, ${extra} extra, ${mismatched} mismatched, ${report.duplicates} duplicate events${malformed}: ${verdict}`);
}

async function runDemo(flags: DemoFlags): Promise<number> {
  const major = Number(flags.pg);
  if (!(SUPPORTED_MAJORS as readonly number[]).includes(major)) throw new CdcError('USAGE', `--pg must be one of ${SUPPORTED_MAJORS.join(', ')}, not ${JSON.stringify(flags.pg)}`);
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
      process.stderr.write('pgcdc demo: second signal, exiting without verification (the PostgreSQL server may keep running until the next demo run)\n');
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
    for (const target of [files.pg, files.events, files.offsets, `${files.offsets}.lock`, `${files.offsets}.tmp`]) await rm(target, { recursive: true, force: true });

    say(c.bold(`pgcdc demo`) + c.dim(`: PostgreSQL ${major}, about ${rate} transactions/s, ${duration === undefined ? 'until Ctrl-C' : `for ${duration} s`}`));
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

    const config = parseConfig({
      source: { url: cluster.url(DATABASE) },
      tables: [...SHOP_TABLES],
      sink: { kind: 'jsonl', out: files.events },
      offsets: files.offsets,
      slot: 'pgcdc_demo',
      publication: 'pgcdc_demo',
      // Frequent status ticks: the demo waits for the capture to confirm the final WAL position before stopping.
      statusIntervalMs: 200,
      log: { level: 'warn', format: 'pretty' },
    });
    const printer = new EventPrinter(Math.max(...SHOP_TABLES.map((t) => `${DATABASE}.${t}`.length)));
    let acked = 0;
    const sink = new PrintingSink(new JsonlSink({ dir: files.events }), (batch) => printer.print(batch));
    const capture = await Capture.start(config, sink, createLogger(config.log), (status) => (acked = parseLsn(status.acked)));
    say(c.dim(`capturing ${SHOP_TABLES.join(', ')} (slot pgcdc_demo); events appear once durable:`));

    await seedShop(client);
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
    const target = parseLsn((await client.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn')).rows[0]?.lsn ?? '0/0');
    const deadline = Date.now() + 30_000;
    while (acked < target && Date.now() < deadline) {
      const ended = await Promise.race([captureFailed, new Promise<'wait'>((r) => setTimeout(() => r('wait'), 50))]);
      if (ended !== 'wait') throw toCdcError(ended ?? new CdcError('INTERNAL', 'the capture ended by itself'));
    }
    if (acked < target) say(c.yellow('the capture did not confirm the final position within 30 s; verifying what it delivered'));
    await capture.stop();
    say(c.dim(`${workload.transactions} workload transactions; capture stopped cleanly`));

    const report = await verifyShop(client, SHOP_TABLES, files.events);
    printReport(report, files.events);
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
    .description('start a throwaway PostgreSQL with a small shop, capture a live workload into JSONL, print every event, then verify the files against the tables')
    .option('--duration <seconds>', 'stop after this many seconds (default: run until Ctrl-C)')
    .option('--dir <dir>', 'where the demo keeps the server, events and offsets (replaced on every run)', './pgcdc-demo')
    .option('--pg <major>', `PostgreSQL major version (${SUPPORTED_MAJORS[0]}-${SUPPORTED_MAJORS[SUPPORTED_MAJORS.length - 1]})`, String(DEFAULT_MAJOR))
    .option('--rate <tx/s>', 'workload transactions per second', '3')
    .action(async (flags: DemoFlags) => {
      try {
        process.exitCode = await runDemo(flags);
      } catch (error) {
        process.exitCode = reportFatal(error);
      }
    });
}
