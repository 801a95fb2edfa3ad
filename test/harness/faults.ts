/**
 * Helpers for fault tests where one pgcdc process rides through the faults: a workload that keeps
 * inserting, updating and deleting through server restarts, markers that prove a change made after
 * a fault was delivered, the detection and recovery times read from pgcdc's own JSON log, and the
 * final check (replay equals the source, no event id twice).
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { compareRows, parseLines, readJsonl, replay } from './cli.ts';
import type { PgcdcProcess } from './cli.ts';
import { eventually } from './pg.ts';
import { logRecords, type LogRecord } from './process.ts';

/**
 * Keyed insert/update/delete transactions on `acct (id int primary key, balance int)`, one about
 * every `paceMs`, reconnecting after any error (the server may be down on purpose). The source
 * tables are the truth at the end, so a commit whose answer was lost needs no bookkeeping.
 */
export class Workload {
  committed = 0;
  failed = 0;
  private readonly url: string;
  private readonly paceMs: number;
  private client: pg.Client | undefined;
  private stopping = false;
  private readonly running: Promise<void>;

  constructor(url: string, paceMs = 20) {
    this.url = url;
    this.paceMs = paceMs;
    this.running = this.loop();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.running;
    await this.client?.end().catch(() => undefined);
  }

  private async loop(): Promise<void> {
    let n = 0;
    while (!this.stopping) {
      // Pacing, not waiting for a state: the workload is a steady trickle of transactions.
      await new Promise((resolve) => setTimeout(resolve, this.paceMs));
      try {
        const client = await this.connected();
        n++;
        const id = 1 + ((n * 7919) % 400);
        await client.query('begin');
        await client.query(
          `insert into acct (id, balance) values ($1, $2) on conflict (id) do update set balance = excluded.balance`,
          [id, n],
        );
        await client.query(`update acct set balance = balance + 1 where id = $1`, [1 + ((n * 31) % 400)]);
        if (n % 3 === 0) await client.query(`delete from acct where id = $1`, [1 + ((n * 17) % 400)]);
        await client.query('commit');
        this.committed++;
      } catch {
        this.failed++;
        await this.client?.end().catch(() => undefined);
        this.client = undefined;
      }
    }
  }

  private async connected(): Promise<pg.Client> {
    if (this.client) return this.client;
    const client = new pg.Client({ connectionString: this.url });
    client.on('error', () => undefined);
    try {
      await client.connect();
    } catch (error) {
      await client.end().catch(() => undefined);
      throw error;
    }
    this.client = client;
    return client;
  }
}

/** Inserts marker `n` (retrying while the server comes back) and waits until pgcdc delivered it. */
export async function markerDelivered(url: string, outDir: string, topic: string, n: number): Promise<number> {
  await eventually(async () => {
    const client = new pg.Client({ connectionString: url });
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.query(`insert into marker (id) values ($1) on conflict do nothing`, [n]);
      return true;
    } finally {
      await client.end().catch(() => undefined);
    }
  }, `marker ${n} inserted`);
  const file = path.join(outDir, `${topic}.jsonl`);
  return eventually(
    async () => {
      const text = await readFile(file, 'utf8').catch(() => '');
      return parseLines(text).some((e) => e.key?.id === n) ? Date.now() : undefined;
    },
    `marker ${n} delivered`,
    120_000,
  );
}

/** pgcdc's first JSON log record at or after `since` (epoch ms) that `matches`. */
export function firstRecordSince(
  proc: PgcdcProcess,
  since: number,
  matches: (record: LogRecord) => boolean,
): LogRecord | undefined {
  return logRecords(proc.stderr()).find((r) => typeof r.time === 'number' && r.time >= since && matches(r));
}

/** A retry line of the supervisor (warn, with the retry count). */
export function isRetryLine(record: LogRecord): boolean {
  return record.level === 40 && typeof record.retry === 'number';
}

export interface FaultTiming {
  readonly iteration: number;
  /** Fault -> pgcdc's retry line naming it, in ms. */
  readonly detectionMs: number;
  /** Fault -> pgcdc's next `streaming` line, in ms. */
  readonly streamingMs: number;
  /** Fault -> a change made after the fault was delivered, in ms. */
  readonly deliveredMs: number;
  readonly code: string;
}

