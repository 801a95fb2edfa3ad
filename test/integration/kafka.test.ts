/**
 * The Kafka sink end to end: the real CLI, a real PostgreSQL and a real Kafka broker. What pgcdc
 * delivered is read back by Kafka's own Java consumer (read_committed), replayed by key onto empty
 * maps and compared with the source tables.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { eventually, freshDatabase, requireOrSkip, type TestDatabase } from '../harness/pg.ts';
import { compareRows, replay, runPgcdc, startPgcdc, type DeliveredEvent } from '../harness/cli.ts';
import { dumpTopics, kafkaAvailable, kafkaForFile, startKafka, type DumpedRecord } from '../harness/kafka.ts';

const skip = requireOrSkip(kafkaAvailable(), 'Apache Kafka (java, and the test/kafka jars or mvn)');

const kafka = kafkaForFile();

function runArgs(db: TestDatabase, dir: string, bootstrap: string, extra: string[] = []): string[] {
  return [
    'run',
    '--source',
    db.url,
    '--slot',
    `s_${db.name}`,
    '--publication',
    'it_pub',
    '--tables',
    'public.*',
    '--sink',
    'kafka',
    '--kafka-bootstrap',
    bootstrap,
    '--topic-prefix',
    db.name,
    '--offsets',
    path.join(dir, 'offsets.json'),
    '--log-format',
    'json',
    ...extra,
  ];
}

/** The pgcdc events among `records` (tombstones and checkpoints left out), in partition order. */
function eventsOf(records: readonly DumpedRecord[]): DeliveredEvent[] {
  return records
    .filter((r) => r.value !== null && !r.topic.endsWith('.pgcdc-offsets'))
    .map((r) => {
      const value = JSON.parse(r.value as string) as DeliveredEvent['value'];
      return {
        id: r.headers['pgcdc.id'] as string,
        topic: r.topic,
        key: r.key === null ? null : (JSON.parse(r.key) as Record<string, unknown>),
        value,
      };
    });
}

async function sourceRows(db: TestDatabase, table: string): Promise<Map<string, Record<string, unknown>>> {
  const { rows } = await db.sql.query<Record<string, unknown>>(`select * from ${table}`);
  return new Map(rows.map((r) => [JSON.stringify({ id: r.id }), r]));
}

async function slotConfirmed(db: TestDatabase): Promise<string | undefined> {
  const { rows } = await db.sql.query<{ lsn: string | null }>(
    `select confirmed_flush_lsn::text as lsn from pg_replication_slots where slot_name = $1`,
    [`s_${db.name}`],
  );
  return rows[0]?.lsn ?? undefined;
}

for (const delivery of ['exactly-once', 'at-least-once'] as const) {
  test(`${delivery}: changes replayed from Kafka equal the source; tombstones follow deletes`, { skip }, async () => {
    const broker = await kafka();
    const db = await freshDatabase();
    const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-kafka-'));
    await db.sql.query(`create table items (id int primary key, name text not null, qty int)`);
    await db.sql.query(`insert into items select g, 'item ' || g, g from generate_series(1, 200) g`);
    const proc = startPgcdc(runArgs(db, dir, broker.bootstrap, ['--kafka-delivery', delivery]));
    await eventually(() => slotConfirmed(db), 'slot created', 120_000);
    await db.sql.query(`insert into items select g, 'item ' || g, g from generate_series(201, 400) g`);
    await db.sql.query(`update items set qty = qty + 1 where id % 3 = 0`);
    await db.sql.query(`delete from items where id % 7 = 0`);
    // A primary-key change: a delete of the old key (its tombstone follows) and a create of the new one.
    await db.sql.query(`update items set id = 1000 where id = 1`);
    const topic = `${db.name}.public.items`;
    const expected = await sourceRows(db, 'items');
    const records = await eventually(
      async () => {
        const all = await dumpTopics(broker.bootstrap, `${db.name}\\..*`);
        const { tables } = replay(eventsOf(all));
        const cmp = compareRows(tables.get(topic), expected);
        return cmp.lost === 0 && cmp.extra === 0 && cmp.mismatched === 0 ? all : undefined;
      },
      'every change in Kafka',
      120_000,
    );
    proc.kill('SIGTERM');
    assert.equal(await proc.exited, 0, proc.stderr());
    const events = eventsOf(records);
    const ids = new Set(events.map((e) => e.id));
    assert.equal(ids.size, events.length, 'every event id is unique');
    const itemRecords = records.filter((r) => r.topic === topic);
    const tombstones = itemRecords.filter((r) => r.value === null);
    const deletes = events.filter((e) => e.value.op === 'd');
    assert.equal(deletes.length, 58, '57 deletes and the key change');
    assert.equal(tombstones.length, deletes.length, 'one tombstone per delete');
    for (const record of itemRecords.filter((r) => r.value !== null)) {
      assert.match(record.headers['pgcdc.id'] ?? '', /^[0-9A-F]+\/[0-9A-F]+:/);
      assert.equal(record.headers['pgcdc.lsn'], (record.headers['pgcdc.id'] ?? '').split(':')[0]);
    }
    const moved = itemRecords.findIndex((r) => r.headers['__debezium.newkey'] !== undefined);
    assert.ok(moved >= 0, 'the key change has a delete with the new key in a header');
    assert.deepEqual(JSON.parse(itemRecords[moved]?.headers['__debezium.newkey'] ?? 'null'), { id: 1000 });
    assert.equal(itemRecords[moved]?.key, '{"id":1}');
    assert.equal(itemRecords[moved + 1]?.value, null, 'its tombstone follows');
    const created = itemRecords.find((r) => r.headers['__debezium.oldkey'] !== undefined);
    assert.equal(created?.key, '{"id":1000}');
    assert.deepEqual(JSON.parse(created?.headers['__debezium.oldkey'] ?? 'null'), { id: 1 });
    const checkpoints = records.filter((r) => r.topic === `${db.name}.pgcdc-offsets`);
    assert.ok(checkpoints.length > 0, 'checkpoints are in the offsets topic');
    const last = JSON.parse(checkpoints.at(-1)?.value ?? '{}') as { lsn: string; slot: string };
    assert.equal(last.slot, `s_${db.name}`);
  });
}

