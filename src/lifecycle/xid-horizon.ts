/**
 * The xid horizon stored with each checkpoint (Checkpoint.xidHorizon): a transaction id X such that
 * every transaction with an xid below X ended (committed or aborted) before the checkpoint's LSN, so
 * all of its changes are delivered. A lost-slot recovery on the same cluster (lost-slot.ts) then
 * re-reads only the row versions written at or after X: the older ones are in the output already.
 *
 * How it is known: a sample reads the oldest running xid of a fresh snapshot (X, 64 bits) and then
 * the WAL insert position (L). Every transaction below X had ended when the snapshot was taken, so
 * its commit or abort record lies before L. Once a stored checkpoint's LSN is at or past L, X is a
 * valid horizon for it. The insert position (not the write position) is read: with
 * synchronous_commit off a commit record may be inserted but not yet written.
 *
 * The sampler runs on its own connection with a short statement timeout, on a timer, and is never
 * awaited by the stream loop: a slow or broken server costs samples, never delivery. Its errors are
 * logged once at debug and otherwise ignored (the horizon just stays where it was).
 */
import type pg from 'pg';
import type { Logger } from '../core/log.ts';
import { toCdcError } from '../core/errors.ts';
import { openConnection, type SourceEndpoint } from '../postgres/connect.ts';
import { parseLsn } from '../protocol/lsn.ts';
import type { Lsn } from '../protocol/messages.ts';

/** How often the horizon is sampled. PGCDC_TEST_HORIZON_INTERVAL_MS (tests only) makes it shorter. */
const SAMPLE_INTERVAL_MS = 10_000;
/** A sample that takes longer than this is abandoned by the server. */
const SAMPLE_TIMEOUT_MS = 2_000;
/** Samples waiting for a checkpoint to cover them; older ones are dropped first (the horizon only lags). */
const MAX_PENDING = 64;

interface Sample {
  readonly xid: bigint;
  readonly lsn: Lsn;
}

/**
 * The pure part: samples in, the horizon valid at a checkpoint LSN out. `at` is monotonic as long
 * as the LSNs it is asked about are (checkpoints only move forward).
 */
export class HorizonTracker {
  private pending: Sample[] = [];
  private current: bigint | undefined;

  /** `seed`: the stored checkpoint's horizon (valid for that checkpoint, so for every later one). */
  constructor(seed?: string) {
    if (seed !== undefined) this.current = BigInt(seed);
  }

  /** A sample (oldest running xid, then the WAL insert position). Out-of-order xids are ignored. */
  add(xid: bigint, lsn: Lsn): void {
    const last = this.pending[this.pending.length - 1]?.xid ?? this.current ?? 0n;
    if (xid < last) return;
    this.pending.push({ xid, lsn });
    if (this.pending.length > MAX_PENDING) this.pending.shift();
  }

  /** The horizon of a checkpoint at `lsn`: the newest sample whose LSN it covers, else the previous one. */
  at(lsn: Lsn): string | undefined {
    while (this.pending.length > 0 && (this.pending[0] as Sample).lsn <= lsn) {
      const sample = this.pending.shift() as Sample;
      if (this.current === undefined || sample.xid > this.current) this.current = sample.xid;
    }
    return this.current?.toString();
  }
}

/** The sample's SQL: the statement's snapshot is taken before the insert position is read. */
export function horizonSampleSql(major: number): string {
  const xmin = major >= 13 ? 'pg_snapshot_xmin(pg_current_snapshot())' : 'txid_snapshot_xmin(txid_current_snapshot())';
  return (
    `select ${xmin}::text as xid, (case when pg_is_in_recovery() then pg_last_wal_replay_lsn() ` +
    `else pg_current_wal_insert_lsn() end)::text as lsn`
  );
}

/** Samples the horizon every interval on a connection of its own; `at` answers from the samples so far. */
export class XidHorizonSampler {
  private readonly tracker: HorizonTracker;
  private readonly timer: NodeJS.Timeout;
  private client: pg.Client | undefined;
  private busy = false;
  private closed = false;
  private complained = false;

  constructor(
    private readonly endpoint: SourceEndpoint,
    private readonly major: number,
    private readonly log: Logger,
    seed: string | undefined,
  ) {
    this.tracker = new HorizonTracker(seed);
    const env = Number(process.env.PGCDC_TEST_HORIZON_INTERVAL_MS);
    const every = Number.isInteger(env) && env > 0 ? env : SAMPLE_INTERVAL_MS;
    this.timer = setInterval(() => void this.sample(), every);
    this.timer.unref();
    void this.sample();
  }

  /** The horizon to store with a checkpoint at `lsn` (Delivery calls this; never blocks). */
  at(lsn: Lsn): string | undefined {
    return this.tracker.at(lsn);
  }

  close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    const client = this.client;
    this.client = undefined;
    return client ? client.end().catch(() => undefined) : Promise.resolve();
  }

  private async sample(): Promise<void> {
    if (this.busy || this.closed) return;
    this.busy = true;
    try {
      if (!this.client) {
        const opening = openConnection(this.endpoint, 'query', 'pgcdc-horizon', {
          statementTimeoutMs: SAMPLE_TIMEOUT_MS,
        });
        const client = await withinMs(opening, SAMPLE_TIMEOUT_MS * 5).catch((error: unknown) => {
          // Opened too late: closed when it arrives.
          void opening.then((late) => late.end()).catch(() => undefined);
          throw error;
        });
        client.on('error', () => undefined);
        if (this.closed) {
          await client.end().catch(() => undefined);
          return;
        }
        this.client = client;
      }
      const { rows } = await withinMs(
        this.client.query<{ xid: string; lsn: string | null }>(horizonSampleSql(this.major)),
        SAMPLE_TIMEOUT_MS * 2,
      );
      const row = rows[0];
      if (row?.lsn !== null && row?.lsn !== undefined) this.tracker.add(BigInt(row.xid), parseLsn(row.lsn));
    } catch (error) {
      if (!this.complained) {
        this.complained = true;
        this.log.debug({ error: toCdcError(error).message }, 'xid horizon sample failed (retried quietly)');
      }
      // Not awaited: ending a connection whose server vanished may never settle.
      const broken = this.client;
      this.client = undefined;
      void broken?.end().catch(() => undefined);
    } finally {
      this.busy = false;
    }
  }
}

/** `work`, or a rejection after `ms` (a half-open connection would otherwise hold the sampler forever). */
async function withinMs<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      work,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