/**
 * Waits for the retry line and the `streaming` line after a fault at `t0`, and the delivery of a
 * marker inserted once the server takes writes again; returns the times and prints one line.
 */
export async function timeRecovery(
  label: string,
  iteration: number,
  t0: number,
  proc: PgcdcProcess,
  marker: () => Promise<number>,
): Promise<FaultTiming> {
  const retry = await eventually(() => firstRecordSince(proc, t0, isRetryLine), `${label} ${iteration}: retry line`);
  const delivered = await marker();
  const streaming = await eventually(
    () => firstRecordSince(proc, Number(retry.time), (r) => r.msg === 'streaming'),
    `${label} ${iteration}: streaming again`,
  );
  const timing: FaultTiming = {
    iteration,
    detectionMs: Number(retry.time) - t0,
    streamingMs: Number(streaming.time) - t0,
    deliveredMs: delivered - t0,
    code: String(retry.code),
  };
  console.log(
    `${label} #${iteration}: detected in ${timing.detectionMs} ms (${timing.code}), streaming again after ` +
      `${timing.streamingMs} ms, post-fault change delivered after ${timing.deliveredMs} ms`,
  );
  return timing;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] ?? 0) : Math.round(((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2);
}

export interface Verdict {
  readonly lost: number;
  readonly extra: number;
  readonly mismatched: number;
  readonly duplicated: number;
  readonly events: number;
}

/** Replays every delivered event of `acct` onto an empty map and compares it with the table. */
export async function verdict(sql: pg.Client, outDir: string, topic: string): Promise<Verdict> {
  const events = await readJsonl(outDir);
  const ids = new Set(events.map((e) => e.id));
  const { rows } = await sql.query<{ id: number; balance: number }>(`select id, balance from acct`);
  const source = new Map(rows.map((r) => [JSON.stringify({ id: r.id }), { id: r.id, balance: r.balance }]));
  const compared = compareRows(replay(events).tables.get(topic), source);
  return { ...compared, duplicated: events.length - ids.size, events: events.length };
}

/** Prints the fault table: iterations, median/max detection and recovery, lost, duplicated. */
export function printSummary(label: string, timings: readonly FaultTiming[], result: Verdict): void {
  const detection = timings.map((t) => t.detectionMs);
  const streaming = timings.map((t) => t.streamingMs);
  const delivered = timings.map((t) => t.deliveredMs);
  const row = (values: readonly number[]): string =>
    values.length === 0 ? '-' : `${median(values)} / ${Math.max(...values)}`;
  console.log(
    [
      `| fault | iterations | detection ms (median / max) | streaming again ms (median / max) | ` +
        `change delivered ms (median / max) | lost | duplicated | events |`,
      `|---|---|---|---|---|---|---|---|`,
      `| ${label} | ${timings.length} | ${row(detection)} | ${row(streaming)} | ${row(delivered)} | ` +
        `${result.lost + result.mismatched + result.extra} | ${result.duplicated} | ${result.events} |`,
    ].join('\n'),
  );
}

/** The stored offset reached the server's current WAL position. */
export async function caughtUp(sql: pg.Client, offsets: string): Promise<true | undefined> {
  const text = await readFile(offsets, 'utf8').catch(() => undefined);
  if (!text) return undefined;
  const stored = (JSON.parse(text) as { lsn: string }).lsn;
  const { rows } = await sql.query<{ ok: boolean }>(`select $1::pg_lsn >= pg_current_wal_lsn() as ok`, [stored]);
  return rows[0]?.ok ? true : undefined;
}

/** The process is still the one that started: it never exited. */
export function assertRunning(proc: PgcdcProcess): void {
  assert.equal(proc.child.exitCode, null, `pgcdc exited:\n${proc.stderr().slice(-4000)}`);
  assert.equal(proc.child.signalCode, null, `pgcdc was killed:\n${proc.stderr().slice(-4000)}`);
}
