/**
 * `pgcdc run`: stream changes from PostgreSQL into a sink until stopped, starting the capture again
 * inside the process after a retried fault (lifecycle/supervisor.ts, docs/recovery.md).
 * SIGINT/SIGTERM stop cleanly (flush, store the offset, confirm it, exit 0) within shutdown.timeoutMs.
 */
import type { Command } from 'commander';
import type { Config, ConfigInput, FlagNamer } from '../config.ts';
import { runConfig, startRun } from '../library/run.ts';
import { startRunObservers } from '../server/observers.ts';
import { createLogger, type Logger } from '../core/log.ts';
import type { Sink } from '../sinks/contract.ts';
import { createSink } from '../sinks/registry.ts';
import { CdcError } from '../core/errors.ts';
import { splitTableList } from '../selection/patterns.ts';
import { resolveEndpoint } from '../postgres/connect.ts';
import { EXIT_FAILURE, EXIT_OK, reportFatal } from './exit.ts';
import { deprecatedIntervalKey, StatusLine, statusLineIntervalMs } from './status-line.ts';
import { addConnectionOptions, connectionFlagsToSource, type ConnectionFlags } from './connection-flags.ts';
import { addCaptureOptions } from './capture-options.ts';

export interface RunFlags extends ConnectionFlags {
  config?: string;
  source?: string;
  slot?: string;
  publication?: string;
  tables?: string;
  excludeTables?: string;
  tablesFile?: string;
  signalTable?: string;
  onLost?: Config['onLost'];
  onLostDeletes?: Config['onLostDeletes'];
  sink?: string;
  out?: string;
  kafkaBootstrap?: string;
  kafkaDelivery?: string;
  natsUrl?: string;
  redisUrl?: string;
  httpUrl?: string;
  offsets?: string;
  topicPrefix?: string;
  topicNaming?: 'prefix' | 'database';
  format?: Config['envelope']['format'];
  createPublication?: boolean;
  upgradedFrom?: string;
  batchSize?: string;
  snapshotMode?: Config['snapshot']['mode'];
  slotFailover?: 'auto' | 'true' | 'false';
  snapshotMethod?: Config['snapshot']['method'];
  snapshotInclude?: string;
  snapshotSkip?: string;
  snapshotProgress?: Config['snapshot']['progress'];
  snapshotChunkSize?: string;
  snapshotParallelism?: string;
  snapshotThreads?: string;
  streaming?: boolean;
  logLevel?: Config['log']['level'];
  logFormat?: Config['log']['format'];
  retryInitialDelay?: string;
  retryMaxDelay?: string;
  retryGiveUpAfter?: string;
  http?: string;
  httpTokenFile?: string;
}

function positiveInt(value: string | undefined, flag: string, min = 1): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min)
    throw new CdcError(
      'CONFIG_INVALID',
      `${flag} must be a ${min === 0 ? 'non-negative' : 'positive'} whole number, not ${JSON.stringify(value)}`,
    );
  return n;
}

