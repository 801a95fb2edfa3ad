/**
 * Event shaping end to end (docs/notes-shaping.md): a real `pgcdc run` on real PostgreSQL with the
 * JSONL sink, `envelope.type: flat` and per-table rules (a hash mask with the salt from the
 * environment, a fixed mask, an excluded column, a truncated column, deletes dropped on the tenant
 * tables, which are routed into one topic). Rows exist before the start (the initial snapshot's
 * reads) and a workload runs while streaming (inserts, updates, deletes, a primary-key change).
 * The flat events replayed onto an empty map equal the source projected by the rules: masked
 * values are the expected hashes, excluded columns are absent, truncated values are cut, and the
 * deleted tenant rows are still there with their last values (their deletes were dropped).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freshDatabase, eventually, type TestDatabase } from '../harness/pg.ts';
import { compareRows, startPgcdc } from '../harness/cli.ts';

const SALT = 'integration-salt-3f9a';
const TENANTS = ['tenant_a', 'tenant_b'] as const;
const CONFIG = `
envelope:
  type: flat
shaping:
  salt:
    env: PGCDC_SHAPING_SALT
  rules:
    - tables: [public.customers]
      exclude: [password_hash]
      mask:
        email: hash
        name: { fixed: '***' }
      truncate:
        bio: 10
    - tables: ['tenant_*.orders']
      drop: [d]
      topic: '{prefix}.tenants.orders'
`;

type Row = Record<string, unknown>;
interface FlatEvent {
  id: string;
  topic: string;
  key: Row | null;
  value: (Row & { __op: string; __deleted: boolean; __table: string; __lsn: number; __ts_ms: number }) | null;
}

const hash = (json: string): string => createHash('sha256').update(SALT).update(json, 'utf8').digest('hex');
/** The first n characters (code points), computed apart from pgcdc's own code. */
const firstChars = (text: string, n: number): string => Array.from(text).slice(0, n).join('');

async function readEvents(dir: string): Promise<{ files: string[]; events: FlatEvent[] }> {
  const files = (await readdir(dir).catch(() => [])).filter((f) => f.endsWith('.jsonl')).sort();
  const events: FlatEvent[] = [];
  for (const file of files)
    for (const line of (await readFile(path.join(dir, file), 'utf8')).split('\n'))
      if (line.length > 0) events.push(JSON.parse(line) as FlatEvent);
  return { files, events };
}

/** Flat events onto an empty map, keyed by table and key, as a consumer of flat events does. */
function replayFlat(events: readonly FlatEvent[]): { rows: Map<string, Map<string, Row>>; duplicates: number } {
  const rows = new Map<string, Map<string, Row>>();
  const seen = new Set<string>();
  let duplicates = 0;
  for (const event of events) {
    if (seen.has(event.id)) {
      duplicates++;
      continue;
    }
    seen.add(event.id);
    const value = event.value;
    if (value === null) throw new Error(`unexpected tombstone ${event.id}`);
    const { __op: op, __deleted: deleted, __table: table, __lsn: _lsn, __ts_ms: _ts, ...row } = value;
    let of = rows.get(table);
    if (!of) rows.set(table, (of = new Map<string, Row>()));
    if (op === 't') of.clear();
    else if (deleted) of.delete(JSON.stringify(event.key));
    else of.set(JSON.stringify(event.key), row);
  }
  return { rows, duplicates };
}

async function seed(db: TestDatabase): Promise<void> {
  await db.sql.query(
    `create table customers (id int primary key, email text, name text, password_hash text not null, bio text)`,
  );
  await db.sql.query(
    `insert into customers select g, 'user' || g || '@example.com', 'Name ' || g, md5(g::text),
       case when g % 5 = 0 then null else repeat('é😀x', g % 7) || ' bio ' || g end
     from generate_series(1, 50) g`,
  );
  for (const tenant of TENANTS) {
    await db.sql.query(`create schema ${tenant}`);
    await db.sql.query(`create table ${tenant}.orders (id int primary key, customer_id int, total numeric, note text)`);
    await db.sql.query(
      `insert into ${tenant}.orders select g, g % 50 + 1, (g * 1.25)::numeric(10,2), 'first ' || g
       from generate_series(1, 30) g`,
    );
  }
}

