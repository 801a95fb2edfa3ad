/**
 * Real Apache Kafka brokers (KRaft) for tests and benchmarks, started from the jars test/kafka/pom.xml
 * pins (Maven Central). One broker for most tests; three (replication factor 3, min.insync.replicas 2)
 * for failover. Each broker is also a controller (combined mode), so a cluster of three keeps its
 * quorum with one broker down. Brokers are stopped and their folders deleted after the test file.
 *
 * Callers skip with `requireOrSkip(kafkaAvailable(), 'Apache Kafka (java and test/kafka jars or mvn)')`.
 * The jars are fetched by `npm run kafka:fetch` (.ci/run does it); when they are missing and mvn is
 * on the PATH, the first test that needs them fetches them.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Admin } from '@platformatic/kafka';
import { freePort } from '../../src/embedded/cluster.ts';
import { listening } from './daemon.ts';
import { assertTeardownPending, eventually, onTeardown } from './pg.ts';
import { onProcessExit } from './tmp.ts';
import { fetchWithMaven, onPath } from './maven-fetch.ts';
import { makeTestPki } from './pki.ts';

const KAFKA_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'kafka');
/** Where `mvn dependency:copy-dependencies` puts the jars (test/kafka/pom.xml). */
export const KAFKA_LIB = path.join(KAFKA_DIR, 'target', 'lib');

function jarsPresent(): boolean {
  return existsSync(KAFKA_LIB) && readdirSync(KAFKA_LIB).some((name) => name.startsWith('kafka_2.13-'));
}

/** Java, and the jars or Maven to fetch them. */
export function kafkaAvailable(): boolean {
  return onPath('java') && (jarsPresent() || onPath('mvn'));
}

/** The Kafka jars' classpath, fetched with Maven when missing (maven-fetch.ts). */
export function kafkaClasspath(): string {
  fetchWithMaven({
    pom: path.join(KAFKA_DIR, 'pom.xml'),
    property: 'lib.dir',
    target: KAFKA_LIB,
    present: jarsPresent,
  });
  return `${KAFKA_LIB}/*`;
}

const LOG4J2 = [
  'rootLogger.level = WARN',
  'rootLogger.appenderRef.stdout.ref = STDOUT',
  'appender.stdout.type = Console',
  'appender.stdout.name = STDOUT',
  'appender.stdout.layout.type = PatternLayout',
  'appender.stdout.layout.pattern = [%d] %p %m (%c)%n',
  '',
].join('\n');

/** The SASL users every cluster started with `sasl: true` knows (PLAIN and SCRAM-SHA-256/512). */
export const KAFKA_USERS = {
  /** A super user: may do anything. */
  admin: 'admin-secret',
  /** Authenticates, but has no ACL: every topic operation is refused. */
  stranger: 'stranger-secret',
} as const;

export interface KafkaBroker {
  readonly nodeId: number;
  /** PLAINTEXT listener (no authentication; its principal is a super user). */
  readonly port: number;
  /** SASL_PLAINTEXT listener (only with `sasl: true`). */
  readonly saslPort: number | undefined;
  /** SSL listener (only with `tls: true`): a certificate for 127.0.0.1 and localhost signed by `tls.ca`. */
  readonly tlsPort: number | undefined;
  readonly controllerPort: number;
  readonly dir: string;
  readonly running: boolean;
}

export interface KafkaClusterOptions {
  brokers?: 1 | 3;
  /** Also listen with SASL_PLAINTEXT (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) and enforce ACLs there. */
  sasl?: boolean;
  /** Also listen with TLS (SSL) with a certificate from a throwaway CA (see KafkaCluster.tls). */
  tls?: boolean;
  /** Extra server.properties lines for every broker. */
  settings?: Readonly<Record<string, string | number>>;
  /** JVM heap for each broker (default 768m). */
  heap?: string;
}

interface BrokerProcess extends KafkaBroker {
  child: ChildProcess | undefined;
  exited: Promise<void>;
  output: string;
  forget: () => void;
}

/** The throwaway PKI of a cluster started with `tls: true` (PEM files). */
export interface KafkaPki {
  /** The CA that signed the brokers' certificate. */
  readonly ca: string;
  /** A CA that signed nothing here: trusting only it must fail. */
  readonly otherCa: string;
}

