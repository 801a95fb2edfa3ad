/**
 * Kafka Connect for tests: a standalone worker (org.apache.kafka.connect.cli.ConnectStandalone from
 * the jars test/kafka/pom.xml pins) running one sink connector that nobody here wrote, from Maven
 * Central: Debezium's JDBC sink connector (test/kafka/connect-jdbc/pom.xml, copied into
 * test/kafka/target/plugins/debezium-jdbc by `npm run kafka:fetch`, or here on first use when mvn
 * is on the PATH). Keys and values are read with Kafka's JsonConverter, schemas enabled: the shape of
 * pgcdc's `json-with-schema` format. The worker is stopped and its folder deleted after the test file.
 *
 * Callers skip with `requireOrSkip(connectAvailable(), 'Kafka Connect (java, and the test/kafka jars or mvn)')`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../src/embedded/cluster.ts';
import { kafkaAvailable, kafkaClasspath } from './kafka.ts';
import { assertTeardownPending, eventually, onTeardown } from './pg.ts';
import { onProcessExit } from './tmp.ts';
import { fetchWithMaven, onPath } from './maven-fetch.ts';

const KAFKA_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'kafka');
const JDBC_SINK_POM = path.join(KAFKA_DIR, 'connect-jdbc', 'pom.xml');
/** Connect's plugin.path: one folder per plugin (outside target/lib, which worktrees share). */
export const CONNECT_PLUGINS = path.join(KAFKA_DIR, 'target', 'plugins');
/** Where `mvn -f test/kafka/connect-jdbc/pom.xml dependency:copy-dependencies` puts the JDBC sink. */
export const JDBC_SINK_PLUGIN = path.join(CONNECT_PLUGINS, 'debezium-jdbc');
/** The Debezium JDBC sink connector's class. */
export const JDBC_SINK_CONNECTOR = 'io.debezium.connector.jdbc.JdbcSinkConnector';

function pluginPresent(): boolean {
  return (
    existsSync(JDBC_SINK_PLUGIN) &&
    readdirSync(JDBC_SINK_PLUGIN).some((name) => name.startsWith('debezium-connector-jdbc-'))
  );
}

/** Kafka (java and its jars, or mvn), and the JDBC sink plugin or mvn to fetch it. */
export function connectAvailable(): boolean {
  return kafkaAvailable() && (pluginPresent() || onPath('mvn'));
}

/** The JDBC sink plugin folder, fetched with Maven when missing (maven-fetch.ts). */
export function jdbcSinkPlugin(): string {
  return fetchWithMaven({
    pom: JDBC_SINK_POM,
    property: 'plugin.dir',
    target: JDBC_SINK_PLUGIN,
    present: pluginPresent,
  });
}

// INFO from Connect and Debezium (what a user would look at), WARN from the chatty clients and Hibernate.
const LOG4J2 = [
  'rootLogger.level = INFO',
  'rootLogger.appenderRef.stdout.ref = STDOUT',
  'appender.stdout.type = Console',
  'appender.stdout.name = STDOUT',
  'appender.stdout.layout.type = PatternLayout',
  'appender.stdout.layout.pattern = [%d] %p %m (%c)%n',
  'logger.clients.name = org.apache.kafka.clients',
  'logger.clients.level = WARN',
  'logger.common.name = org.apache.kafka.common',
  'logger.common.level = WARN',
  'logger.hibernate.name = org.hibernate',
  'logger.hibernate.level = WARN',
  'logger.c3p0.name = com.mchange',
  'logger.c3p0.level = WARN',
  'logger.jetty.name = org.eclipse.jetty',
  'logger.jetty.level = WARN',
  // The REST server logs every request at INFO (the harness polls /status).
  'logger.rest.name = org.apache.kafka.connect.runtime.rest',
  'logger.rest.level = WARN',
  '',
].join('\n');

