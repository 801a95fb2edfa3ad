/**
 * A Kafka Connect consumer nobody here wrote reads pgcdc's topics: pgcdc captures a source database
 * into a real Kafka broker in the `json-with-schema` format (Kafka Connect's JsonConverter shape),
 * and a standalone Kafka Connect worker runs Debezium's JDBC sink connector (Maven Central) on those
 * topics, writing into a second database of the same PostgreSQL server. After a snapshot, inserts,
 * updates, deletes and a primary-key change, the target tables equal the source tables, compared
 * column by column as PostgreSQL's text.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { eventually, freshDatabase, requireOrSkip, type TestDatabase } from '../harness/pg.ts';
import { compareRows, startPgcdc, type Comparison, type PgcdcProcess } from '../harness/cli.ts';
import { startKafka, type KafkaCluster } from '../harness/kafka.ts';
import {
  connectAvailable,
  ConnectExitedError,
  FailedConnectorError,
  jdbcConnection,
  JDBC_SINK_CONNECTOR,
  startConnect,
  type ConnectorConfig,
  type ConnectWorker,
} from '../harness/kafka-connect.ts';

const skip = requireOrSkip(connectAvailable(), 'Kafka Connect (java, and the test/kafka jars or mvn)');

type ValuesStyle = 'pgcdc' | 'debezium';

interface SourceTable {
  ddl: string;
  key: readonly string[];
}

/** Source tables: a primary key (one single-column, one composite) and the common types. */
const TABLES: Readonly<Record<string, SourceTable>> = {
  items: {
    ddl: `create table items (
      id int primary key,
      big bigint,
      small smallint,
      name text not null,
      code varchar(20),
      flag boolean,
      price numeric(12, 2),
      ratio double precision,
      born date,
      seen timestamptz,
      doc jsonb,
      tag uuid,
      blob bytea
    )`,
    key: ['id'],
  },
  stock: {
    ddl: `create table stock (region text, shelf int, qty bigint not null, note text, primary key (region, shelf))`,
    key: ['region', 'shelf'],
  },
};

/**
 * Only with `values.style: debezium`: pgcdc's own encodings of these types are ISO strings with no
 * logical name (Debezium has none for them), which the sink stores as text in its own form. The
 * intervals are whole seconds under a day: Debezium's MicroDuration is one count of microseconds (a
 * day and 24 hours are the same), and the sink binds it as `cast('<whole seconds> seconds' as interval)`.
 */
const DEBEZIUM_STYLE_TABLES: Readonly<Record<string, SourceTable>> = {
  moments: {
    ddl: `create table moments (id int primary key, at timestamp, at_time time, span interval)`,
    key: ['id'],
  },
};

function tablesOf(style: ValuesStyle): Readonly<Record<string, SourceTable>> {
  return style === 'debezium' ? { ...TABLES, ...DEBEZIUM_STYLE_TABLES } : TABLES;
}

function momentsInsert(from: number, to: number): string {
  return `insert into moments
    select g, timestamp '2023-02-03 04:05:06.789012' + g * interval '1 hour 1 second',
      time '01:02:03.456789' + g * interval '1 minute', g * interval '1 hour 2 minutes 3 seconds'
    from generate_series(${from}, ${to}) g`;
}

/** One row of `items`: every column set, or (odd `id % 10`) the nullable ones left null. */
function itemsInsert(from: number, to: number): string {
  return `insert into items
    select g, g * 10000000000::bigint, (g % 30000)::smallint, 'item ' || g, 'c' || (g % 97),
      case when g % 10 = 1 then null else g % 2 = 0 end,
      case when g % 10 = 1 then null else (g * 1.25)::numeric(12, 2) end,
      case when g % 10 = 1 then null else g / 4.0 end,
      case when g % 10 = 1 then null else date '2020-01-01' + g end,
      case when g % 10 = 1 then null else timestamptz '2024-05-06 07:08:09.123456+00' + g * interval '1 minute' end,
      case when g % 10 = 1 then null else jsonb_build_object('n', g, 'tags', jsonb_build_array('a', g)) end,
      case when g % 10 = 1 then null else md5(g::text)::uuid end,
      case when g % 10 = 1 then null else decode(md5(g::text), 'hex') end
    from generate_series(${from}, ${to}) g`;
}

function stockInsert(from: number, to: number): string {
  return `insert into stock select 'r' || (g % 5), g, g * 3, 'shelf ' || g from generate_series(${from}, ${to}) g`;
}