/** The test PKI (pki.ts) with the broker's key and certificate chain in one PEM, as Kafka reads it. */
function makePki(dir: string): KafkaPki & { serverPem: string } {
  const pki = makeTestPki(dir);
  const serverPem = path.join(dir, 'server.pem');
  writeFileSync(serverPem, readFileSync(pki.key, 'utf8') + readFileSync(pki.cert, 'utf8'));
  return { ca: pki.ca, otherCa: pki.otherCa, serverPem };
}

export class KafkaCluster {
  readonly brokers: readonly KafkaBroker[];
  /** With `tls: true`: the CA files. */
  tls: KafkaPki | undefined;
  private readonly processes: BrokerProcess[];
  private readonly classpath: string;
  private readonly heap: string;

  private constructor(processes: BrokerProcess[], classpath: string, heap: string) {
    this.processes = processes;
    this.brokers = processes;
    this.classpath = classpath;
    this.heap = heap;
  }

  /** `host:port,...` of the PLAINTEXT listeners. */
  get bootstrap(): string {
    return this.processes.map((b) => `127.0.0.1:${b.port}`).join(',');
  }

  /** `host:port,...` of the TLS listeners (throws without `tls: true`). */
  get tlsBootstrap(): string {
    return this.processes
      .map((b) => {
        if (b.tlsPort === undefined) throw new Error('this cluster was started without tls');
        return `127.0.0.1:${b.tlsPort}`;
      })
      .join(',');
  }

  /** `host:port,...` of the SASL listeners (throws without `sasl: true`). */
  get saslBootstrap(): string {
    return this.processes
      .map((b) => {
        if (b.saslPort === undefined) throw new Error('this cluster was started without sasl');
        return `127.0.0.1:${b.saslPort}`;
      })
      .join(',');
  }

  get bootstrapList(): string[] {
    return this.bootstrap.split(',');
  }

  /** What broker `index` has logged (WARN and above). */
  output(index: number): string {
    return this.broker(index).output;
  }