/** Inserts, updates, deletes and a key change; returns the tenant rows deleted (their last state). */
async function workload(db: TestDatabase): Promise<Map<string, Row>> {
  const deleted = new Map<string, Row>();
  for (let round = 0; round < 20; round++) {
    const id = 100 + round;
    await db.sql.query('begin');
    await db.sql.query(`insert into customers values ($1, $2, $3, 'pw', $4)`, [
      id,
      `new${id}@example.com`,
      `New ${id}`,
      `${'ü'.repeat(round)}😀 long biography number ${id}`,
    ]);
    await db.sql.query(`update customers set bio = bio || ' more', email = upper(email) where id = $1`, [round + 1]);
    for (const tenant of TENANTS) {
      await db.sql.query(`insert into ${tenant}.orders values ($1, $2, $3, 'new')`, [id, round + 1, `${round}.5`]);
      await db.sql.query(`update ${tenant}.orders set note = 'updated ' || $2::text, total = total + 1 where id = $1`, [
        round + 1,
        round,
      ]);
      const gone = await db.sql.query<Row>(`delete from ${tenant}.orders where id = $1 returning *`, [round + 10]);
      for (const row of gone.rows) deleted.set(`${tenant}.orders|${JSON.stringify({ id: row.id })}`, row);
    }
    if (round % 4 === 0) await db.sql.query(`delete from customers where id = $1`, [round + 30]);
    await db.sql.query('commit');
  }
  await db.sql.query(`update customers set id = 1003, name = null where id = 3`);
  return deleted;
}

/** The source tables as the rules project them, keyed like the replay. */
async function projected(db: TestDatabase, deleted: Map<string, Row>): Promise<Map<string, Map<string, Row>>> {
  const out = new Map<string, Map<string, Row>>();
  const customers = new Map<string, Row>();
  for (const row of (await db.sql.query<Row>(`select id, email, name, bio from customers order by id`)).rows)
    customers.set(JSON.stringify({ id: row.id }), {
      id: row.id,
      email: row.email === null ? null : hash(JSON.stringify(row.email)),
      name: row.name === null ? null : '***',
      bio: typeof row.bio === 'string' ? firstChars(row.bio, 10) : null,
    });
  out.set('public.customers', customers);
  for (const tenant of TENANTS) {
    const rows = new Map<string, Row>();
    for (const row of (await db.sql.query<Row>(`select * from ${tenant}.orders order by id`)).rows)
      rows.set(JSON.stringify({ id: row.id }), row);
    for (const [key, row] of deleted) {
      const [table = '', rowKey = ''] = key.split('|');
      if (table === `${tenant}.orders`) rows.set(rowKey, row);
    }
    out.set(`${tenant}.orders`, rows);
  }
  return out;
}