export interface ConnectWorkerOptions {
  /** The brokers' bootstrap list (PLAINTEXT). */
  bootstrap: string;
  /** Extra worker properties (over the defaults below). */
  worker?: Readonly<Record<string, string | number | boolean>>;
  /** JVM heap (default 512m). */
  heap?: string;
}

/** A connector's configuration (`connector.class` included; the name is given apart). */
export type ConnectorConfig = Readonly<Record<string, string | number | boolean>>;

/** The REST API's `/connectors/<name>/status` answer. */
export interface ConnectorStatus {
  name: string;
  connector: { state: string; trace?: string };
  tasks: { id: number; state: string; trace?: string }[];
}

function properties(entries: Readonly<Record<string, string | number | boolean>>): string {
  return (
    Object.entries(entries)
      .map(([key, value]) => `${key}=${String(value)}`)
      .join('\n') + '\n'
  );
}

/**
 * A running standalone Kafka Connect worker. Connectors are created through its REST API
 * (`createConnector`), so one worker serves every test of a file.
 */
export class ConnectWorker {
  private output = '';
  private readonly child: ChildProcess;
  private readonly exited: Promise<void>;
  readonly restPort: number;

  private constructor(child: ChildProcess, restPort: number) {
    this.child = child;
    this.restPort = restPort;
    child.stdout?.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    this.exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  }

