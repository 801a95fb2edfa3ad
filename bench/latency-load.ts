/**
 * For bench/latency.ts: the offered load, in its own process so that pacing the inserts shares nothing
 * with the bench's reader (and a late reader cannot slow the load down).
 *
 *   node --import tsx bench/latency-load.ts <rate> <seconds> <tx-size> <first id>
 *   (the connection string in PGCDC_BENCH_URL, the password in PGPASSWORD)
 *
 * Transaction i (tx-size rows, one autocommit INSERT) is due at start + i * tx-size / rate seconds: a
 * fixed schedule, not "as fast as the last one allows", so a slow commit does not lower the load that
 * follows (a late transaction runs at once). Prints one JSON line at the end (LoadReport).
 */
import pg from 'pg';

/** What the loader prints when done. */
export interface LoadReport {
  transactions: number;
  rows: number;
  /** From the first transaction's start to the last one's commit acknowledgement, ms. */
  elapsedMs: number;
  /** rows / elapsed. */
  achievedRate: number;
  /** How late transactions started against their schedule, ms (p99 and max). */
  lateP99Ms: number;
  lateMaxMs: number;
}

async function main(): Promise<void> {
  const [rate, seconds, txSize, first] = process.argv.slice(2).map(Number);
  const url = process.env.PGCDC_BENCH_URL;
  if (!rate || !seconds || !txSize || first === undefined || url === undefined) {
    process.stderr.write('latency-load: usage: <rate> <seconds> <tx-size> <first id>, PGCDC_BENCH_URL set\n');
    process.exit(2);
  }
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const intervalMs = (txSize * 1000) / rate;
  const transactions = Math.max(1, Math.round((rate * seconds) / txSize));
  const late: number[] = [];
  const started = performance.now();
  let id = first;
  for (let i = 0; i < transactions; i++) {
    const due = started + i * intervalMs;
    const wait = due - performance.now();
    if (wait > 0.5) await new Promise((resolve) => setTimeout(resolve, wait));
    late.push(Math.max(0, performance.now() - due));
    await client.query(
      'insert into lat select g, (g * 7919) % 1000003, substr(md5(g::text), 1, 8) from ' +
        'generate_series($1::bigint, $2::bigint) g',
      [id, id + txSize - 1],
    );
    id += txSize;
  }
  const elapsedMs = performance.now() - started;
  await client.end();
  late.sort((a, b) => a - b);
  const rows = transactions * txSize;
  const report: LoadReport = {
    transactions,
    rows,
    elapsedMs,
    achievedRate: (rows / elapsedMs) * 1000,
    lateP99Ms: late[Math.min(late.length - 1, Math.ceil(late.length * 0.99) - 1)] ?? 0,
    lateMaxMs: late[late.length - 1] ?? 0,
  };
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

await main();