test('flat events shaped by the rules replay onto the source projected by the rules', async () => {
  const db = await freshDatabase();
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-shaping-'));
  await seed(db);
  const config = path.join(dir, 'pgcdc.yaml');
  await writeFile(config, CONFIG);
  const out = path.join(dir, 'events');
  const proc = startPgcdc(
    [
      'run',
      '--config',
      config,
      '--source',
      db.url,
      '--slot',
      `s_${db.name}`,
      '--publication',
      'shaping_pub',
      '--tables',
      'public.customers,tenant_*.orders',
      '--topic-prefix',
      'shop',
      '--out',
      out,
      '--offsets',
      path.join(dir, 'offsets.json'),
      '--log-format',
      'json',
    ],
    { PGCDC_SHAPING_SALT: SALT },
  );
  const fail = (error: unknown): never => {
    throw new Error(`${String(error)}\n${proc.stderr()}`);
  };
  await eventually(
    async () => ((await readEvents(out)).events.length >= 110 ? true : undefined),
    'the 110 reads',
  ).catch(fail);
  const deleted = await workload(db);
  const expected = await projected(db, deleted);
  // Await the state, not a count: the replay equals the projection once everything arrived.
  await eventually(async () => {
    const { rows } = replayFlat((await readEvents(out)).events);
    for (const [table, source] of expected) {
      const c = compareRows(rows.get(table), source);
      if (c.lost + c.extra + c.mismatched > 0) return undefined;
    }
    return true;
  }, 'the replay to equal the projected source').catch(fail);
  proc.kill('SIGTERM');
  assert.equal(await proc.exited, 0, proc.stderr());

  const { files, events } = await readEvents(out);
  assert.deepEqual(files, ['shop.public.customers.jsonl', 'shop.tenants.orders.jsonl'], 'the tenants in one topic');
  const { rows, duplicates } = replayFlat(events);
  const verdict = [...expected].map(([table, source]) => ({ table, ...compareRows(rows.get(table), source) }));
  const ops: Record<string, number> = {};
  for (const e of events) ops[e.value?.__op ?? 'null'] = (ops[e.value?.__op ?? 'null'] ?? 0) + 1;
  console.log(
    `shaping replay: ${events.length} events ${JSON.stringify(ops)}, ${duplicates} duplicates, ` +
      `${deleted.size} tenant deletes dropped, ${JSON.stringify(verdict)}`,
  );
  // 50 + 2 x 30 reads; per round 1 insert and 1 update of customers and per tenant 1 insert and 1
  // update (none after round 8: its row was deleted, id r + 1 == (r - 9) + 10); 5 customer deletes;
  // the key change's delete and create.
  assert.deepEqual(ops, { r: 110, c: 20 + 40 + 1, u: 20 + 2 * 9, d: 5 + 1 });
  for (const v of verdict) assert.deepEqual([v.lost, v.extra, v.mismatched], [0, 0, 0], v.table);
  assert.equal(duplicates, 0);
  assert.equal(new Set(rows.keys()).size, 3);

  const customers = events.filter((e) => e.topic === 'shop.public.customers');
  const orders = events.filter((e) => e.topic === 'shop.tenants.orders');
  assert.equal(customers.length + orders.length, events.length);
  assert.ok(
    events.every((e) => e.value !== null && !('password_hash' in e.value)),
    'the excluded column is in no event',
  );
  assert.ok(
    orders.every((e) => e.value?.__op !== 'd'),
    'no delete of a tenant table is delivered',
  );
  assert.deepEqual([...new Set(orders.map((e) => e.value?.__table))].sort(), ['tenant_a.orders', 'tenant_b.orders']);
  assert.deepEqual(
    [...new Set(events.map((e) => e.value?.__op))].sort(),
    ['c', 'd', 'r', 'u'],
    'reads, inserts, updates and the customers deletes',
  );
  // The masked values are the documented hash: SHA-256 of the salt and the value's JSON text.
  const read1 = customers.find((e) => e.value?.__op === 'r' && e.key?.id === 1);
  assert.equal(read1?.value?.email, hash('"user1@example.com"'));
  assert.equal(read1?.value?.name, '***');
  const bios = customers.map((e) => e.value?.bio).filter((b): b is string => typeof b === 'string');
  assert.ok(bios.length > 50 && bios.every((b) => Array.from(b).length <= 10), 'every bio is cut to 10 characters');
  // The key change: the old key's row marked deleted, then the new key's row.
  const moved = customers.filter((e) => e.key?.id === 3 || e.key?.id === 1003).slice(-2);
  assert.deepEqual(
    moved.map((e) => [e.key, e.value?.__op, e.value?.__deleted]),
    [
      [{ id: 3 }, 'd', true],
      [{ id: 1003 }, 'c', false],
    ],
  );
  // __lsn rises with the commit order, __ts_ms is a commit time.
  const streamed = events.filter((e) => e.value?.__op !== 'r');
  assert.ok(streamed.every((e) => (e.value?.__lsn ?? 0) > 0 && (e.value?.__ts_ms ?? 0) > 1_700_000_000_000));
});