/** Every row of `table` as PostgreSQL's text of each column, keyed by the key columns' text. */
async function rowsAsText(
  db: TestDatabase,
  table: string,
  columns: readonly string[],
  key: readonly string[],
): Promise<Map<string, Record<string, unknown>>> {
  const select = columns.map((c) => `${c}::text as ${c}`).join(', ');
  const { rows } = await db.sql.query<Record<string, string | null>>(`select ${select} from ${table}`);
  return new Map(rows.map((row) => [JSON.stringify(key.map((k) => row[k])), row]));
}

async function columnsOf(db: TestDatabase, table: string): Promise<string[]> {
  const { rows } = await db.sql.query<{ name: string }>(
    `select column_name as name from information_schema.columns
      where table_schema = 'public' and table_name = $1 order by ordinal_position`,
    [table],
  );
  return rows.map((r) => r.name);
}

/** Per table: the counts, and the first mismatched row as [source, target] (for the failure message). */
type TableComparison = Comparison & { sample?: [Record<string, unknown>, Record<string, unknown>] };

/** Source and target compared per table; `undefined` while a target table does not exist yet. */
async function compareTables(
  tables: Readonly<Record<string, SourceTable>>,
  source: TestDatabase,
  target: TestDatabase,
): Promise<Record<string, TableComparison> | undefined> {
  const result: Record<string, TableComparison> = {};
  for (const [table, { key }] of Object.entries(tables)) {
    const columns = await columnsOf(source, table);
    if ((await columnsOf(target, table)).length === 0) return undefined;
    const expected = await rowsAsText(source, table, columns, key);
    const got = await rowsAsText(target, table, columns, key);
    result[table] = compareRows(got, expected);
    for (const [rowKey, row] of expected) {
      const other = got.get(rowKey);
      if (other && JSON.stringify(other) !== JSON.stringify(row)) {
        result[table] = { ...result[table], sample: [row, other] };
        break;
      }
    }
  }
  return result;
}

function equal(comparison: Record<string, Comparison>): boolean {
  return Object.values(comparison).every((c) => c.lost === 0 && c.extra === 0 && c.mismatched === 0);
}

/** Debezium's JDBC sink on pgcdc's table topics of `source`, writing into `target`. */
function jdbcSinkConnector(source: TestDatabase, target: TestDatabase): ConnectorConfig {
  return {
    'connector.class': JDBC_SINK_CONNECTOR,
    'tasks.max': 1,
    // pgcdc's table topics are <prefix>.<schema>.<table>; its offsets topic (<prefix>.pgcdc-offsets) is not one.
    'topics.regex': `${source.name}\\.public\\..*`,
    ...jdbcConnection(target.url),
    'insert.mode': 'upsert',
    'delete.enabled': true,
    'primary.key.mode': 'record_key',
    'schema.evolution': 'basic',
    // Target table = the source table's name: the topic's last part. Renaming the topic (Kafka's RegexRouter)
    // rather than `collection.name.format=${source.table}` names tombstones too, which have no source block.
    transforms: 'table',
    'transforms.table.type': 'org.apache.kafka.connect.transforms.RegexRouter',
    'transforms.table.regex': `${source.name}\\.public\\.(.*)`,
    'transforms.table.replacement': '$1',
    'collection.name.format': '${topic}',
    'use.time.zone': 'UTC',
    // A primary-key change carries the keys in headers (__debezium.newkey/oldkey, as Debezium). The default
    // SimpleHeaderConverter parses `{"region":"r1","shelf":10}` into a map without a value schema, which the
    // sink's header Struct rejects; Debezium's own headers are the same bytes. Strings are what it can take.
    'header.converter': 'org.apache.kafka.connect.storage.StringConverter',
  };
}

/** Awaits equal tables; a connector that FAILED ends the wait at once with Connect's trace. */
async function awaitTargetEqualsSource(
  tables: Readonly<Record<string, SourceTable>>,
  pgcdc: PgcdcProcess,
  connect: ConnectWorker,
  connector: string,
  source: TestDatabase,
  target: TestDatabase,
): Promise<Record<string, TableComparison>> {
  let last: Record<string, TableComparison> | undefined;
  let failure: Error | undefined;
  await eventually(
    async () => {
      if (pgcdc.child.exitCode !== null) {
        failure = new Error(`pgcdc exited with ${pgcdc.child.exitCode}: ${pgcdc.stderr()}`);
        return true;
      }
      try {
        await connect.assertNotFailed(connector);
      } catch (error) {
        if (error instanceof FailedConnectorError || error instanceof ConnectExitedError) failure = error;
        return failure ? true : undefined;
      }
      last = await compareTables(tables, source, target);
      return last && equal(last) ? true : undefined;
    },
    'the target tables to equal the source tables',
    180_000,
  ).catch((error: Error) => {
    const problems = connect
      .log()
      .split('\n')
      .filter((line) => / (ERROR|WARN) /.test(line))
      .slice(-20);
    throw new Error(`${error.message}; last comparison ${JSON.stringify(last)}; Connect: ${problems.join('\n')}`);
  });
  if (failure) throw failure;
  return last ?? {};
}

