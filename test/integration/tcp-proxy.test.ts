/**
 * The network-fault proxy of the tests (test/harness/tcp-proxy.ts) against real PostgreSQL: it
 * classifies connections from their startup packet, forwards faithfully, and its faults do what they
 * say (cut resets, stall holds and loses nothing, half-open goes silent without closing).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import pg from 'pg';
import { eventually, freshDatabase, type TestDatabase } from '../harness/pg.ts';
import { TcpProxy } from '../harness/tcp-proxy.ts';

async function proxyFor(db: TestDatabase): Promise<TcpProxy> {
  const u = new URL(db.url);
  const proxy = await TcpProxy.start({ host: u.hostname, port: Number(u.port) });
  return proxy;
}

async function client(url: string, options: { replication?: boolean; name: string }): Promise<pg.Client> {
  const config: pg.ClientConfig & { replication?: string } = { connectionString: url, application_name: options.name };
  if (options.replication) config.replication = 'database';
  const c = new pg.Client(config);
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

/** The state of the backend with `name` as application_name, seen directly (not through the proxy). */
async function backendState(db: TestDatabase, name: string): Promise<string | undefined> {
  const { rows } = await db.sql.query<{ state: string | null }>(
    `select state from pg_stat_activity where application_name = $1`,
    [name],
  );
  return rows[0]?.state ?? undefined;
}

test('the proxy forwards and classifies regular and replication connections', async () => {
  const db = await freshDatabase();
  const proxy = await proxyFor(db);
  try {
    const regular = await client(proxy.url(db.url), { name: 'proxy-regular' });
    const replication = await client(proxy.url(db.url), { name: 'proxy-replication', replication: true });
    assert.equal((await regular.query<{ n: number }>('select 41 + 1 as n')).rows[0]?.n, 42);
    const identify = await replication.query<{ systemid: string }>('IDENTIFY_SYSTEM');
    assert.ok(identify.rows[0]?.systemid);
    assert.equal(proxy.connections('regular'), 1);
    assert.equal(proxy.connections('replication'), 1);
    await regular.end();
    await replication.end();
    await eventually(() => (proxy.connections() === 0 ? true : undefined), 'both connections closed');
  } finally {
    await proxy.close();
  }
});

test('an SSLRequest is forwarded and the startup packet after it still classified', async () => {
  const db = await freshDatabase();
  const proxy = await proxyFor(db);
  const socket = net.connect(proxy.port, '127.0.0.1');
  try {
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    const ssl = Buffer.alloc(8);
    ssl.writeInt32BE(8, 0);
    ssl.writeInt32BE(80877103, 4);
    socket.write(ssl);
    const answer = await new Promise<Buffer>((resolve) => socket.once('data', resolve));
    // Embedded clusters have no TLS: the server's own answer, forwarded, is 'N'.
    assert.equal(answer.toString('latin1'), 'N');
    const user = new URL(db.url).username;
    const params = Buffer.from(`user\0${user}\0database\0${db.name}\0replication\0database\0\0`, 'utf8');
    const startup = Buffer.alloc(8 + params.length);
    startup.writeInt32BE(startup.length, 0);
    startup.writeInt32BE(196608, 4);
    params.copy(startup, 8);
    socket.write(startup);
    // Any answer (an authentication request) shows the server read it.
    const reply = await new Promise<Buffer>((resolve) => socket.once('data', resolve));
    assert.ok(['R', 'E'].includes(String.fromCharCode(reply[0] ?? 0)));
    assert.equal(proxy.accepted.replication, 1);
  } finally {
    socket.destroy();
    await proxy.close();
  }
});

test('cut resets only the connections of the kind asked for', async () => {
  const db = await freshDatabase();
  const proxy = await proxyFor(db);
  try {
    const regular = await client(proxy.url(db.url), { name: 'cut-regular' });
    const replication = await client(proxy.url(db.url), { name: 'cut-replication', replication: true });
    const lost = new Promise<Error>((resolve) => replication.once('error', resolve));
    assert.equal(proxy.cut('replication'), 1);
    assert.match((await lost).message, /ECONNRESET|terminated/i);
    assert.equal((await regular.query<{ n: number }>('select 1 as n')).rows[0]?.n, 1);
    assert.equal(proxy.cut(), 1);
    await assert.rejects(regular.query('select 1'));
  } finally {
    await proxy.close();
  }
});

test('stall holds every byte both ways and new connections, then resumes losing nothing', async () => {
  const db = await freshDatabase();
  await db.sql.query('create table stalled (n int)');
  const proxy = await proxyFor(db);
  try {
    const before = await client(proxy.url(db.url), { name: 'stall-before' });
    const stall = proxy.stall(3000);
    const insert = before.query<{ n: number }>('insert into stalled values (1) returning n');
    const connecting = client(proxy.url(db.url), { name: 'stall-new' });
    // Still within the stall: the insert has not reached the server.
    assert.equal((await db.sql.query('select * from stalled')).rowCount, 0);
    await stall;
    assert.equal((await insert).rows[0]?.n, 1);
    const after = await connecting;
    assert.equal((await after.query<{ n: number }>('select count(*)::int as n from stalled')).rows[0]?.n, 1);
    await before.end();
    await after.end();
  } finally {
    await proxy.close();
  }
});

test('half-open goes silent without closing either side, until the proxy closes', async () => {
  const db = await freshDatabase();
  const proxy = await proxyFor(db);
  const silent = await client(proxy.url(db.url), { name: 'half-open' });
  const other = await client(proxy.url(db.url), { name: 'half-open-other', replication: true });
  try {
    assert.equal(proxy.halfOpen('regular'), 1);
    let settled = false;
    const query = silent.query('select 1').then(
      () => (settled = true),
      () => (settled = true),
    );
    // The query never reached the server: its backend stays idle, and the client hears nothing.
    assert.equal(await backendState(db, 'half-open'), 'idle');
    await other.query('IDENTIFY_SYSTEM');
    assert.equal(settled, false);
    assert.equal(proxy.connections('regular'), 1);
    await proxy.close();
    await query;
    assert.equal(proxy.connections(), 0);
  } finally {
    await proxy.close();
    await other.end().catch(() => undefined);
    await silent.end().catch(() => undefined);
  }
});