  /** Starts a worker (no connector yet) and waits until its REST API answers. */
  static async start(options: ConnectWorkerOptions): Promise<ConnectWorker> {
    assertTeardownPending();
    const classpath = kafkaClasspath();
    jdbcSinkPlugin();
    const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-connect-'));
    const restPort = await freePort();
    const worker = {
      'bootstrap.servers': options.bootstrap,
      'key.converter': 'org.apache.kafka.connect.json.JsonConverter',
      'key.converter.schemas.enable': true,
      'value.converter': 'org.apache.kafka.connect.json.JsonConverter',
      'value.converter.schemas.enable': true,
      'offset.storage.file.filename': path.join(dir, 'connect.offsets'),
      'offset.flush.interval.ms': 1000,
      'plugin.path': CONNECT_PLUGINS,
      // Every plugin here (Kafka's own, Debezium's) declares itself in META-INF/services: no slow scan.
      'plugin.discovery': 'service_load',
      listeners: `http://127.0.0.1:${restPort}`,
      // pgcdc's exactly-once mode writes in transactions: read only what was committed.
      'consumer.isolation.level': 'read_committed',
      // topics.regex sees topics created after the worker started within this time (default 5 min).
      'consumer.metadata.max.age.ms': 1000,
      ...options.worker,
    };
    await writeFile(path.join(dir, 'worker.properties'), properties(worker));
    await writeFile(path.join(dir, 'log4j2.properties'), LOG4J2);
    const child = spawn(
      'java',
      [
        `-Xmx${options.heap ?? '512m'}`,
        '-Xms64m',
        '-XX:+UseG1GC',
        '-Djava.awt.headless=true',
        '-Duser.timezone=UTC',
        `-Dlog4j2.configurationFile=${path.join(dir, 'log4j2.properties')}`,
        '-cp',
        classpath,
        'org.apache.kafka.connect.cli.ConnectStandalone',
        path.join(dir, 'worker.properties'),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const connect = new ConnectWorker(child, restPort);
    const forget = onProcessExit(() => child.kill('SIGKILL'));
    onTeardown(async () => {
      await connect.stop();
      forget();
      await rm(dir, { recursive: true, force: true });
    });
    await eventually(
      async () => {
        if (child.exitCode !== null)
          throw new ConnectExitedError(`Kafka Connect exited: ${connect.output.slice(-4000)}`);
        const response = await fetch(`http://127.0.0.1:${restPort}/connectors`).catch(() => undefined);
        return response?.ok ? true : undefined;
      },
      'the Kafka Connect REST API to answer',
      180_000,
    );
    return connect;
  }

  /** Everything the worker has logged (Connect and Debezium at INFO, the rest at WARN). */
  log(): string {
    return this.output;
  }

  private async rest(method: 'GET' | 'PUT' | 'DELETE', route: string, body?: unknown): Promise<unknown> {
    const response = await fetch(`http://127.0.0.1:${this.restPort}${route}`, {
      method,
      headers: { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`Kafka Connect ${method} ${route}: HTTP ${response.status} ${text}`);
    return text === '' ? undefined : (JSON.parse(text) as unknown);
  }

  /** Creates connector `name` and waits until it and every task are RUNNING (throws on FAILED). */
  async createConnector(name: string, config: ConnectorConfig): Promise<void> {
    const strings = Object.fromEntries(Object.entries(config).map(([key, value]) => [key, String(value)]));
    await this.rest('PUT', `/connectors/${encodeURIComponent(name)}/config`, { ...strings, name });
    await this.awaitRunning(name);
  }

  /** Deletes connector `name` (its tasks stop; the worker keeps running). */
  async deleteConnector(name: string): Promise<void> {
    await this.rest('DELETE', `/connectors/${encodeURIComponent(name)}`);
  }

  /** The connector's status from the REST API. */
  async status(name: string): Promise<ConnectorStatus> {
    return (await this.rest('GET', `/connectors/${encodeURIComponent(name)}/status`)) as ConnectorStatus;
  }

  /** Throws FailedConnectorError with Connect's stack trace when the connector or a task FAILED. */
  async assertNotFailed(name: string): Promise<void> {
    if (this.child.exitCode !== null) throw new ConnectExitedError(`Kafka Connect exited: ${this.output.slice(-4000)}`);
    const status = await this.status(name);
    const failed = [status.connector, ...status.tasks].find((s) => s.state === 'FAILED');
    if (failed) throw new FailedConnectorError(`connector ${name} FAILED: ${failed.trace ?? ''}`);
  }

  /** Waits until the connector and every task are RUNNING; FAILED or an exit of the worker fails at once. */
  async awaitRunning(name: string, timeoutMs = 180_000): Promise<void> {
    let failure: Error | undefined;
    await eventually(
      async () => {
        try {
          await this.assertNotFailed(name);
        } catch (error) {
          if (!(error instanceof FailedConnectorError || error instanceof ConnectExitedError)) throw error;
          failure = error;
          return true;
        }
        const status = await this.status(name);
        const running = status.connector.state === 'RUNNING' && status.tasks.length > 0;
        return running && status.tasks.every((t) => t.state === 'RUNNING') ? true : undefined;
      },
      `Kafka Connect connector ${name} to run`,
      timeoutMs,
    );
    if (failure) throw failure;
  }

  /** Stops the worker cleanly (SIGTERM; SIGKILL after 60 s). */
  async stop(): Promise<void> {
    const child = this.child;
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    await this.exited;
    clearTimeout(timer);
  }
}

/** The worker process ended (the message holds the end of its log). */
export class ConnectExitedError extends Error {}

/** A connector or task in state FAILED (the message holds Connect's trace). */
export class FailedConnectorError extends Error {}

/** A Kafka Connect worker (no connector yet) for this test file, stopped and deleted after it. */
export function startConnect(options: ConnectWorkerOptions): Promise<ConnectWorker> {
  return ConnectWorker.start(options);
}

/**
 * The JDBC sink's `connection.*` properties for a PostgreSQL URL (`postgres://user:password@host:port/db`).
 * The password goes into the connector's properties file (a test server's throwaway password).
 */
export function jdbcConnection(url: string): Record<string, string> {
  const parsed = new URL(url);
  return {
    'connection.url': `jdbc:postgresql://${parsed.hostname}:${parsed.port}${parsed.pathname}`,
    'connection.username': decodeURIComponent(parsed.username),
    'connection.password': decodeURIComponent(parsed.password),
  };
}
