/**
 * The `sink` section for `kind: nats` (docs/nats.md has every option with its default).
 * Secrets (a password, a token, an NKey seed, a credentials file's content) come from a file or an
 * environment variable, never from the configuration or a flag, so they are never in a process
 * listing or a log.
 */
import { z } from 'zod';
import { secretSourceSchema, certAndKeyTogether, tlsFileFields } from '../secrets.ts';

/** A server URL: nats:// or tls:// (a bare host:port means nats://). */
const serverUrl = z
  .string()
  .transform((value) => (/^[a-z]+:\/\//i.test(value) ? value : `nats://${value}`))
  .pipe(
    z
      .string()
      .regex(
        /^(nats|tls):\/\/(\[[0-9a-fA-F:]+\]|[^\s:,/@[\]]+)(:\d{1,5})?$/,
        'must be nats://host:port or tls://host:port (credentials never go into the URL: use sink.auth)',
      ),
  );

/** One way to log in; a server without authentication needs none. */
const authSchema = z.union(
  [
    z.strictObject({ user: z.string().min(1), password: secretSourceSchema }),
    z.strictObject({ token: secretSourceSchema }),
    /** An NKey seed (`SU...`): the seed itself is the secret. */
    z.strictObject({ nkeySeed: secretSourceSchema }),
    /** A decentralized-auth credentials file (JWT and seed), as `nsc` writes it. */
    z.strictObject({ credentials: secretSourceSchema }),
  ],
  {
    error:
      'must be one of {user, password}, {token}, {nkeySeed} or {credentials}, each secret as {file: ...} or {env: ...}',
  },
);

export type NatsAuth = z.infer<typeof authSchema>;

/** Characters a NATS stream name cannot hold (it becomes part of API subjects and file names). */
export const STREAM_NAME = /^[^\s.*>/\\]+$/;
/** A KV bucket name. */
const BUCKET_NAME = /^[a-zA-Z0-9_-]+$/;

export const NATS_STORAGE = ['file', 'memory'] as const;

const streamSchema = z
  .strictObject({
    /** Default `pgcdc-<topic prefix>` (characters a stream name cannot hold become `_`). */
    name: z.string().regex(STREAM_NAME, 'must not contain spaces, ., *, >, / or \\').optional(),
    /** Create the stream when it does not exist (off: a missing stream stops pgcdc at start). */
    create: z.boolean().default(true),
    /** Default `<topic prefix>.>` (after the subject template). */
    subjects: z.array(z.string().min(1)).min(1).optional(),
    storage: z.enum(NATS_STORAGE).default('file'),
    replicas: z.number().int().min(1).max(5).default(1),
    /**
     * JetStream drops a message whose Nats-Msg-Id it stored within this window: a redelivery after
     * a restart is a duplicate only if the restart takes less.
     */
    duplicateWindowMs: z
      .number()
      .int()
      .min(1000)
      .max(7 * 24 * 3600 * 1000)
      .default(120_000),
    /**
     * pgcdc is the stream's only publisher: each publish expects the stream's last message to be the
     * previous event (Nats-Expected-Last-Msg-Id), so nothing is stored after a lost event. Turn off
     * when other publishers write to the same stream.
     */
    exclusive: z.boolean().default(true),
  })
  .default({ create: true, storage: 'file', replicas: 1, duplicateWindowMs: 120_000, exclusive: true });

export const natsOptionsSchema = z.strictObject({
  kind: z.literal('nats'),
  /** One or more servers (a list, or one comma-separated string): `nats://host:4222`, `tls://host:4222`. */
  servers: z
    .union([z.string(), z.array(z.string())], {
      error: 'is required: nats://host:port,... of one or more servers (--nats-url)',
    })
    .transform((value) =>
      (Array.isArray(value) ? value : value.split(','))
        .map((server) => server.trim())
        .filter((server) => server !== ''),
    )
    .pipe(z.array(serverUrl).min(1, 'must name at least one server (nats://host:port)')),
  /** The connection's name, shown by the server's monitoring. */
  name: z.string().min(1).default('pgcdc'),
  auth: authSchema.optional(),
  tls: z
    .strictObject({
      ...tlsFileFields,
    })
    .refine(...certAndKeyTogether)
    .optional(),
  /**
   * The subject of an event: `{topic}` is the event's topic with the characters a subject cannot
   * hold replaced (subjects.ts). Default `{topic}`: `<prefix>.<schema>.<table>`.
   */
  subject: z
    .string()
    .refine((template) => template.includes('{topic}'), { message: 'must contain {topic}' })
    .refine(
      (template) => /^[A-Za-z0-9_\-.${}]+$/.test(template) && !/(^|\.)\.|\.$/.test(template.replace('{topic}', 'x')),
      {
        message: 'may hold only letters, digits, _, -, $ and dots between tokens besides {topic}',
      },
    )
    .default('{topic}'),
  stream: streamSchema,
  /** Publishes awaiting their acknowledgement from the stream, at most. */
  maxInFlight: z.number().int().min(1).max(65_536).default(1024),
  /** A publish not acknowledged within this long fails (retried by restarting from the checkpoint). */
  publishTimeoutMs: z.number().int().min(500).max(600_000).default(10_000),
  /** Connecting (and each request of the start-up checks) gives up after this long. */
  connectTimeoutMs: z.number().int().min(500).max(600_000).default(5_000),
  /** The KV bucket holding the checkpoints (created when missing). */
  offsetsBucket: z.string().regex(BUCKET_NAME, 'may hold only letters, digits, _ and -').default('pgcdc-offsets'),
});

export type NatsOptions = z.infer<typeof natsOptionsSchema>;

export type { SecretSource } from '../secrets.ts';