let kafka: KafkaCluster | undefined;
const workerLogs: string[] = [];
/**
 * One broker for the file; a Connect worker per test. (With both tests' connectors in one worker, one
 * after the other, the second one's rows of one table landed in another table of its target: state
 * shared inside the worker, not understood yet, not what this test is about.)
 */
async function pipeline(): Promise<{ kafka: KafkaCluster; connect: ConnectWorker }> {
  kafka ??= await startKafka();
  return { kafka, connect: await startConnect({ bootstrap: kafka.bootstrap }) };
}

for (const style of ['pgcdc', 'debezium'] as const) {
  test(
    `Debezium's JDBC sink connector applies pgcdc's json-with-schema topics (values.style ${style}): target = source`,
    {
      skip,
    },
    async (t) => {
      // Where the time goes, for a slow run (reported, never asserted).
      const started = Date.now();
      const phase = (what: string): void => t.diagnostic(`${what} after ${Date.now() - started} ms`);
      const { kafka, connect } = await pipeline();
      phase('broker and Connect worker up');
      const tables = tablesOf(style);
      const source = await freshDatabase();
      const target = await freshDatabase();
      const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-kafka-connect-'));
      for (const { ddl } of Object.values(tables)) await source.sql.query(ddl);
      // The snapshot: rows that exist before pgcdc starts.
      await source.sql.query(itemsInsert(1, 150));
      await source.sql.query(stockInsert(1, 60));
      if (style === 'debezium') await source.sql.query(momentsInsert(1, 40));
      const config = path.join(dir, 'pgcdc.yaml');
      await writeFile(config, `envelope:\n  format: json-with-schema\nvalues:\n  style: ${style}\n`);
      const pgcdc = startPgcdc([
        'run',
        '--source',
        source.url,
        '--slot',
        `s_${source.name}`,
        '--publication',
        'it_pub',
        '--tables',
        'public.*',
        '--sink',
        'kafka',
        '--kafka-bootstrap',
        kafka.bootstrap,
        '--topic-prefix',
        source.name,
        '--config',
        config,
        '--offsets',
        path.join(dir, 'offsets.json'),
        '--log-format',
        'json',
      ]);
      const connector = `jdbc-sink-${target.name}`;
      await connect.createConnector(connector, jdbcSinkConnector(source, target));
      phase('connector running');
      await awaitTargetEqualsSource(tables, pgcdc, connect, connector, source, target);
      phase('snapshot applied');

      // Streamed changes: inserts, updates (to and from null), deletes, primary-key changes.
      await source.sql.query(itemsInsert(151, 300));
      await source.sql.query(stockInsert(61, 120));
      await source.sql.query(
        `update items set name = name || ' (updated)', price = price + 1, doc = null where id % 3 = 0`,
      );
      await source.sql.query(`update items set flag = true, born = date '1999-12-31', ratio = -0.5 where id % 10 = 1`);
      await source.sql.query(`update stock set qty = qty + 1, note = null where shelf % 4 = 0`);
      await source.sql.query(`delete from items where id % 7 = 0`);
      await source.sql.query(`delete from stock where shelf % 9 = 0`);
      await source.sql.query(`update items set id = id + 1000 where id in (1, 2, 5)`);
      await source.sql.query(`update stock set shelf = shelf + 1000 where shelf = 10`);
      if (style === 'debezium') {
        await source.sql.query(momentsInsert(41, 80));
        await source.sql.query(`update moments set at = null, span = interval '-71:59:59' where id % 4 = 0`);
        await source.sql.query(`delete from moments where id % 5 = 0`);
      }
      const comparison = await awaitTargetEqualsSource(tables, pgcdc, connect, connector, source, target);
      phase('changes applied');
      for (const [table, c] of Object.entries(comparison)) {
        assert.deepEqual(c, { lost: 0, extra: 0, mismatched: 0 }, `${table}: target equals source`);
      }
      assert.deepEqual(Object.keys(comparison).sort(), Object.keys(tables).sort());
      await connect.deleteConnector(connector);
      await connect.stop();
      workerLogs.push(connect.log());
      pgcdc.kill('SIGTERM');
      assert.equal(await pgcdc.exited, 0, pgcdc.stderr());
      phase('pgcdc stopped');
    },
  );
}

test('the Connect workers logged no error', { skip }, () => {
  assert.ok(workerLogs.length > 0, 'a worker ran');
  const errors = workerLogs.flatMap((log) => log.split('\n').filter((line) => / ERROR /.test(line)));
  assert.deepEqual(errors, []);
});
