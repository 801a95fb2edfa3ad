/**
 * Test harness: real PostgreSQL, always. One embedded cluster per test file (node:test runs each
 * file in its own process), a fresh database per test. `PGCDC_TEST_PG=10..18` picks the major;
 * `PGCDC_TEST_URL` points at an existing server (a superuser URL; its databases are created here);
 * give it an sslmode (`?sslmode=disable` for a server without TLS), since pgcdc defaults to require.
 * Everything a test file creates in the temp directory, clusters included, is under one root that
 * goes when its process ends (./tmp.ts). Decide skips inside tests, never by a top-level await
 * (see assertTeardownPending).
 */
// First: it points TMPDIR at this process's temp root.
import { onProcessExit } from './tmp.ts';
import { after } from 'node:test';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { EmbeddedCluster, DEFAULT_MAJOR, type ClusterOptions } from '../../src/embedded/cluster.ts';

export const TEST_MAJOR = Number(process.env.PGCDC_TEST_PG ?? DEFAULT_MAJOR);

export interface TestServer {
  major: number;
  /** URL of a database on this server (with credentials: never print it). */
  url(database?: string): string;
  /** The embedded cluster, absent when PGCDC_TEST_URL is used (tests needing restarts then skip). */
  cluster: EmbeddedCluster | undefined;
}

let shared: Promise<TestServer> | undefined;

/** Teardown steps, run last-registered first once the file's tests are done. */
const teardown: (() => Promise<unknown>)[] = [];
let tornDown = false;
// Registered when this module is first imported (the top level of a test file), so it runs after
// the whole file; an `after()` called inside a test would run when that test ends.
after(async () => {
  tornDown = true;
  while (teardown.length > 0)
    await teardown
      .pop()?.()
      .catch(() => undefined);
});

/**
 * Throws when the file's teardown already ran. node:test runs the root `after` hook as soon as the
 * tests registered so far are done: a test registered after a top-level `await` of the test file
 * comes too late when the tests before it end first (all filtered out by --test-name-pattern, say).
 * What such a test started would never be stopped and would keep the process alive, so it fails
 * here, before starting anything.
 */
export function assertTeardownPending(): void {
  if (tornDown) {
    throw new Error(
      "the test file's teardown already ran: a test was registered after a top-level await of the test file; " +
        'decide skips inside the test (t.skip) instead of awaiting at the top level',
    );
  }
}

export function onTeardown(step: () => Promise<unknown>): void {
  assertTeardownPending();
  teardown.push(step);
}

/** Starts a dedicated cluster for this test (for tests that restart or crash the server). */
export async function startCluster(options: ClusterOptions = {}): Promise<EmbeddedCluster> {
  assertTeardownPending();
  const cluster = await EmbeddedCluster.start({
    major: TEST_MAJOR,
    settings: { wal_sender_timeout: '10s' },
    ...options,
  });
  return stopWithTheFile(cluster);
}

/**
 * Destroys `cluster` after the test file and, should the process end before that (a crash, a
 * signal), stops it at exit: its files are under the process's temp root, removed then.
 */
export function stopWithTheFile(cluster: EmbeddedCluster): EmbeddedCluster {
  const forget = onProcessExit(() => cluster.stopNow());
  onTeardown(async () => {
    await cluster.destroy();
    forget();
  });
  return cluster;
}

/** The server shared by every test in this file. */
export function testServer(): Promise<TestServer> {
  shared ??= (async (): Promise<TestServer> => {
    const external = process.env.PGCDC_TEST_URL;
    if (external) {
      const base = new URL(external);
      const client = new pg.Client({ connectionString: external });
      await client.connect();
      const version = await client.query<{ v: string }>(`select current_setting('server_version_num') as v`);
      await client.end();
      return {
        major: Math.floor(Number(version.rows[0]?.v) / 10000),
        url: (database = base.pathname.slice(1)) => {
          const u = new URL(external);
          u.pathname = `/${database}`;
          return u.toString();
        },
        cluster: undefined,
      };
    }
    const cluster = await startCluster();
    return { major: cluster.major, url: (database) => cluster.url(database), cluster };
  })();
  return shared;
}

export interface TestDatabase {
  name: string;
  url: string;
  server: TestServer;
  /** A plain (non-replication) client, connected; closed after the test file. */
  sql: pg.Client;
}

/** A new, empty database on the shared server. Its slots are dropped after the file runs. */
export async function freshDatabase(server?: TestServer): Promise<TestDatabase> {
  assertTeardownPending();
  const srv = server ?? (await testServer());
  const name = `t_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: srv.url('postgres') });
  await admin.connect();
  await admin.query(`create database ${name}`);
  await admin.end();
  const sql = new pg.Client({ connectionString: srv.url(name) });
  sql.on('error', () => undefined); // the server may be crashed on purpose by the test
  await sql.connect();
  onTeardown(async () => {
    await sql
      .query(
        `select pg_drop_replication_slot(slot_name) from pg_replication_slots where database = ` +
          `current_database() and not active`,
      )
      .catch(() => undefined);
    await sql.end().catch(() => undefined);
  });
  return { name, url: srv.url(name), server: srv, sql };
}

/**
 * Polls `probe` until it returns a value that is not undefined. Tests await state this way and never
 * sleep a fixed time; the deadline only bounds a hung test, it is not a timing assertion.
 */
export async function eventually<T>(
  probe: () => Promise<T | undefined> | T | undefined,
  what: string,
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}${lastError instanceof Error ? `: ${lastError.message}` : ''}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * A test that needs a program missing on this machine skips loudly, and fails when
 * PGCDC_REQUIRE_ALL=1 (CI installs everything and sets it).
 */
export function requireOrSkip(available: boolean, what: string): string | false {
  if (available) return false;
  const message = `SKIPPED: ${what} is not available on this machine`;
  if (process.env.PGCDC_REQUIRE_ALL === '1') throw new Error(`${message} (PGCDC_REQUIRE_ALL=1 forbids skipping)`);
  process.stderr.write(`\n*** ${message} ***\n`);
  return message;
}
