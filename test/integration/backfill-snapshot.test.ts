/**
 * The consistent initial snapshot against a real server: a slot created with EXPORT_SNAPSHOT, the
 * snapshot read in small chunks by parallel workers while another connection inserts, updates and
 * deletes the same tables. Proven: the snapshot plus the slot's stream from its consistent point
 * (read with pg_logical_slot_peek_binary_changes and pgcdc's own decoder) replays to exactly the
 * tables' final state; a row written after slot creation is in the stream and not the snapshot.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { eventually, freshDatabase, onTeardown, TEST_MAJOR, type TestDatabase } from '../harness/pg.ts';
import { SESSION_OPTIONS } from '../../src/postgres/connect.ts';
import { createSlotWithSnapshot, type ExportedSlot } from '../../src/postgres/exported-snapshot.ts';
import { chunkRows, readSnapshot, tableKey, type SnapshotChunk } from '../../src/snapshot/initial-reader.ts';
import { copyRows } from '../../src/snapshot/query.ts';
import type { CopyRow } from '../../src/snapshot/copy-text.ts';
import { formatLsn } from '../../src/protocol/lsn.ts';
import { PgoutputDecoder } from '../../src/protocol/pgoutput.ts';
import { CdcError } from '../../src/core/errors.ts';

let db: TestDatabase;
const sessionClient = async (): Promise<pg.Client> => {
  const client = new pg.Client({ connectionString: db.url, options: SESSION_OPTIONS });
  await client.connect();
  return client;
};

/**
 * A replication connection, closed at teardown, that created `slot` and exports its snapshot (the export
 * lives while the connection stays open and idle).
 */
async function slotWithSnapshot(slot: string): Promise<{ replication: pg.Client; exported: ExportedSlot }> {
  const replication = new pg.Client({
    connectionString: db.url,
    options: SESSION_OPTIONS,
    replication: 'database',
  } as pg.ClientConfig);
  await replication.connect();
  onTeardown(() => replication.end());
  return { replication, exported: await createSlotWithSnapshot(replication, slot) };
}

before(async () => {
  db = await freshDatabase();
  await db.sql.query(`create table accounts (id int8 primary key, balance int4, note text)`);
  await db.sql.query(`create table regions (code text, n int4, label text, primary key (code, n))`);
  await db.sql.query(`create table events (at int4, what text)`);
  await db.sql.query(`alter table events replica identity full`);
  await db.sql.query(`insert into accounts select g, g % 1000, 'n' || g from generate_series(1, 3000) g`);
  await db.sql.query(
    `insert into regions select chr(65 + g % 26) || chr(97 + g % 7) || '\t''é', g, 'l' || g from ` +
      `generate_series(1, 900) g`,
  );
  await db.sql.query(`insert into events select g, 'e' || g from generate_series(1, 1500) g`);
  await db.sql.query(`create publication pub for table accounts, regions, events`);
});

/** Replays the pgoutput stream from the slot onto per-table maps keyed by the key columns' text. */
async function replayStream(
  slot: string,
  state: Map<string, Map<string, CopyRow>>,
  keyColumns: Map<string, number[]>,
): Promise<number> {
  const { rows } = await db.sql.query<{ data: Buffer }>(
    `select data from pg_logical_slot_peek_binary_changes($1, null, null, 'proto_version', '1', ` +
      `'publication_names', 'pub')`,
    [slot],
  );
  const decoder = new PgoutputDecoder({ protoVersion: 1 });
  const names = new Map<number, string>();
  let changes = 0;
  const keyOf = (table: string, tuple: readonly unknown[]): string =>
    JSON.stringify((keyColumns.get(table) ?? []).map((i) => tuple[i]));
  const textRow = (tuple: readonly unknown[]): CopyRow =>
    tuple.map((v) => (typeof v === 'string' ? v : v === null ? null : assert.fail('non-text value')));
  for (const { data } of rows) {
    const m = decoder.decode(data);
    if (m.tag === 'relation') names.set(m.relationId, m.name);
    if (m.tag !== 'insert' && m.tag !== 'update' && m.tag !== 'delete') continue;
    const table = names.get(m.relationId) ?? assert.fail('unknown relation');
    const map = state.get(table) ?? assert.fail(`no state for ${table}`);
    changes++;
    // Keyless: the "key" is the whole row (REPLICA IDENTITY FULL sends it as the old tuple).
    const full = (keyColumns.get(table) ?? []).length === 0;
    const k = (tuple: readonly unknown[]): string => (full ? JSON.stringify(tuple) : keyOf(table, tuple));
    if (m.tag === 'insert') map.set(k(m.newTuple), textRow(m.newTuple));
    else if (m.tag === 'update') {
      const old = m.oldTuple ?? m.keyTuple;
      if (old) map.delete(k(old));
      map.set(k(m.newTuple), textRow(m.newTuple));
    } else {
      const old = m.oldTuple ?? m.keyTuple ?? assert.fail('delete without old key');
      map.delete(k(old));
    }
  }
  return changes;
}

