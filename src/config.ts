/**
 * The one configuration schema. It gives both the TypeScript type and the validation; errors name
 * the dotted path of the bad key. Sources, lowest precedence first: defaults, the YAML file
 * (`--config`), PG* environment variables (connection only), command-line flags.
 */
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { parse as parseYaml } from 'yaml';
import { CdcError } from './core/errors.ts';
import { SOURCE_DEFAULTS, sourceSchema } from './postgres/connect-config.ts';
import { SINK_KINDS, sinkConfigSchema } from './sinks/registry.ts';
import { ENVELOPE_TYPES, FLAT_DELETES, shapingObjectSchema } from './envelope/shaping-config.ts';
import { parseTablePattern } from './selection/patterns.ts';
import { alertsSchema } from './health/alerts-config.ts';
import { httpSchema } from './server/options.ts';
import { checkLostDeletes, lifecycleKeys } from './lifecycle/lifecycle-config.ts';

const identifier = z
  .string()
  .regex(
    /^[A-Za-z_][A-Za-z0-9_$]{0,62}$/,
    'must be a plain identifier: letters, digits, _ or $, at most 63 characters',
  );

export { SSL_MODES, type SslMode } from './postgres/connect-config.ts';

export const ENVELOPE_FORMATS = ['json', 'json-with-schema'] as const;
export type EnvelopeFormat = (typeof ENVELOPE_FORMATS)[number];
/** The default `toast.placeholder` (src/envelope/json.ts UNAVAILABLE_VALUE; config.ts imports no envelope code). */
const UNAVAILABLE_PLACEHOLDER = '__pgcdc_unavailable_value';

export const SNAPSHOT_MODES = ['initial', 'never', 'always', 'initial_only', 'when_needed'] as const;
export type SnapshotMode = (typeof SNAPSHOT_MODES)[number];
/** Default silence limit of a snapshot chunk read: 30 minutes. */
const SNAPSHOT_QUERY_TIMEOUT_MS = 1_800_000;
export const SNAPSHOT_METHODS = ['auto', 'signal-table', 'message', 'read-only'] as const;
export type SnapshotMethod = (typeof SNAPSHOT_METHODS)[number];

/**
 * In-process recovery (lifecycle/supervisor.ts, docs/recovery.md): a retried fault (core/error-policy.ts)
 * starts the capture again after an exponential backoff with jitter, until `giveUpAfterMs` of faults
 * without a healthy stretch; then pgcdc exits 1 with the last cause.
 */
export const RETRY_DEFAULTS = {
  initialDelayMs: 500,
  maxDelayMs: 30_000,
  giveUpAfterMs: 900_000,
  resetAfterMs: 30_000,
  jitter: 'full',
} as const;
const DAY_MS = 86_400_000;
const retrySchema = z
  .strictObject({
    /** The delay before the first retry of an outage (before jitter). */
    initialDelayMs: z.number().int().min(1).max(DAY_MS).default(RETRY_DEFAULTS.initialDelayMs),
    /** The largest delay between two attempts (the cap of the doubling). */
    maxDelayMs: z.number().int().min(1).max(DAY_MS).default(RETRY_DEFAULTS.maxDelayMs),
    /** Faults for this long without a healthy stretch: exit 1 with the last cause. 0: never retry. */
    giveUpAfterMs: z
      .number()
      .int()
      .min(0)
      .max(30 * DAY_MS)
      .default(RETRY_DEFAULTS.giveUpAfterMs),
    /** Streaming this long without a fault ends the outage: the backoff and the give-up clock reset. */
    resetAfterMs: z.number().int().min(0).max(DAY_MS).default(RETRY_DEFAULTS.resetAfterMs),
    /** full: a uniform delay in [0, the doubled delay]; decorrelated: in [initial, 3 x the previous delay]. */
    jitter: z.enum(['full', 'decorrelated']).default(RETRY_DEFAULTS.jitter),
  })
  .refine((retry) => retry.maxDelayMs >= retry.initialDelayMs, {
    message: 'must be at least retry.initialDelayMs',
    path: ['maxDelayMs'],
  })
  .default(RETRY_DEFAULTS);
