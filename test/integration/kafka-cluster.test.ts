/**
 * The Kafka sink when the cluster fails under it: the real CLI, a real PostgreSQL and three real
 * Kafka brokers (replication factor 3, min.insync.replicas 2), exactly-once delivery, a steady
 * insert/update/delete workload. A broker killed and restarted, then the whole cluster stopped for
 * 30 s: pgcdc acknowledges nothing to PostgreSQL past what Kafka holds, keeps its memory bounded,
 * resumes by itself, and what Kafka's own Java consumer reads back (read_committed), replayed by key,
 * equals the source with no event lost or repeated. And the faults that are not retried: the topic
 * deleted under pgcdc, or its write permission revoked, stop it with one line and acknowledge nothing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import pg from 'pg';
import { eventually, freshDatabase, onTeardown, requireOrSkip, type TestDatabase } from '../harness/pg.ts';
import { compareRows, lsnValue, replay, startPgcdc, type PgcdcProcess } from '../harness/cli.ts';
import { dumpTopics, KAFKA_USERS, kafkaAvailable, kafkaForFile, type KafkaCluster } from '../harness/kafka.ts';
import { AclOperations, AclPermissionTypes, ResourcePatternTypes, ResourceTypes, type Acl } from '@platformatic/kafka';
import { logRecords, peakRssMb, rssMb } from '../harness/process.ts';
import { kafkaEvents } from '../harness/kafka-workload.ts';
import { isRetryLine } from '../harness/faults.ts';

const skip = requireOrSkip(kafkaAvailable(), 'Apache Kafka (java, and the test/kafka jars or mvn)');

/** How long the whole cluster stays down: the fault's duration (the 30 s), not a wait for state. */
const OUTAGE_MS = 30_000;
/** Pace of the workload: one source transaction, then this pause. A load rate, not a wait for state. */
const WORKLOAD_PAUSE_MS = 20;
/** Bytes of filler per row, so the outage's backlog is megabytes of WAL rather than kilobytes. */
const ROW_PAD = 400;

// SASL too, for the authorization test: the PLAINTEXT listeners' principal stays a super user.
const kafka = kafkaForFile({ brokers: 3, sasl: true });

interface StartOptions {
  /** More lines under sink.topics (indented four spaces). */
  topicsYaml?: string;
  /** Connect as this SASL user (SCRAM-SHA-256, password from KAFKA_PASSWORD) on the SASL listeners. */
  saslUser?: keyof typeof KAFKA_USERS;
  delivery?: 'exactly-once' | 'at-least-once';
}

async function start(db: TestDatabase, broker: KafkaCluster, options: StartOptions = {}): Promise<PgcdcProcess> {
  const bootstrap = options.saslUser ? broker.saslBootstrap : broker.bootstrap;
  const sasl = options.saslUser
    ? `  sasl:\n    mechanism: SCRAM-SHA-256\n    username: ${options.saslUser}\n` +
      '    password:\n      env: KAFKA_PASSWORD\n'
    : '';
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-kafka-cluster-'));
  const config = path.join(dir, 'pgcdc.yaml');
  // Replication factor 3 on pgcdc's topics (events and offsets): a write needs 2 in-sync replicas.
  await writeFile(
    config,
    `sink:\n  kind: kafka\n  bootstrapServers: ${bootstrap}\n${sasl}  topics:\n    replicationFactor: 3\n` +
      (options.topicsYaml ?? ''),
  );
  // prettier-ignore
  return startPgcdc([
    'run', '--source', db.url, '--slot', `s_${db.name}`, '--publication', 'it_pub', '--tables', 'public.*',
    '--sink', 'kafka', '--kafka-bootstrap', bootstrap, '--kafka-delivery', options.delivery ?? 'exactly-once',
    '--topic-prefix', db.name, '--offsets', path.join(dir, 'offsets.json'), '--config', config,
    '--log-format', 'json',
    // The default backoff grows to 30 s: a cluster back after 30 s would wait up to that long again.
    '--retry-max-delay', '4000',
  ], options.saslUser ? { KAFKA_PASSWORD: KAFKA_USERS[options.saslUser] } : {});
}

/**
 * Source transactions one after another on a connection of its own: inserts of new ids, updates of
 * recent rows, deletes of older ones, so every kind of change crosses the fault.
 */
class Workload {
  transactions = 0;
  private nextId = 1;
  private running = true;
  private readonly client: pg.Client;
  readonly done: Promise<void>;