test(
  `snapshot + stream from the consistent point = final state, under concurrent writes (PostgreSQL ` + `${TEST_MAJOR})`,
  async () => {
    const { exported } = await slotWithSnapshot('snap_slot');
    assert.match(exported.snapshotName, /^[0-9A-F]+-[0-9A-F]+(-[0-9]+)?$/i);

    // Written after the consistent point: must not be in the snapshot, must be in the stream.
    await db.sql.query(`insert into accounts values (1000001, 1, 'after the slot')`);

    const writer = await sessionClient();
    onTeardown(() => writer.end());
    let writing = true;
    let writes = 0;
    let writesDuringRead = 0;
    let reading = false;
    const workload = (async () => {
      let i = 0;
      while (writing) {
        i++;
        await writer.query('begin');
        await writer.query(`update accounts set balance = balance + 1 where id = $1`, [((i * 37) % 3000) + 1]);
        await writer.query(`delete from accounts where id = $1`, [((i * 101) % 3000) + 1]);
        await writer.query(
          `insert into accounts values ($1, $2, 'new') on conflict (id) do update set note = 'upsert'`,
          [((i * 53) % 4000) + 1, i],
        );
        await writer.query(`update regions set label = label || '+' where n = $1`, [((i * 7) % 900) + 1]);
        await writer.query(`update regions set code = code || 'x' where n = $1`, [((i * 11) % 900) + 1]); // key change
        await writer.query(`insert into events values ($1, 'later')`, [i]);
        await writer.query('commit');
        writes++;
        if (reading) writesDuringRead++;
      }
    })();
    await eventually(() => (writes >= 5 ? true : undefined), 'the workload to start');

    const snapshot = new Map<string, Map<string, CopyRow>>([
      ['accounts', new Map()],
      ['regions', new Map()],
      ['events', new Map()],
    ]);
    const keyColumns = new Map<string, number[]>();
    const cursors = new Map<string, string>();
    let imported = false;
    reading = true;
    const summary = await readSnapshot({
      snapshotName: exported.snapshotName,
      tables: ['accounts', 'regions', 'events'].map((table) => ({ schema: 'public', table })),
      major: db.server.major,
      connect: sessionClient,
      chunkRows: 97,
      parallelism: 2,
      onImported: () => (imported = true),
      onChunk: async (chunk: SnapshotChunk) => {
        const name = chunk.table.table;
        keyColumns.set(name, [...chunk.table.keyIndexes]);
        const map = snapshot.get(name) ?? assert.fail(name);
        for (const row of chunkRows(chunk)) {
          const key =
            chunk.table.keyIndexes.length === 0
              ? JSON.stringify(row)
              : JSON.stringify(chunk.table.keyIndexes.map((i) => row[i]));
          assert.equal(map.has(key), false, `${name}: key ${key} delivered twice`);
          map.set(key, row);
        }
        cursors.set(name, JSON.stringify(chunk.cursor));
        // A slow consumer: the workload keeps writing while chunks are handled.
        await new Promise((resolve) => setImmediate(resolve));
      },
    });
    reading = false;
    writing = false;
    await workload;
    assert.ok(imported);
    assert.ok(writesDuringRead > 0, 'no write happened while the snapshot was read');
    assert.deepEqual(Object.fromEntries(summary.rows), {
      'public.accounts': 3000,
      'public.regions': 900,
      'public.events': 1500,
    });
    assert.equal(
      snapshot.get('accounts')?.has(JSON.stringify(['1000001'])),
      false,
      'a row written after the slot is in the snapshot',
    );
    assert.equal((JSON.parse(cursors.get('accounts') ?? '{}') as { done?: boolean }).done, true);

    // Replay the stream from the consistent point onto the snapshot: it must equal the tables now.
    const changes = await replayStream('snap_slot', snapshot, keyColumns);
    assert.ok(changes >= writes * 6, `${changes} changes for ${writes} transactions`);
    assert.equal(snapshot.get('accounts')?.get(JSON.stringify(['1000001']))?.[2], 'after the slot');
    const reader = await sessionClient();
    onTeardown(() => reader.end());
    for (const [name, map] of snapshot) {
      const width = name === 'events' ? 2 : 3;
      const actual = await copyRows(reader, `select * from ${name}`, width);
      const key = (r: CopyRow): string => JSON.stringify(r);
      assert.deepEqual(
        [...map.values()].map(key).sort(),
        actual.map(key).sort(),
        `${name}: snapshot + stream differs from the table`,
      );
    }
    // The slot was created at the consistent point the snapshot reports.
    const slot = await db.sql.query<{ lsn: string }>(
      `select confirmed_flush_lsn::text as lsn from pg_replication_slots where slot_name = 'snap_slot'`,
    );
    assert.equal(slot.rows[0]?.lsn, formatLsn(exported.consistentPoint));
  },
);