test('a missing topic with topics.create off is one error at start, before the slot is created', { skip }, async () => {
  const broker = await kafka();
  const db = await freshDatabase();
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-kafka-'));
  await db.sql.query(`create table items (id int primary key)`);
  const config = path.join(dir, 'pgcdc.yaml');
  const { writeFile } = await import('node:fs/promises');
  await writeFile(
    config,
    `sink:\n  kind: kafka\n  bootstrapServers: ${broker.bootstrap}\n  topics:\n    create: false\n`,
  );
  const result = await runPgcdc([...runArgs(db, dir, broker.bootstrap), '--config', config]);
  assert.equal(result.code, 2, result.stderr);
  const lines = result.stderr.trim().split('\n');
  assert.match(lines.at(-1) ?? '', /Kafka topics? .*items.* not exist and sink.topics.create is off/);
  assert.equal(await slotConfirmed(db), undefined, 'no slot was created');
});

test('TLS: verify-full against the right CA delivers; another CA is one error line, exit 2', { skip }, async () => {
  const broker = await startKafka({ tls: true });
  const pki = broker.tls as NonNullable<typeof broker.tls>;
  const db = await freshDatabase();
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-kafka-'));
  await db.sql.query(`create table items (id int primary key, name text)`);
  await db.sql.query(`insert into items values (1, 'over tls')`);
  const { writeFile } = await import('node:fs/promises');
  const wrong = path.join(dir, 'wrong.yaml');
  await writeFile(
    wrong,
    `sink:\n  kind: kafka\n  bootstrapServers: ${broker.tlsBootstrap}\n  tls:\n    ca: ${pki.otherCa}\n`,
  );
  const refused = await runPgcdc([...runArgs(db, dir, broker.tlsBootstrap), '--config', wrong]);
  assert.equal(refused.code, 2, refused.stderr);
  assert.match(
    refused.stderr.trim().split('\n').at(-1) ?? '',
    /TLS verification failed: the broker certificate is not signed by a CA in sink.tls.ca.*\[CONNECT_FAILED\]$/,
  );
  assert.equal(await slotConfirmed(db), undefined, 'no slot was created');
  const right = path.join(dir, 'right.yaml');
  await writeFile(
    right,
    `sink:\n  kind: kafka\n  bootstrapServers: ${broker.tlsBootstrap}\n  tls:\n    ca: ${pki.ca}\n`,
  );
  const proc = startPgcdc([...runArgs(db, dir, broker.tlsBootstrap), '--config', right]);
  const records = await eventually(async () => {
    const all = await dumpTopics(broker.bootstrap, `${db.name}\\.public\\.items`);
    return all.length >= 1 ? all : undefined;
  }, 'the snapshot row in Kafka over TLS');
  assert.equal((JSON.parse(records[0]?.value ?? '{}') as { after: { name: string } }).after.name, 'over tls');
  proc.kill('SIGTERM');
  assert.equal(await proc.exited, 0, proc.stderr());
});