  constructor(db: TestDatabase) {
    this.client = new pg.Client({ connectionString: db.url });
    onTeardown(() => this.stop());
    this.done = this.client.connect().then(() => this.loop());
    this.done.catch(() => undefined);
  }

  private async loop(): Promise<void> {
    while (this.running) {
      const first = this.nextId;
      this.nextId += 20;
      const last = first + 19;
      await this.client.query(
        `begin;
         insert into items select g, 'item ' || g, g, repeat('x', ${ROW_PAD}) from generate_series(${first}, ${last}) g;
         update items set qty = qty + 1 where id between ${first - 60} and ${last} and id % 3 = 0;
         delete from items where id between ${first - 200} and ${first - 181} and id % 4 = 0;
         commit`,
      );
      this.transactions++;
      await delay(WORKLOAD_PAUSE_MS);
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.done;
    await this.client.end().catch(() => undefined);
  }
}

async function slotConfirmed(db: TestDatabase): Promise<string> {
  const { rows } = await db.sql.query<{ lsn: string | null }>(
    `select confirmed_flush_lsn::text as lsn from pg_replication_slots where slot_name = $1`,
    [`s_${db.name}`],
  );
  const lsn = rows[0]?.lsn;
  if (lsn === undefined || lsn === null) throw new Error('no slot yet');
  return lsn;
}

async function walNow(db: TestDatabase): Promise<string> {
  const { rows } = await db.sql.query<{ lsn: string }>(`select pg_current_wal_insert_lsn()::text as lsn`);
  return rows[0]?.lsn ?? '0/0';
}

/** Waits until the slot's confirmed LSN is at or past `lsn`: every change before it is committed in Kafka. */
function confirmedPast(db: TestDatabase, lsn: string, what: string, timeoutMs = 180_000): Promise<string> {
  return eventually(
    async () => {
      const confirmed = await slotConfirmed(db);
      return lsnValue(confirmed) >= lsnValue(lsn) ? confirmed : undefined;
    },
    what,
    timeoutMs,
  );
}

/**
 * The initial snapshot is done and the workload's transactions are confirmed: pgcdc streams, and a
 * checkpoint is in Kafka (the confirmed LSN moves only once one is).
 */
async function deliveringUnderLoad(db: TestDatabase, workload: Workload): Promise<void> {
  const startedAt = workload.transactions;
  await eventually(() => (workload.transactions >= startedAt + 20 ? true : undefined), 'the workload to commit');
  await confirmedPast(db, await walNow(db), 'delivery under the workload');
}

/**
 * Every broker of the cluster is registered again. Not KafkaCluster.awaitBrokers: its admin client
 * answers a metadata request without topics from its cache once it has one, so a broker that
 * registers after the first answer is never seen.
 */
async function everyBrokerRegistered(broker: KafkaCluster): Promise<void> {
  const admin = broker.admin();
  await eventually(
    async () =>
      (await admin.metadata({ topics: [], forceUpdate: true })).brokers.size >= broker.brokers.length
        ? true
        : undefined,
    'every Kafka broker to register',
    180_000,
  );
}

/** Replays what Kafka holds for `db` and compares it with the source table. */
async function compareWithSource(
  db: TestDatabase,
  broker: KafkaCluster,
): Promise<{ lost: number; extra: number; mismatched: number; duplicates: number; events: number }> {
  const records = await dumpTopics(broker.bootstrap, `${db.name}\\..*`);
  const events = kafkaEvents(records);
  const { tables, duplicates } = replay(events);
  const { rows } = await db.sql.query<Record<string, unknown>>(`select * from items`);
  const source = new Map(rows.map((r) => [JSON.stringify({ id: r.id }), r]));
  return { ...compareRows(tables.get(`${db.name}.public.items`), source), duplicates, events: events.length };
}

async function prepare(db: TestDatabase): Promise<void> {
  await db.sql.query(`create table items (id int primary key, name text not null, qty int, pad text)`);
  await db.sql.query(`insert into items select g, 'seed ' || g, g, '' from generate_series(-100, 0) g`);
}

function note(text: string): void {
  process.stdout.write(`# ${text}\n`);
}

/** A cluster, `items`, pgcdc on it and the workload running, delivered under load. */
async function deliveringCapture(): Promise<{
  broker: KafkaCluster;
  db: TestDatabase;
  pgcdc: PgcdcProcess;
  workload: Workload;
}> {
  const broker = await kafka();
  const db = await freshDatabase();
  await prepare(db);
  const pgcdc = await start(db, broker);
  await eventually(() => slotConfirmed(db), 'the slot to be created', 120_000);
  const workload = new Workload(db);
  await deliveringUnderLoad(db, workload);
  return { broker, db, pgcdc, workload };
}

test(
  'a broker SIGKILLed and restarted while pgcdc delivers: 0 lost, 0 duplicates (exactly-once)',
  { skip },
  async () => {
    const { broker, db, pgcdc, workload } = await deliveringCapture();

    // The leader of the events topic's partition, else broker 0.
    const topic = `${db.name}.public.items`;
    const metadata = await broker.admin().metadata({ topics: [topic] });
    const leader = metadata.topics.get(topic)?.partitions[0]?.leader ?? 1;
    const index = broker.brokers.findIndex((b) => b.nodeId === leader);
    const victim = index >= 0 ? index : 0;
    const killedAt = Date.now();
    await broker.kill(victim);
    // Two replicas remain (min.insync.replicas 2): delivery goes on without the killed broker.
    const afterKill = await walNow(db);
    await confirmedPast(db, afterKill, 'delivery with one broker down');
    const degradedMs = Date.now() - killedAt;
    await broker.start(victim);
    await everyBrokerRegistered(broker);
    await confirmedPast(db, await walNow(db), 'delivery after the broker came back');
    await workload.stop();
    const end = await walNow(db);
    await confirmedPast(db, end, 'every change confirmed');
    pgcdc.kill('SIGTERM');
    assert.equal(await pgcdc.exited, 0, pgcdc.stderr());

    const result = await compareWithSource(db, broker);
    const retries = logRecords(pgcdc.stderr()).filter((r) => typeof r.retry === 'number').length;
    note(
      `broker kill: killed node ${broker.brokers[victim]?.nodeId} (leader ${leader}); ${workload.transactions} ` +
        `source transactions, ${result.events} events; delivery resumed ${degradedMs} ms after the kill; ` +
        `${retries} capture restarts; lost ${result.lost}, extra ${result.extra}, mismatched ${result.mismatched}, ` +
        `duplicates ${result.duplicates}`,
    );
    assert.deepEqual(
      { lost: result.lost, extra: result.extra, mismatched: result.mismatched, duplicates: result.duplicates },
      { lost: 0, extra: 0, mismatched: 0, duplicates: 0 },
    );
  },
);

test(
  'the whole cluster down for 30 s: pgcdc waits with bounded memory, acknowledges nothing, then delivers all',
  { skip },
  async () => {
    const { broker, db, pgcdc, workload } = await deliveringCapture();
    const logLinesBefore = pgcdc.stderr().length;

    await broker.stopAll();
    const downAt = Date.now();
    const walAtStop = await walNow(db);
    // A batch Kafka committed just before the stop is durable, and its checkpoint may still be confirmed
    // a moment after: the baseline is the slot once the capture stopped on the failure (its first retry
    // line), as in the NATS, Redis and HTTP outage tests. Had pgcdc confirmed anything Kafka did not
    // hold, the replay below would show it lost. A produce request may also ride the outage out inside
    // the client's retries (no retry line, see below): then the baseline is the slot right after the stop.
    const slotAtStop = await slotConfirmed(db);
    let slotAtRetry: string | undefined;
    // The fault lasts OUTAGE_MS; meanwhile the workload goes on and the slot is watched.
    const seen = new Set<string>();
    let outageRss = 0;
    while (Date.now() - downAt < OUTAGE_MS) {
      const retried = slotAtRetry !== undefined || logRecords(pgcdc.stderr().slice(logLinesBefore)).some(isRetryLine);
      const confirmed = await slotConfirmed(db);
      if (retried && slotAtRetry === undefined) {
        slotAtRetry = confirmed;
        seen.clear(); // what was confirmed before the capture stopped on the failure is not the baseline's
      }
      seen.add(confirmed);
      outageRss = Math.max(outageRss, await rssMb(pgcdc.child.pid ?? 0));
      assert.equal(pgcdc.child.exitCode, null, `pgcdc exited while Kafka was down: ${pgcdc.stderr()}`);
      await delay(250);
    }
    const confirmedAtStop = slotAtRetry ?? slotAtStop;
    const walAtRestart = await walNow(db);
    const transactionsDuring = workload.transactions;
    const restartAt = Date.now();
    await Promise.all(broker.brokers.map((_, i) => broker.start(i)));
    await everyBrokerRegistered(broker);
    const upAt = Date.now();
    const outageMs = upAt - downAt;
    const outageLog = logRecords(pgcdc.stderr().slice(logLinesBefore));
    await confirmedPast(db, walAtRestart, 'the backlog of the outage delivered');
    const caughtUpMs = Date.now() - upAt;
    await workload.stop();
    await confirmedPast(db, await walNow(db), 'every change confirmed');
    const peak = await peakRssMb(pgcdc.child.pid ?? 0);
    pgcdc.kill('SIGTERM');
    assert.equal(await pgcdc.exited, 0, pgcdc.stderr());

    const result = await compareWithSource(db, broker);
    const warnings = outageLog.filter((r) => r.level === 40);
    const retries = warnings.filter((r) => typeof r.retry === 'number');
    note(
      `cluster outage: ${outageMs} ms down (stopped to every broker registered again, of which ` +
        `${upAt - restartAt} ms starting them), ` +
        `${(lsnValue(walAtRestart) - lsnValue(walAtStop)) / 1024n} KiB of WAL written meanwhile ` +
        `(${transactionsDuring} source transactions in the test); ${retries.length} retries ` +
        `(delays ${retries.map((r) => r.delayMs).join(', ')} ms); caught up ${caughtUpMs} ms after the restart; ` +
        `peak RSS ${peak.toFixed(0)} MB (${outageRss.toFixed(0)} MB at most during the outage); ` +
        `confirmed LSN during the outage: ${[...seen].join(', ')}; ` +
        `lost ${result.lost}, extra ${result.extra}, mismatched ${result.mismatched}, duplicates ${result.duplicates}`,
    );
    assert.deepEqual([...seen], [confirmedAtStop], 'the confirmed LSN does not move while Kafka is down');
    // Whether the capture restarts during the outage depends on where the stop lands: a produce
    // request in flight may wait out the outage inside the client's retries and succeed once the
    // brokers are back. Either way nothing was acknowledged meanwhile (above) and nothing is lost (below).
    assert.deepEqual(
      warnings.filter((r) => typeof r.retry !== 'number').map((r) => r.msg),
      [],
      'one warning line per retry, no other',
    );
    // Bounded, not proportional to the outage: while Kafka is down every start-up fails before the
    // replication connection opens, so nothing is read; catching up, Delivery buffers at most 48 MB of
    // events plus one 16 MB batch in flight (pipeline/delivery.ts), copied once more into the Kafka
    // client's produce requests, over Node's and tsx's ~150 MB and V8's uncollected garbage.
    // Measured: 322-338 MB peak (while catching up), at most 200 MB during the outage.
    assert.ok(peak < 450, `peak RSS ${peak.toFixed(0)} MB`);
    assert.deepEqual(
      { lost: result.lost, extra: result.extra, mismatched: result.mismatched, duplicates: result.duplicates },
      { lost: 0, extra: 0, mismatched: 0, duplicates: 0 },
    );
  },
);

test(
  'the events topic deleted under pgcdc (topics.create off): one error line naming it, nothing acknowledged past Kafka',
  { skip },
  async () => {
    const broker = await kafka();
    const db = await freshDatabase();
    await prepare(db);
    const topic = `${db.name}.public.items`;
    const admin = broker.admin();
    await admin.createTopics({ topics: [topic], partitions: 1, replicas: 3 });
    await admin.createTopics({
      topics: [`${db.name}.pgcdc-offsets`],
      partitions: 1,
      replicas: 3,
      configs: [{ name: 'cleanup.policy', value: 'compact' }],
    });
    const pgcdc = await start(db, broker, { topicsYaml: '    create: false\n' });
    await eventually(() => slotConfirmed(db), 'the slot to be created', 120_000);
    await db.sql.query(`insert into items select g, 'item ' || g, g, '' from generate_series(1, 100) g`);
    await confirmedPast(db, await walNow(db), 'delivery to the topic');

    await admin.deleteTopics({ topics: [topic] });
    await eventually(
      async () => (!(await admin.listTopics()).includes(topic) ? true : undefined),
      'the topic to be deleted',
    );
    const beforeLoss = await walNow(db);
    await db.sql.query(`insert into items select g, 'item ' || g, g, '' from generate_series(101, 200) g`);
    const code = await pgcdc.exited;
    const lines = pgcdc.stderr().trim().split('\n');
    note(`topic deleted: exit ${code}; last line: ${lines.at(-1)}`);
    // A missing topic is the user's to fix (CONFIG_INVALID, exit 2), as at a first start.
    assert.equal(code, 2, pgcdc.stderr());
    assert.match(
      lines.at(-1) ?? '',
      new RegExp(`Kafka topic ${topic.replace(/\./g, '\\.')} does not exist and sink.topics.create is off`),
    );
    const confirmed = await slotConfirmed(db);
    assert.ok(
      lsnValue(confirmed) <= lsnValue(beforeLoss),
      `the slot was confirmed at ${confirmed}, past ${beforeLoss}: changes Kafka never held were acknowledged`,
    );
  },
);

test(
  'exactly-once as a user with ordinary ACLs; its permission on its topic revoked while it runs: ' +
    'one error line, exit 1, nothing acknowledged',
  { skip },
  async () => {
    const broker = await kafka();
    const db = await freshDatabase();
    await prepare(db);
    const topic = `${db.name}.public.items`;
    const offsetsTopic = `${db.name}.pgcdc-offsets`;
    const admin = broker.admin();
    await admin.createTopics({ topics: [topic], partitions: 1, replicas: 3 });
    await admin.createTopics({
      topics: [offsetsTopic],
      partitions: 1,
      replicas: 3,
      configs: [{ name: 'cleanup.policy', value: 'compact' }],
    });
    const allow = (
      resourceType: Acl['resourceType'],
      resourceName: string,
      operation: Acl['operation'] = AclOperations.ALL,
    ): Acl => ({
      resourceType,
      resourceName,
      resourcePatternType: ResourcePatternTypes.LITERAL,
      principal: 'User:stranger',
      host: '*',
      operation,
      permissionType: AclPermissionTypes.ALLOW,
    });
    const topicAcl = allow(ResourceTypes.TOPIC, topic);
    await admin.createAcls({
      creations: [
        topicAcl,
        allow(ResourceTypes.TOPIC, offsetsTopic),
        allow(ResourceTypes.TRANSACTIONAL_ID, `pgcdc-${db.name}-s_${db.name}`),
        allow(ResourceTypes.GROUP, 'pgcdc-checkpoint-reader'),
        allow(ResourceTypes.CLUSTER, 'kafka-cluster', AclOperations.IDEMPOTENT_WRITE),
      ],
    });
    // Exactly-once as a user that is not a super user: AddPartitionsToTxn must be sent at a client's
    // version (3 at most; 4 and later need ClusterAction), see asClientOfTransactions in the sink.
    const pgcdc = await start(db, broker, { saslUser: 'stranger', delivery: 'exactly-once' });
    await eventually(() => slotConfirmed(db), 'the slot to be created', 120_000);
    await db.sql.query(`insert into items select g, 'item ' || g, g, '' from generate_series(1, 100) g`);
    const delivered = confirmedPast(db, await walNow(db), 'delivery as the authorized user');
    delivered.catch(() => undefined);
    await Promise.race([
      delivered,
      pgcdc.exited.then((code) => {
        throw new Error(`pgcdc exited ${code} before delivering as the authorized user: ${pgcdc.stderr()}`);
      }),
    ]);

    await admin.deleteAcls({ filters: [topicAcl] });
    const beforeLoss = await walNow(db);
    await db.sql.query(`insert into items select g, 'item ' || g, g, '' from generate_series(101, 200) g`);
    const code = await pgcdc.exited;
    const stderr = pgcdc.stderr();
    const lines = stderr.trim().split('\n');
    note(`write permission revoked: exit ${code}; last line: ${lines.at(-1)}`);
    assert.equal(code, 1, stderr);
    assert.match(lines.at(-1) ?? '', /^pgcdc: error: .*(TOPIC_AUTHORIZATION_FAILED|not authorized)/);
    assert.ok(!stderr.includes(KAFKA_USERS.stranger), 'the password is never printed');
    const confirmed = await slotConfirmed(db);
    assert.ok(
      lsnValue(confirmed) <= lsnValue(beforeLoss),
      `the slot was confirmed at ${confirmed}, past ${beforeLoss}: changes Kafka never held were acknowledged`,
    );
  },
);