test('resume: a table marked done is skipped, another continues after its cursor', async () => {
  const { exported } = await slotWithSnapshot('resume_slot');
  const seen: string[] = [];
  const summary = await readSnapshot({
    snapshotName: exported.snapshotName,
    tables: [
      { schema: 'public', table: 'accounts' },
      { schema: 'public', table: 'events' },
    ],
    major: db.server.major,
    connect: sessionClient,
    chunkRows: 1000,
    parallelism: 4,
    resume: new Map([
      [tableKey({ schema: 'public', table: 'accounts' }), { kind: 'key', after: ['3990'], done: false }],
      [tableKey({ schema: 'public', table: 'events' }), { kind: 'ctid', nextPage: 0, done: true }],
    ]),
    onChunk: (chunk) => {
      for (const row of chunkRows(chunk)) seen.push(`${chunk.table.table}:${row[0]}`);
      return Promise.resolve();
    },
  });
  assert.ok(
    seen.length > 0 && seen.every((s) => s.startsWith('accounts:') && Number(s.slice(9)) > 3990),
    seen.slice(0, 5).join(),
  );
  assert.equal(summary.rows.has('public.events'), false);
});

test('a failing callback stops the snapshot with its error, connections closed', async () => {
  const { exported } = await slotWithSnapshot('fail_slot');
  let opened = 0;
  const closed: Promise<void>[] = [];
  await assert.rejects(
    readSnapshot({
      snapshotName: exported.snapshotName,
      tables: ['accounts', 'regions', 'events'].map((table) => ({ schema: 'public', table })),
      major: db.server.major,
      connect: async () => {
        opened++;
        const client = await sessionClient();
        closed.push(new Promise((resolve) => client.once('end', () => resolve())));
        return client;
      },
      chunkRows: 50,
      parallelism: 3,
      onChunk: () => Promise.reject(new CdcError('SINK_FAILED', 'disk full')),
    }),
    /disk full/,
  );
  assert.equal(opened, 4, 'three readers and one look at the current catalog (the DDL guard)');
  await Promise.all(closed);
  // A snapshot name that does not exist is one clear error.
  await assert.rejects(
    readSnapshot({
      snapshotName: '00000000-00000000-1',
      tables: [{ schema: 'public', table: 'accounts' }],
      major: db.server.major,
      connect: sessionClient,
      chunkRows: 10,
      parallelism: 1,
      onChunk: () => Promise.resolve(),
    }),
    (e: unknown) =>
      e instanceof CdcError && e.code === 'SOURCE_QUERY_FAILED' && /cannot import snapshot/.test(e.message),
  );
});

test('DDL between the export and the readers is caught, retryably, instead of reading a changed table', async () => {
  await db.sql.query(
    `create table ddl_race (id int primary key, a int, b text); insert into ddl_race select g, g, 'x' from ` +
      `generate_series(1, 10) g`,
  );
  const { exported } = await slotWithSnapshot('ddl_slot');
  // The rewrite a snapshot reader could not see past: the column changes type after the export.
  await db.sql.query(`alter table ddl_race alter column a type bigint`);
  await assert.rejects(
    readSnapshot({
      snapshotName: exported.snapshotName,
      tables: [{ schema: 'public', table: 'ddl_race' }],
      major: db.server.major,
      connect: sessionClient,
      chunkRows: 100,
      parallelism: 1,
      onChunk: () => Promise.resolve(),
    }),
    (error: unknown) =>
      error instanceof Error &&
      /changed \(DDL\) while the snapshot was starting/.test(error.message) &&
      (error as { retryable?: boolean }).retryable === true,
  );
});

test('one table read by 1 or 3 readers: the same chunks, rows, cursors and last marks, in the same order', async () => {
  const read = async (parallelism: number): Promise<string[]> => {
    const { replication, exported } = await slotWithSnapshot(`readers_${parallelism}`);
    const chunks: string[] = [];
    let inCallback = false;
    await readSnapshot({
      snapshotName: exported.snapshotName,
      tables: ['accounts', 'regions', 'events'].map((table) => ({ schema: 'public', table })),
      major: db.server.major,
      connect: sessionClient,
      chunkRows: 250,
      parallelism,
      onChunk: async (chunk) => {
        assert.equal(inCallback, false, 'the callback runs one chunk at a time');
        inCallback = true;
        assert.equal(chunkRows(chunk).length, chunk.rowCount);
        chunks.push(
          `${chunk.table.table} ${chunk.rowCount} ${JSON.stringify(chunk.cursor)} ${chunk.lastOfTable} ` +
            `${chunk.tableRows} ${chunk.data.toString('base64')}`,
        );
        // Let the other readers run ahead meanwhile.
        await new Promise<void>((resolve) => setImmediate(resolve));
        inCallback = false;
      },
    });
    await replication.query('DROP_REPLICATION_SLOT ' + `readers_${parallelism}`).catch(() => undefined);
    return chunks;
  };
  const one = await read(1);
  const three = await read(3);
  assert.ok(one.length > 10, `${one.length} chunks`);
  assert.deepEqual(three, one);
  const tableRows = new Map<string, number>();
  for (const chunk of one) {
    const [table = '', rows = '0', , last] = chunk.split(' ');
    tableRows.set(table, (tableRows.get(table) ?? 0) + Number(rows));
    if (last === 'true') assert.ok(chunk.includes('"done":true'), chunk.slice(0, 80));
  }
  for (const table of ['accounts', 'regions', 'events']) assert.ok((tableRows.get(table) ?? 0) > 250, table);
});