test(
  'topic rules set partitions and configs; keys partition as Java does; keyless rows go round robin',
  { skip },
  async () => {
    const broker = await kafka();
    const db = await freshDatabase();
    const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-kafka-'));
    await db.sql.query(`create table orders (id int primary key, total int)`);
    await db.sql.query(`create table logs (line text)`);
    await db.sql.query(`alter table logs replica identity full`);
    const config = path.join(dir, 'pgcdc.yaml');
    const { writeFile } = await import('node:fs/promises');
    await writeFile(
      config,
      [
        'sink:',
        '  kind: kafka',
        `  bootstrapServers: ${broker.bootstrap}`,
        '  compression: lz4',
        '  topics:',
        '    rules:',
        `      - pattern: '${db.name}.public.orders'`,
        '        partitions: 3',
        '        config: { cleanup.policy: compact }',
        `      - pattern: '${db.name}.public.*'`,
        '        partitions: 2',
        '',
      ].join('\n'),
    );
    const proc = startPgcdc([...runArgs(db, dir, broker.bootstrap), '--config', config]);
    await eventually(() => slotConfirmed(db), 'slot created', 120_000);
    await db.sql.query(`insert into orders select g, g * 10 from generate_series(1, 60) g`);
    await db.sql.query(`update orders set total = total + 1`);
    await db.sql.query(`insert into logs select 'line ' || g from generate_series(1, 40) g`);
    const records = await eventually(
      async () => {
        const all = await dumpTopics(broker.bootstrap, `${db.name}\\.public\\..*`);
        return all.filter((r) => r.topic.endsWith('.orders')).length >= 120 &&
          all.filter((r) => r.topic.endsWith('.logs')).length >= 40
          ? all
          : undefined;
      },
      'every record',
      120_000,
    );
    proc.kill('SIGTERM');
    assert.equal(await proc.exited, 0, proc.stderr());
    const orders = records.filter((r) => r.topic === `${db.name}.public.orders`);
    assert.deepEqual(new Set(orders.map((r) => r.partition)), new Set([0, 1, 2]), 'three partitions, all used');
    for (const record of orders) assert.equal(record.partition, record.defaultPartition, `key ${record.key}`);
    const logs = records.filter((r) => r.topic === `${db.name}.public.logs`);
    assert.ok(logs.every((r) => r.key === null));
    assert.deepEqual(new Set(logs.map((r) => r.partition)), new Set([0, 1]), 'null keys spread over both partitions');
    const warnings = proc
      .stderr()
      .split('\n')
      .filter((line) => line.includes('events without a key'));
    assert.equal(warnings.length, 1, 'one warning for the keyless topic');
    const admin = broker.admin();
    const { ConfigResourceTypes } = await import('@platformatic/kafka');
    const described = await admin.describeConfigs({
      resources: [
        { resourceType: ConfigResourceTypes.TOPIC, resourceName: `${db.name}.public.orders` },
        { resourceType: ConfigResourceTypes.TOPIC, resourceName: `${db.name}.pgcdc-offsets` },
      ],
    });
    for (const resource of described) {
      const policy = resource.configs.find((c) => c.name === 'cleanup.policy')?.value;
      assert.equal(policy, 'compact', `${resource.resourceName} is compacted`);
    }
  },
);

test(
  'flat envelope with deletes as tombstones: each delete is one null-valued record; flat rows replay',
  { skip },
  async () => {
    const broker = await kafka();
    const db = await freshDatabase();
    const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-kafka-flat-'));
    await db.sql.query(`create table items (id int primary key, name text not null, qty int)`);
    await db.sql.query(`insert into items select g, 'item ' || g, g from generate_series(1, 50) g`);
    const config = path.join(dir, 'pgcdc.yaml');
    const { writeFile } = await import('node:fs/promises');
    await writeFile(config, 'envelope:\n  type: flat\n  deletes: tombstone\n');
    const proc = startPgcdc(runArgs(db, dir, broker.bootstrap, ['--config', config]));
    await eventually(() => slotConfirmed(db), 'slot created', 120_000);
    await db.sql.query(`insert into items select g, 'item ' || g, g from generate_series(51, 100) g`);
    await db.sql.query(`update items set qty = qty * 2 where id % 4 = 0`);
    await db.sql.query(`delete from items where id % 5 = 0`);
    const topic = `${db.name}.public.items`;
    const expected = await sourceRows(db, 'items');
    /** The flat rows by key, a null value deleting its key: the state a compacted topic converges to. */
    const fold = (records: readonly DumpedRecord[]): Map<string, Record<string, unknown>> => {
      const rows = new Map<string, Record<string, unknown>>();
      for (const r of records.filter((rec) => rec.topic === topic)) {
        if (r.key === null) continue;
        if (r.value === null) rows.delete(r.key);
        else {
          const row = JSON.parse(r.value) as Record<string, unknown>;
          for (const field of Object.keys(row)) if (field.startsWith('__')) delete row[field];
          rows.set(r.key, row);
        }
      }
      return rows;
    };
    const records = await eventually(
      async () => {
        const all = await dumpTopics(broker.bootstrap, `${db.name}\\.public\\..*`);
        const cmp = compareRows(fold(all), expected);
        return cmp.lost === 0 && cmp.extra === 0 && cmp.mismatched === 0 ? all : undefined;
      },
      'every change in Kafka',
      120_000,
    );
    proc.kill('SIGTERM');
    assert.equal(await proc.exited, 0, proc.stderr());
    const items = records.filter((r) => r.topic === topic);
    const tombstones = items.filter((r) => r.value === null);
    assert.equal(tombstones.length, 20, 'one record per delete, and no second tombstone after it');
    for (const tombstone of tombstones) assert.ok(tombstone.headers['pgcdc.id'], 'the tombstone carries its event id');
    const ops = items
      .filter((r) => r.value !== null)
      .map((r) => (JSON.parse(r.value as string) as { __op: string }).__op);
    assert.deepEqual([...new Set(ops)].sort(), ['c', 'r', 'u']);
  },
);