/** Flags -> the config layer they describe (undefined entries are ignored by mergeLayers). */
export function flagsToConfig(flags: RunFlags): ConfigInput {
  return {
    source: { url: flags.source, ...connectionFlagsToSource(flags) },
    slot: flags.slot,
    slotFailover:
      flags.slotFailover === undefined || flags.slotFailover === 'auto'
        ? flags.slotFailover
        : flags.slotFailover === 'true',
    publication: flags.publication,
    tables: flags.tables === undefined ? undefined : splitTableList(flags.tables),
    excludeTables: flags.excludeTables === undefined ? undefined : splitTableList(flags.excludeTables),
    tablesFile: flags.tablesFile,
    signalTable: flags.signalTable,
    createPublication: flags.createPublication === false ? false : undefined,
    upgradedFrom: flags.upgradedFrom,
    onLost: flags.onLost,
    onLostDeletes: flags.onLostDeletes,
    sink: {
      kind: flags.sink,
      out: flags.out,
      // Only when given: a kind's strict schema refuses keys of other kinds, even undefined ones.
      ...(flags.kafkaBootstrap === undefined ? {} : { bootstrapServers: flags.kafkaBootstrap }),
      ...(flags.kafkaDelivery === undefined ? {} : { delivery: flags.kafkaDelivery }),
      ...(flags.natsUrl === undefined ? {} : { servers: flags.natsUrl }),
      ...(flags.redisUrl === undefined ? {} : { url: flags.redisUrl }),
      ...(flags.httpUrl === undefined ? {} : { url: flags.httpUrl }),
    },
    offsets: flags.offsets,
    topic: { prefix: flags.topicPrefix, naming: flags.topicNaming },
    envelope: { format: flags.format },
    batch: { maxEvents: positiveInt(flags.batchSize, '--batch-size') },
    snapshot: {
      mode: flags.snapshotMode,
      method: flags.snapshotMethod,
      include: flags.snapshotInclude === undefined ? undefined : splitTableList(flags.snapshotInclude),
      skip: flags.snapshotSkip === undefined ? undefined : splitTableList(flags.snapshotSkip),
      progress: flags.snapshotProgress,
      chunkSize: positiveInt(flags.snapshotChunkSize, '--snapshot-chunk-size'),
      parallelism: positiveInt(flags.snapshotParallelism, '--snapshot-parallelism'),
      threads: positiveInt(flags.snapshotThreads, '--snapshot-threads', 0),
    },
    streaming: flags.streaming,
    log: { level: flags.logLevel, format: flags.logFormat },
    retry: {
      initialDelayMs: positiveInt(flags.retryInitialDelay, '--retry-initial-delay'),
      maxDelayMs: positiveInt(flags.retryMaxDelay, '--retry-max-delay'),
      giveUpAfterMs: positiveInt(flags.retryGiveUpAfter, '--retry-give-up-after', 0),
    },
    // A layer merged over the file's: http.listen may come from there (validated after the merge).
    http: (flags.http === undefined && flags.httpTokenFile === undefined
      ? undefined
      : { listen: flags.http, tokenFile: flags.httpTokenFile }) as ConfigInput['http'],
  };
}

/** The flag that sets each config key (the longest listed prefix of a bad value's path wins). */
const FLAG_OF_KEY: Readonly<Record<string, string>> = {
  'source.url': '--source',
  'source.passwordFile': '--password-file',
  'source.ssh.host': '--ssh-host',
  'source.ssh.port': '--ssh-host',
  'source.ssh.user': '--ssh-user',
  'source.ssh.privateKeyFile': '--ssh-key',
  'source.ssh.hostKey': '--ssh-host-key',
  'source.ssh.trustOnFirstUse': '--ssh-trust-on-first-use',
  'source.ssh.passwordFile': '--ssh-password-file',
  'source.ssh.passphraseFile': '--ssh-passphrase-file',
  slot: '--slot',
  slotFailover: '--slot-failover',
  publication: '--publication',
  tables: '--tables',
  excludeTables: '--exclude-tables',
  tablesFile: '--tables-file',
  signalTable: '--signal-table',
  createPublication: '--no-create-publication',
  upgradedFrom: '--upgraded-from',
  onLost: '--on-lost',
  onLostDeletes: '--on-lost-deletes',
  'sink.kind': '--sink',
  'sink.out': '--out',
  'sink.bootstrapServers': '--kafka-bootstrap',
  'sink.delivery': '--kafka-delivery',
  'sink.servers': '--nats-url',
  // Two flags set sink.url: flagNamer names the one of the kind the flags chose (SINK_URL_FLAGS).
  'sink.url': '--redis-url or --http-url',
  offsets: '--offsets',
  'topic.prefix': '--topic-prefix',
  'topic.naming': '--topic-naming',
  'envelope.format': '--format',
  'batch.maxEvents': '--batch-size',
  'snapshot.mode': '--snapshot-mode',
  'snapshot.method': '--snapshot-method',
  'snapshot.include': '--snapshot-include',
  'snapshot.skip': '--snapshot-skip',
  'snapshot.progress': '--snapshot-progress',
  'snapshot.chunkSize': '--snapshot-chunk-size',
  'snapshot.parallelism': '--snapshot-parallelism',
  'snapshot.threads': '--snapshot-threads',
  streaming: '--streaming',
  'log.level': '--log-level',
  'log.format': '--log-format',
  'retry.initialDelayMs': '--retry-initial-delay',
  'retry.maxDelayMs': '--retry-max-delay',
  'retry.giveUpAfterMs': '--retry-give-up-after',
  'http.listen': '--http',
  'http.tokenFile': '--http-token-file',
};