  static async start(options: KafkaClusterOptions = {}): Promise<KafkaCluster> {
    assertTeardownPending();
    const classpath = kafkaClasspath();
    const count = options.brokers ?? 1;
    const root = await mkdtemp(path.join(tmpdir(), 'pgcdc-kafka-'));
    const brokers: BrokerProcess[] = [];
    for (let i = 0; i < count; i++) {
      brokers.push({
        nodeId: i + 1,
        port: await freePort(),
        saslPort: options.sasl ? await freePort() : undefined,
        tlsPort: options.tls ? await freePort() : undefined,
        controllerPort: await freePort(),
        dir: path.join(root, `broker-${i + 1}`),
        running: false,
        child: undefined,
        exited: Promise.resolve(),
        output: '',
        forget: () => undefined,
      });
    }
    const cluster = new KafkaCluster(brokers, classpath, options.heap ?? '768m');
    onTeardown(async () => {
      await Promise.all(cluster.processes.map((b) => cluster.stopBroker(b, 'SIGKILL')));
      await rm(root, { recursive: true, force: true });
    });
    const clusterId = randomBytes(16).toString('base64url');
    const voters = brokers.map((b) => `${b.nodeId}@127.0.0.1:${b.controllerPort}`).join(',');
    const replication = count === 3 ? 3 : 1;
    const minIsr = count === 3 ? 2 : 1;
    await writeFile(path.join(root, 'log4j2.properties'), LOG4J2);
    const pki = options.tls ? makePki(root) : undefined;
    if (pki) cluster.tls = { ca: pki.ca, otherCa: pki.otherCa };
    for (const broker of brokers) {
      mkdirSync(broker.dir, { recursive: true });
      const listeners = [`PLAINTEXT://127.0.0.1:${broker.port}`, `CONTROLLER://127.0.0.1:${broker.controllerPort}`];
      const advertised = [`PLAINTEXT://127.0.0.1:${broker.port}`];
      const protocols = ['PLAINTEXT:PLAINTEXT', 'CONTROLLER:PLAINTEXT'];
      if (broker.saslPort !== undefined) {
        listeners.push(`SASL_PLAINTEXT://127.0.0.1:${broker.saslPort}`);
        advertised.push(`SASL_PLAINTEXT://127.0.0.1:${broker.saslPort}`);
        protocols.push('SASL_PLAINTEXT:SASL_PLAINTEXT');
      }
      if (broker.tlsPort !== undefined) {
        listeners.push(`SSL://127.0.0.1:${broker.tlsPort}`);
        advertised.push(`SSL://127.0.0.1:${broker.tlsPort}`);
        protocols.push('SSL:SSL');
      }
      const settings: Record<string, string | number> = {
        'process.roles': 'broker,controller',
        'node.id': broker.nodeId,
        'controller.quorum.voters': voters,
        listeners: listeners.join(','),
        'advertised.listeners': advertised.join(','),
        'controller.listener.names': 'CONTROLLER',
        'listener.security.protocol.map': protocols.join(','),
        'inter.broker.listener.name': 'PLAINTEXT',
        'log.dirs': path.join(broker.dir, 'data'),
        'offsets.topic.replication.factor': replication,
        'transaction.state.log.replication.factor': replication,
        'transaction.state.log.min.isr': minIsr,
        'default.replication.factor': replication,
        'min.insync.replicas': minIsr,
        'num.partitions': 1,
        // Fewer internal partitions than the defaults (50): the coordinators load faster at start.
        'transaction.state.log.num.partitions': 4,
        'offsets.topic.num.partitions': 4,
        'group.initial.rebalance.delay.ms': 0,
        'auto.create.topics.enable': 'false',
        ...(pki
          ? { 'ssl.keystore.type': 'PEM', 'ssl.keystore.location': pki.serverPem, 'ssl.client.auth': 'none' }
          : {}),
        ...(options.sasl
          ? {
              'sasl.enabled.mechanisms': 'PLAIN,SCRAM-SHA-256,SCRAM-SHA-512',
              'listener.name.sasl_plaintext.plain.sasl.jaas.config':
                'org.apache.kafka.common.security.plain.PlainLoginModule required ' +
                Object.entries(KAFKA_USERS)
                  .map(([user, password]) => `user_${user}="${password}"`)
                  .join(' ') +
                ';',
              'listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config':
                'org.apache.kafka.common.security.scram.ScramLoginModule required;',
              'listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config':
                'org.apache.kafka.common.security.scram.ScramLoginModule required;',
              'authorizer.class.name': 'org.apache.kafka.metadata.authorizer.StandardAuthorizer',
              // The PLAINTEXT and controller listeners' principal is ANONYMOUS: tests and brokers use them.
              'super.users': 'User:admin;User:ANONYMOUS',
              'allow.everyone.if.no.acl.found': 'false',
            }
          : {}),
        ...options.settings,
      };
      await writeFile(
        path.join(broker.dir, 'server.properties'),
        Object.entries(settings)
          .map(([key, value]) => `${key}=${value}`)
          .join('\n') + '\n',
      );
      const scram = options.sasl
        ? Object.entries(KAFKA_USERS).flatMap(([user, password]) => [
            '--add-scram',
            `SCRAM-SHA-256=[name=${user},password=${password}]`,
            '--add-scram',
            `SCRAM-SHA-512=[name=${user},password=${password}]`,
          ])
        : [];
      execFileSync(
        'java',
        [
          '-cp',
          classpath,
          `-Dlog4j2.configurationFile=${path.join(root, 'log4j2.properties')}`,
          'kafka.tools.StorageTool',
          'format',
          // One word: a base64url id may start with '-', which the tool's parser reads as an option.
          `--cluster-id=${clusterId}`,
          '-c',
          path.join(broker.dir, 'server.properties'),
          ...scram,
        ],
        { stdio: 'pipe' },
      );
    }
    await Promise.all(brokers.map((b) => cluster.launch(b)));
    await cluster.awaitBrokers(count);
    return cluster;
  }

  private broker(index: number): BrokerProcess {
    const broker = this.processes[index];
    if (!broker) throw new Error(`no broker ${index}`);
    return broker;
  }

