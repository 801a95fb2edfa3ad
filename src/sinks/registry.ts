/**
 * Every sink kind pgcdc knows, and the two things the rest of pgcdc does with them: validate the
 * `sink` section of the configuration (`sinkConfigSchema`, composed into config.ts) and build the
 * configured sink (`createSink`, used by the CLI).
 *
 * A new kind (Kafka, say) is a folder `sinks/kafka/` whose index.ts exports a `SinkKind`
 * (sinks/kind.ts), one line in `KINDS` below, and the conformance suite run against it
 * (test/harness/sink-conformance.ts). Nothing in pipeline/ imports this module or any kind: the
 * pipeline receives a `Sink`.
 */
import { z } from 'zod';
import { CdcError } from '../core/errors.ts';
import type { Sink } from './contract.ts';
import type { SinkContext, SinkKind } from './kind.ts';
import { jsonlKind } from './jsonl/index.ts';
import { stdoutKind } from './stdout/index.ts';
import { kafkaKind } from './kafka/index.ts';
import { natsKind } from './nats/index.ts';
import { redisKind } from './redis/index.ts';
import { httpKind } from './http/index.ts';

/** The known kinds; the first is the default when the configuration names none. */
const KINDS = [jsonlKind, stdoutKind, kafkaKind, natsKind, redisKind, httpKind] as const;

type OptionsOf<K> = K extends SinkKind<infer Options> ? Options : never;

/** The validated `sink` section: one kind's options, `kind` included. */
export type SinkConfig = OptionsOf<(typeof KINDS)[number]>;

export const DEFAULT_SINK_KIND: SinkConfig['kind'] = KINDS[0].kind;

/** The names of the known kinds, the default first. */
export const SINK_KINDS: readonly SinkConfig['kind'][] = KINDS.map((kind) => kind.kind);

const byName = new Map<string, SinkKind>(KINDS.map((kind) => [kind.kind, kind as unknown as SinkKind]));

/** `kind: ...` followed by each kind's summary, for `--help`. */
export function describeSinkKinds(): string {
  return KINDS.map((kind) => `${kind.kind}${kind === KINDS[0] ? ' (default)' : ''}: ${kind.summary}`).join('; ');
}

/** The one line for a kind nobody registered. */
function unknownKindMessage(kind: unknown): string {
  return `unknown sink kind ${JSON.stringify(kind)}; the known kinds are ${SINK_KINDS.join(', ')}`;
}

/**
 * The `sink` section: `kind` picks the kind (the default when absent), whose own schema validates
 * the rest. An unknown kind is one issue at `sink.kind` listing the known ones.
 */
export const sinkConfigSchema = z
  .unknown()
  .optional()
  .transform((input, ctx): SinkConfig => {
    const section = input ?? {};
    if (typeof section !== 'object' || section === null || Array.isArray(section)) {
      ctx.addIssue({
        code: 'custom',
        message: `must be a mapping with a kind (${SINK_KINDS.join(', ')}) and its options`,
      });
      return z.NEVER;
    }
    const fields = section as Record<string, unknown>;
    const name = fields.kind ?? DEFAULT_SINK_KIND;
    const kind = typeof name === 'string' ? byName.get(name) : undefined;
    if (kind === undefined) {
      ctx.addIssue({ code: 'custom', path: ['kind'], message: unknownKindMessage(name) });
      return z.NEVER;
    }
    const parsed = kind.schema.safeParse({ ...fields, kind: name });
    if (!parsed.success) {
      for (const issue of parsed.error.issues)
        ctx.addIssue({ code: 'custom', path: issue.path, message: issue.message });
      return z.NEVER;
    }
    // The kind's schema produced its options; the union type cannot follow the lookup by name.
    return parsed.data as SinkConfig;
  });

/**
 * A new, unopened sink as `config` describes it. Throws CONFIG_INVALID for a kind that is not
 * registered (a config that did not go through `sinkConfigSchema`).
 */
export function createSink(
  config: { readonly kind: string } & Readonly<Record<string, unknown>>,
  context: SinkContext = {},
): Sink {
  const kind = byName.get(config.kind);
  if (kind === undefined) {
    throw new CdcError('CONFIG_INVALID', `sink.kind: ${unknownKindMessage(config.kind)}`, {
      hint: 'set sink.kind (--sink) to one of them',
    });
  }
  return kind.create(kind.schema.parse(config), context);
}