/** The flag that sets `sink.url`, per sink kind. */
const SINK_URL_FLAGS: Readonly<Record<string, string>> = { redis: '--redis-url', http: '--http-url' };

/** The flag behind a bad value at `path`, when the flags (not the file) set it. */
export function flagNamer(flagLayer: ConfigInput): FlagNamer {
  const kind = (flagLayer.sink as { kind?: unknown } | undefined)?.kind;
  return (path) => {
    for (let length = path.length; length > 0; length--) {
      const key = path.slice(0, length).map(String).join('.');
      const flag =
        (key === 'sink.url' && typeof kind === 'string' ? SINK_URL_FLAGS[kind] : undefined) ?? FLAG_OF_KEY[key];
      if (flag === undefined) continue;
      let value: unknown = flagLayer;
      for (const key of path.slice(0, length))
        value = typeof value === 'object' && value !== null ? (value as Record<PropertyKey, unknown>)[key] : undefined;
      return value === undefined ? undefined : flag;
    }
    return undefined;
  };
}

export async function loadConfig(flags: RunFlags): Promise<Config> {
  const flagLayer = flagsToConfig(flags);
  return runConfig({
    file: flags.config || undefined,
    layer: flagLayer,
    origin: 'flags',
    flagFor: flagNamer(flagLayer),
  });
}

/** A new, unopened sink of the configured kind (sinks/registry.ts). */
export function makeSink(config: Config, log?: Logger): Sink {
  const database = resolveEndpoint(config.source).database;
  const prefix = config.topic.prefix ?? database;
  const capture = {
    slot: config.slot,
    database,
    topicPrefix: config.topic.naming === 'database' ? `${database}_${prefix}` : prefix,
  };
  return createSink(config.sink, log === undefined ? { capture } : { log, capture });
}

/**
 * Runs until a signal, a fault the error policy does not retry, or the give-up time; returns the
 * process exit code. `makeSink` gives a fresh sink to every start-up (a sink is opened once).
 */
export async function runCapture(
  config: Config,
  log: Logger,
  makeSinkForAttempt: () => Sink = () => makeSink(config, log),
): Promise<number> {
  // The HTTP server listens first: a port in use or a missing token stops here, before the capture.
  const observers = await startRunObservers(config, log);
  const run = startRun(config, makeSinkForAttempt, log, observers.events);
  observers.watch(() => run.status());
  // Handlers go in at once: a signal during a start-up or a backoff must still stop cleanly, never
  // kill the process with the default action.
  let signals = 0;
  let stopTimedOut!: () => void;
  const timedOut = new Promise<false>((resolve) => (stopTimedOut = () => resolve(false)));
  const onSignal = (signal: NodeJS.Signals): void => {
    signals++;
    if (signals > 1) {
      log.warn(
        { signal },
        'second signal: exiting without a clean stop (nothing unconfirmed is lost; it is delivered again on restart)',
      );
      process.exit(EXIT_FAILURE);
    }
    log.info({ signal }, 'stopping: delivering committed changes and confirming them');
    void run.stop().then((clean) => {
      if (!clean) stopTimedOut();
    });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const deprecated = deprecatedIntervalKey(config.log);
  if (deprecated !== undefined) log.warn({}, deprecated);
  const statusLine = new StatusLine(log, statusLineIntervalMs(config.log));
  statusLine.start(() => run.status());
  try {
    const ended = await Promise.race([run.done.then(() => true), timedOut]);
    if (!ended) {
      log.error(
        { timeoutMs: config.shutdown.timeoutMs },
        'the clean stop did not finish within shutdown.timeoutMs (a stalled sink or source): exiting without ' +
          'confirming more (nothing unconfirmed is lost; it is delivered again on restart)',
      );
      process.exit(EXIT_FAILURE);
    }
    return EXIT_OK;
  } finally {
    statusLine.stop();
    await observers.stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

export function registerRun(program: Command): void {
  const command = addCaptureOptions(
    program
      .command('run')
      .description(
        'stream every change of the selected tables into a sink until stopped (SIGINT/SIGTERM stop cleanly)',
      ),
  );
  addConnectionOptions(command).action(async (flags: RunFlags) => {
    let code: number;
    try {
      const config = await loadConfig(flags);
      const log = createLogger(config.log);
      code = await runCapture(config, log);
    } catch (error) {
      code = reportFatal(error);
    }
    process.exitCode = code;
  });
}