/** How long a clean stop (SIGINT/SIGTERM) may take before pgcdc exits 1 without confirming more. */
const shutdownSchema = z
  .strictObject({ timeoutMs: z.number().int().min(1000).max(DAY_MS).default(30_000) })
  .default({ timeoutMs: 30_000 });

export const configSchema = z.strictObject({
  source: sourceSchema.default(SOURCE_DEFAULTS),
  slot: identifier.default('pgcdc_slot'),
  publication: identifier.default('pgcdc_pub'),
  /**
   * `schema.table` names or patterns (`sales.*`, `public.order_*`; quoted parts are exact). Empty,
   * without `tablesFile`, means every table of the publication.
   */
  tables: z.array(z.string().min(1)).default([]),
  /** Patterns removed from the selection (same grammar as `tables`). */
  excludeTables: z.array(z.string().min(1)).default([]),
  /** CSV without a header, one `schema,table` per row, added to `tables`. */
  tablesFile: z.string().min(1).optional(),
  /** `schema.table` of the signal table; check verifies it exists, is writable and is published. */
  signalTable: z.string().min(1).optional(),
  /** Create the publication when it is missing (FOR TABLE the selected tables). */
  createPublication: z.boolean().default(true),
  /** slotFailover, upgradedFrom, onLost, onLostDeletes (lifecycle/lifecycle-config.ts). */
  ...lifecycleKeys,
  /** `kind` (default jsonl) and that kind's options; each kind brings its schema (sinks/registry.ts). */
  sink: sinkConfigSchema,
  offsets: z.string().default('./pgcdc-offsets.json'),
  topic: z
    .strictObject({
      /** Defaults to the database name. */
      prefix: z.string().optional(),
      /** `prefix`: <prefix>.<schema>.<table>; `database`: <db>_<prefix>.<schema>.<table>. */
      naming: z.enum(['prefix', 'database']).default('prefix'),
    })
    .default({ naming: 'prefix' }),
  envelope: z
    .strictObject({
      /**
       * json: the envelope as is; json-with-schema: key and value as Kafka Connect JsonConverter
       * `{"schema":...,"payload":...}` with Debezium's struct and logical type names (docs/events.md).
       * json-with-schema writes json/jsonb as strings (values.json: string), as no Connect schema
       * describes an arbitrary JSON document.
       */
      format: z.enum(ENVELOPE_FORMATS).default('json'),
      /** debezium: the Debezium envelope; flat: the row plus `__op`, `__deleted`, ... (docs/shaping.md). */
      type: z.enum(ENVELOPE_TYPES).default('debezium'),
      /** Deletes under flat: the old row with `__deleted: true` (rewrite, the default) or a null value. */
      deletes: z.enum(FLAT_DELETES).optional(),
    })
    .refine((envelope) => envelope.deletes === undefined || envelope.type === 'flat', {
      message: 'applies to envelope.type: flat only (the debezium envelope writes deletes with before and op d)',
      path: ['deletes'],
    })
    .default({ format: 'json', type: 'debezium' }),
  /** Per-table rules: columns, masks, truncation, dropped ops, topic routing (docs/shaping.md). */
  shaping: shapingObjectSchema
    .superRefine((shaping, ctx) => {
      shaping.rules.forEach((rule, index) =>
        rule.tables.forEach((text, at) => {
          try {
            parseTablePattern(text);
          } catch {
            ctx.addIssue({
              code: 'custom',
              path: ['rules', index, 'tables', at],
              message: `${JSON.stringify(text)} is not a table pattern: write schema.table or schema.*`,
            });
          }
        }),
      );
    })
    .default({ rules: [] }),
  values: z
    .strictObject({
      numeric: z.enum(['string', 'number']).default('string'),
      json: z.enum(['value', 'string']).default('value'),
      bytea: z.enum(['base64', 'hex', 'base64url']).default('base64'),
      /**
       * pgcdc: the encodings above (docs/types.md); debezium: numeric, money, dates, times,
       * intervals, json and hstore as Debezium's defaults write them (exact decimal bytes, epoch days
       * and microseconds...), for consumers built for Debezium; best with envelope.format json-with-schema.
       */
      style: z.enum(['pgcdc', 'debezium']).default('pgcdc'),
    })
    .default({ numeric: 'string', json: 'value', bytea: 'base64', style: 'pgcdc' }),
  batch: z
    .strictObject({
      /** Events buffered before a sink write. */
      maxEvents: z.number().int().min(1).max(1_000_000).default(50_000),
      /** Longest an event waits for its batch to fill, in milliseconds (docs/benchmarks-latency.md: why 10). */
      maxDelayMs: z.number().int().min(0).max(60_000).default(10),
    })
    .default({ maxEvents: 50_000, maxDelayMs: 10 }),
  snapshot: z
    .strictObject({
      /**
       * initial: snapshot when no offset exists, then stream; never: stream only; always: snapshot
       * on every start (incrementally when resuming); initial_only: snapshot, then exit;
       * when_needed: like initial, and again when the stored offset cannot be used (lost slot...).
       */
      mode: z.enum(SNAPSHOT_MODES).default('initial'),
      /**
       * How incremental (online) snapshots place their watermarks: read-only (PG13+, writes
       * nothing), signal-table (inserts into `signalTable`), message (pg_logical_emit_message,
       * PG14+); auto picks read-only on 13+, else signal-table when one is configured.
       */
      method: z.enum(SNAPSHOT_METHODS).default('auto'),
      /** Rows per chunk read. */
      chunkSize: z.number().int().min(1).max(10_000_000).default(20_000),
      /** Readers of the initial snapshot (one connection each): ranges of one table or of several at once. */
      parallelism: z.number().int().min(1).max(64).default(1),
      /**
       * Threads serializing the initial snapshot's large chunks (snapshot/serializer-pool.ts); 0: the
       * main thread does it. Worth it only with CPUs to spare beside the main thread (docs/benchmarks.md:
       * on a 2-core machine shared with PostgreSQL they cost CPU and gained nothing).
       */
      threads: z.number().int().min(0).max(64).default(0),
      /** Patterns of the captured tables to backfill (empty: all of them). */
      include: z.array(z.string().min(1)).default([]),
      /** Patterns of captured tables whose existing rows are not backfilled. */
      skip: z.array(z.string().min(1)).default([]),
      /** Progress display: bars on a terminal, periodic lines otherwise (auto), or off. */
      progress: z.enum(['auto', 'bars', 'lines', 'off']).default('auto'),
      /**
       * A snapshot chunk read that gets no byte back for this long is abandoned (SOURCE_TIMEOUT, retried):
       * generous, as a chunk of a large table without a usable index may scan for minutes before its first row.
       */
      queryTimeoutMs: z.number().int().min(1000).max(86_400_000).default(SNAPSHOT_QUERY_TIMEOUT_MS),
    })
    .default({
      mode: 'initial',
      method: 'auto',
      chunkSize: 20_000,
      parallelism: 1,
      threads: 0,
      include: [],
      skip: [],
      progress: 'auto',
      queryTimeoutMs: SNAPSHOT_QUERY_TIMEOUT_MS,
    }),
  /** Standby status update interval; capped at a third of the server's wal_sender_timeout. */
  statusIntervalMs: z.number().int().min(100).max(600_000).default(5_000),
  /**
   * pgoutput protocol v2 streaming (PostgreSQL 14+): transactions larger than the server's
   * logical_decoding_work_mem arrive while still open, spill to `<offsets>.spill/` and are
   * delivered at their commit.
   */
  streaming: z.boolean().default(false),
  /**
   * Heartbeats (docs/operations.md): every `interval` milliseconds, with nothing in flight, the checkpoint and
   * the confirmed LSN move to the server's position; `table` and `message` also write something so
   * there is a position to move to when the captured tables are quiet. 0 turns heartbeats off.
   */
  heartbeat: z
    .strictObject({
      interval: z.number().int().min(0).max(3_600_000).default(10_000),
      /** `schema.table` upserted every interval (created by `pgcdc setup --heartbeat-schema`). */
      table: z.string().min(1).optional(),
      /** Emit a non-transactional logical message with the reserved `pgcdc` prefix every interval. */
      message: z.boolean().default(false),
    })
    .default({ interval: 10_000, message: false }),
  /** Unchanged TOASTed columns of updates (docs/events.md). */
  toast: z
    .strictObject({
      /** placeholder: `toast.placeholder`; omit: left out of `after`; fill: last known value. */
      mode: z.enum(['placeholder', 'omit', 'fill']).default('placeholder'),
      /** The text standing for an unchanged TOAST value (Debezium's is `__debezium_unavailable_value`). */
      placeholder: z.string().min(1).max(1024).default(UNAVAILABLE_PLACEHOLDER),
      /** Bound of the fill store (bytes of stored values). */
      fillMaxBytes: z
        .number()
        .int()
        .min(1024)
        .max(16 * 1024 * 1024 * 1024)
        .default(256 * 1024 * 1024),
    })
    .default({ mode: 'placeholder', placeholder: UNAVAILABLE_PLACEHOLDER, fillMaxBytes: 256 * 1024 * 1024 }),
  truncate: z
    .strictObject({
      /** Drop TRUNCATE (op t) events instead of delivering them. */
      skip: z.boolean().default(false),
    })
    .default({ skip: false }),
  /** Logical decoding messages by prefix: exact prefixes, or globs where `*` matches any run. */
  messages: z
    .strictObject({
      /** Empty: every prefix (except pgcdc's own). */
      include: z.array(z.string().min(1)).default([]),
      exclude: z.array(z.string().min(1)).default([]),
    })
    .default({ include: [], exclude: [] }),
  transactions: z
    .strictObject({
      /** BEGIN and END events on `<prefix>.transaction` around every transaction with events. */
      events: z.boolean().default(false),
    })
    .default({ events: false }),
  /** `none` (PostgreSQL 16+): skip changes applied by other replication (with a replication origin). */
  origin: z.enum(['any', 'none']).default('any'),
  schemaChanges: z
    .strictObject({
      /** An event on `<prefix>.schema_changes` when a table's columns change. */
      events: z.boolean().default(false),
    })
    .default({ events: false }),
  log: z
    .strictObject({
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info'),
      format: z.enum(['pretty', 'json']).default('pretty'),
      /**
       * `pgcdc run`'s status line (events, rate, acknowledged LSN) at info level, every this many ms; 0:
       * never. Unset: `progressIntervalMs`, else a minute (cli/status-line.ts `statusLineIntervalMs`).
       */
      statusLineIntervalMs: z.number().int().min(0).max(86_400_000).optional(),
      /** The earlier name of `statusLineIntervalMs`, still accepted (pgcdc run warns that it is deprecated). */
      progressIntervalMs: z.number().int().min(0).max(86_400_000).optional(),
    })
    .default({ level: 'info', format: 'pretty' }),
  retry: retrySchema,
  shutdown: shutdownSchema,
  /** Slot sampling, alert thresholds and the webhook (health/alerts-config.ts, docs/operations.md, "Monitoring"). */
  alerts: alertsSchema,
  /** `pgcdc run`'s HTTP server (status, metrics, health, the dashboard); absent: none (server/options.ts). */
  http: httpSchema.optional(),
});