  private async launch(broker: BrokerProcess): Promise<void> {
    const child = spawn(
      'java',
      [
        `-Xmx${this.heap}`,
        '-Xms128m',
        '-XX:+UseG1GC',
        '-Djava.awt.headless=true',
        `-Dlog4j2.configurationFile=${path.join(path.dirname(broker.dir), 'log4j2.properties')}`,
        '-cp',
        this.classpath,
        'kafka.Kafka',
        path.join(broker.dir, 'server.properties'),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    broker.child = child;
    (broker as { running: boolean }).running = true;
    child.stdout?.on('data', (chunk: Buffer) => (broker.output += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (broker.output += chunk.toString()));
    broker.exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    broker.forget = onProcessExit(() => child.kill('SIGKILL'));
    void broker.exited.then(() => {
      broker.forget();
      (broker as { running: boolean }).running = false;
    });
    await eventually(
      async () => {
        if (child.exitCode !== null) throw new Error(`Kafka broker ${broker.nodeId} exited: ${broker.output}`);
        return (await listening(broker.port)) ? true : undefined;
      },
      `Kafka broker ${broker.nodeId} to listen`,
      120_000,
    );
  }

  private async stopBroker(broker: BrokerProcess, signal: NodeJS.Signals): Promise<void> {
    const child = broker.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill(signal);
    if (signal !== 'SIGKILL') {
      const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
      await broker.exited;
      clearTimeout(timer);
    } else await broker.exited;
  }

  /** Every broker of the cluster is registered and the cluster answers metadata requests. */
  async awaitBrokers(count = this.processes.filter((b) => b.running).length): Promise<void> {
    const bootstrapBrokers = this.processes.filter((b) => b.running).map((b) => `127.0.0.1:${b.port}`);
    const admin = new Admin({ clientId: 'pgcdc-test-harness', bootstrapBrokers, retries: 0 });
    try {
      await eventually(
        async () => {
          const metadata = await admin.metadata({ topics: [], forceUpdate: true });
          return metadata.brokers.size >= count ? true : undefined;
        },
        `${count} Kafka broker(s) to register`,
        120_000,
      );
    } finally {
      await admin.close();
    }
  }

  /** SIGKILLs broker `index` (as a crash would). */
  async kill(index: number): Promise<void> {
    await this.stopBroker(this.broker(index), 'SIGKILL');
  }

  /** Stops broker `index` cleanly (SIGTERM: controlled shutdown). */
  async stop(index: number): Promise<void> {
    await this.stopBroker(this.broker(index), 'SIGTERM');
  }

  /** Starts broker `index` again on the same ports and data. */
  async start(index: number): Promise<void> {
    const broker = this.broker(index);
    if (broker.running) return;
    await this.launch(broker);
  }

  /** Stops every broker (SIGTERM, all at once). */
  async stopAll(): Promise<void> {
    await Promise.all(this.processes.map((b) => this.stopBroker(b, 'SIGTERM')));
  }

  /** Starts every stopped broker and waits until all are registered. */
  async startAll(): Promise<void> {
    await Promise.all(this.processes.filter((b) => !b.running).map((b) => this.launch(b)));
    await this.awaitBrokers(this.processes.length);
  }

  /** An admin client on the PLAINTEXT listeners (closed after the test file). */
  admin(): Admin {
    const admin = new Admin({ clientId: 'pgcdc-test-admin', bootstrapBrokers: this.bootstrapList });
    onTeardown(() => admin.close());
    return admin;
  }
}

/**
 * The cluster of a test file's tests: started by the first call, the same one for every later call,
 * stopped and deleted after the file.
 */
export function kafkaForFile(options: KafkaClusterOptions = {}): () => Promise<KafkaCluster> {
  let cluster: Promise<KafkaCluster> | undefined;
  return () =>
    (cluster ??= startKafka(options).catch((error: unknown) => {
      cluster = undefined;
      throw error;
    }));
}

/** A Kafka cluster for this test file, stopped and deleted after it. */
export function startKafka(options: KafkaClusterOptions = {}): Promise<KafkaCluster> {
  return KafkaCluster.start(options);
}

/** One record as Kafka's Java consumer read it (test/kafka/TopicDump.java). */
export interface DumpedRecord {
  topic: string;
  partition: number;
  offset: number;
  timestamp: number;
  /** The partition Kafka's Java default partitioner picks for the key; -1 for a null key. */
  defaultPartition: number;
  key: string | null;
  value: string | null;
  headers: Record<string, string | null>;
}

/**
 * Every committed record of the topics matching `topicRegex` (a Java regex), read by Kafka's own
 * Java consumer with isolation.level=read_committed: an independent reader, not pgcdc's client.
 */
export async function dumpTopics(bootstrap: string, topicRegex: string): Promise<DumpedRecord[]> {
  const classpath = kafkaClasspath();
  const child = spawn('java', ['-cp', classpath, path.join(KAFKA_DIR, 'TopicDump.java'), bootstrap, topicRegex], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const forget = onProcessExit(() => child.kill('SIGKILL'));
  let err = '';
  child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  // Parsed line by line as it arrives: a long workload's dump is larger than one string may be.
  const records: DumpedRecord[] = [];
  for await (const line of createInterface({ input: child.stdout, crlfDelay: Infinity }))
    if (line !== '') records.push(JSON.parse(line) as DumpedRecord);
  const code = await exited;
  forget();
  if (code !== 0) throw new Error(`TopicDump exited with ${code}: ${err}`);
  return records;
}
