/**
 * The liveness timers (src/postgres/link-watch.ts) against real PostgreSQL: a query left without an
 * answer fails with SOURCE_TIMEOUT and its connection is closed, an idle connection is never judged,
 * closing a silent connection is bounded, the server-side statement_timeout is set; and a quiet
 * replication stream, even with wal_sender_timeout 0 (no keepalives unless asked), never trips the
 * receive timeout: pgcdc asks for keepalives itself.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CdcError } from '../../src/core/errors.ts';
import { openConnection, resolveEndpoint, serverStatementTimeoutMs } from '../../src/postgres/connect.ts';
import { endWithin } from '../../src/postgres/link-watch.ts';
import { eventually, freshDatabase, onTeardown, startCluster } from '../harness/pg.ts';
import { TcpProxy } from '../harness/tcp-proxy.ts';
import { readJsonl, startPgcdc } from '../harness/cli.ts';

const QUERY_TEST =
  'a query without an answer fails with SOURCE_TIMEOUT; an idle silent connection is left alone; close is bounded';
test(QUERY_TEST, async () => {
  const db = await freshDatabase();
  const target = new URL(db.url);
  const proxy = await TcpProxy.start({ host: target.hostname, port: Number(target.port) });
  onTeardown(() => proxy.close());
  const endpoint = { ...resolveEndpoint({ url: proxy.url(db.url), connectTimeoutMs: 10_000 }, {}) };
  const limit = 1500;
  const client = await openConnection(endpoint, 'query', 'pgcdc-liveness', { statementTimeoutMs: limit });
  const { rows } = await client.query<{ ms: string }>(
    `select setting as ms from pg_settings where name = 'statement_timeout'`,
  );
  assert.equal(Number(rows[0]?.ms), serverStatementTimeoutMs(limit), 'the server-side statement_timeout');

  const idle = await openConnection(endpoint, 'query', 'pgcdc-liveness-idle', { statementTimeoutMs: limit });
  assert.equal(proxy.halfOpen('regular'), 2);
  const failure = await client.query('select 1').then(
    () => undefined,
    (error: unknown) => error,
  );
  assert.ok(failure instanceof CdcError, `a typed error, not ${String(failure)}`);
  assert.equal(failure.code, 'SOURCE_TIMEOUT');
  assert.equal(failure.retryable, true);
  assert.match(failure.message, /pgcdc-liveness connection to .* sent nothing for .* while a query waited/);
  assert.doesNotMatch(failure.message, /password|postgres:\/\//);

  // The idle one was never judged: nothing was asked of it. Closing it, with no goodbye from the
  // server ever coming, still ends.
  assert.equal(idle.connection.stream.destroyed, false);
  await endWithin(idle, 500);
  assert.equal(idle.connection.stream.destroyed, true);
});

const QUIET_TEST =
  'with wal_sender_timeout 0 a quiet stream stays up: pgcdc asks for keepalives within its receive timeout';
test(QUIET_TEST, async () => {
  const cluster = await startCluster({ settings: { wal_sender_timeout: '0' } });
  const db = await freshDatabase({ major: cluster.major, url: (d) => cluster.url(d), cluster });
  await db.sql.query('create table quiet (id int primary key)');
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-liveness-'));
  const config = path.join(dir, 'pgcdc.yaml');
  await writeFile(config, 'source:\n  receiveTimeoutMs: 2000\n');
  const proc = startPgcdc([
    'run',
    '--config',
    config,
    '--source',
    db.url,
    '--slot',
    `s_${db.name}`,
    '--publication',
    'quiet_pub',
    '--tables',
    'public.quiet',
    '--out',
    path.join(dir, 'events'),
    '--offsets',
    path.join(dir, 'offsets.json'),
    '--log-format',
    'json',
  ]);
  const delivered = async (id: number): Promise<void> => {
    await db.sql.query('insert into quiet values ($1)', [id]);
    await eventually(
      async () => ((await readJsonl(path.join(dir, 'events'))).some((e) => e.key?.id === id) ? true : undefined),
      `row ${id} delivered`,
    );
  };
  await delivered(1);
  // The duration under test: five receive timeouts without a single change on the server.
  await new Promise((resolve) => setTimeout(resolve, 10_000));
  assert.equal(proc.child.exitCode, null, `pgcdc still runs: ${proc.stderr().slice(-500)}`);
  assert.doesNotMatch(proc.stderr(), /SOURCE_TIMEOUT|received nothing/);
  await delivered(2);
  proc.kill('SIGTERM');
  assert.equal(await proc.exited, 0);
});