export type Config = z.infer<typeof configSchema>;
/** What a file or the flags may give: everything optional and nested. */
export type ConfigInput = z.input<typeof configSchema>;

/**
 * Names what the user typed for a config path: the command-line flag when the value came from one
 * (`--batch-size`), else undefined (the value came from the file: its key path is named).
 */
export type FlagNamer = (path: readonly PropertyKey[]) => string | undefined;

/**
 * Throws CONFIG_INVALID naming the first bad value as the user wrote it: `--flag: what is wrong`
 * when it came from a flag (`flagFor`), else `<origin>: path.to.key: what is wrong`.
 */
export function parseConfig(input: unknown, origin = 'configuration', flagFor?: FlagNamer): Config {
  const result = configSchema.safeParse(input);
  if (!result.success) {
    const issue = result.error.issues[0];
    const flag = issue === undefined ? undefined : flagFor?.(issue.path);
    if (issue !== undefined && flag !== undefined) {
      throw new CdcError('CONFIG_INVALID', `${flag}: ${issue.message}`, {
        hint: 'fix that flag (see pgcdc <command> --help and docs/config.md)',
      });
    }
    const where = issue === undefined ? undefined : issue.path.length > 0 ? issue.path.join('.') : '(top level)';
    throw new CdcError(
      'CONFIG_INVALID',
      where === undefined ? `${origin}: invalid configuration` : `${origin}: ${where}: ${issue?.message ?? ''}`,
      {
        hint: 'fix that key (see docs/config.md)',
      },
    );
  }
  let config = result.data;
  // `offsets: <kind>` keeps the checkpoints in that sink only (offsets/open.ts): another kind than the
  // one running is a mistake, not a file name (a file of that name is `./<kind>`).
  const offsetsKind = SINK_KINDS.find((kind) => kind === config.offsets);
  if (offsetsKind !== undefined && offsetsKind !== config.sink.kind)
    throw new CdcError(
      'CONFIG_INVALID',
      `--offsets ${offsetsKind} keeps the checkpoints in the ${offsetsKind} sink, but the sink is ${config.sink.kind}`,
      {
        hint:
          `use --offsets ${config.sink.kind} (if that sink stores checkpoints) or a file path ` +
          `(a file named ${offsetsKind}: ./${offsetsKind})`,
      },
    );
  checkLostDeletes(config);
  // No Kafka Connect schema describes an arbitrary JSON document: json-with-schema writes json and
  // jsonb as strings (io.debezium.data.Json), as Debezium does.
  if (config.envelope.format === 'json-with-schema' && config.values.json !== 'string')
    config = { ...config, values: { ...config.values, json: 'string' } };
  // The Kafka and HTTP sinks' lingerMs is batch.maxDelayMs under the name their users know.
  if ((config.sink.kind === 'kafka' || config.sink.kind === 'http') && config.sink.lingerMs !== undefined)
    config = { ...config, batch: { ...config.batch, maxDelayMs: config.sink.lingerMs } };
  return config;
}

export async function readConfigFile(path: string): Promise<ConfigInput> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (cause) {
    throw new CdcError('CONFIG_INVALID', `cannot read config file ${path}`, { cause, hint: 'check the --config path' });
  }
  let parsed: unknown;
  try {
    parsed = parseYaml(text);
  } catch (cause) {
    const reason = cause instanceof Error ? cause.message.split('\n')[0] : String(cause);
    throw new CdcError('CONFIG_INVALID', `config file ${path} is not valid YAML: ${reason}`, { cause });
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new CdcError('CONFIG_INVALID', `config file ${path} must be a YAML mapping`);
  }
  return parsed;
}

type Plain = { [key: string]: unknown };
function isPlain(value: unknown): value is Plain {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Deep merge where later layers win and undefined never overrides. */
export function mergeLayers(...layers: unknown[]): Plain {
  const out: Plain = {};
  for (const layer of layers) {
    if (!isPlain(layer)) continue;
    for (const [key, value] of Object.entries(layer)) {
      if (value === undefined) continue;
      const current = out[key];
      out[key] =
        isPlain(value) && isPlain(current) ? mergeLayers(current, value) : isPlain(value) ? mergeLayers(value) : value;
    }
  }
  return out;
}
