/**
 * What a sink kind brings to the registry (sinks/registry.ts): its name, its configuration schema
 * and its factory. Each kind's folder exports one `SinkKind` from its index.ts; the registry lists
 * them. Nothing else names a kind: the CLI and the config validation go through the registry, and
 * the pipeline only ever sees a `Sink`.
 */
import type { Writable } from 'node:stream';
import type { z } from 'zod';
import type { Logger } from '../core/log.ts';
import type { Sink } from './contract.ts';

/** What a factory may use besides its options. */
export interface SinkContext {
  /** Where the sink says what it did (JSONL: what `open` cut). */
  readonly log?: Logger;
  /** The process's standard output, for sinks that write to it (tests pass another stream). */
  readonly stdout?: Writable;
  /**
   * The capture the sink serves, for sinks that name things after it (Kafka: the transactional id,
   * the offsets topic and the checkpoint's key).
   */
  readonly capture?: {
    readonly slot: string;
    readonly database: string;
    /** The topic prefix as topics are named (with `topic.naming: database`, `<database>_<prefix>`). */
    readonly topicPrefix: string;
  };
}

/**
 * One sink kind. `Options` is the `sink` section of the configuration for this kind, `kind`
 * included: `{ kind: 'jsonl', out: './events' }`.
 */
export interface SinkKind<Options extends { readonly kind: string } = { readonly kind: string }> {
  /** The `sink.kind` value (and `--sink` flag value) that selects this kind. */
  readonly kind: Options['kind'];
  /** One line for `--help` and docs: where events go. */
  readonly summary: string;
  /**
   * Validates the `sink` section for this kind and fills its defaults: a strict object whose
   * `kind` is `z.literal(kind)`. Its error messages name what is wrong in the user's terms.
   */
  readonly schema: z.ZodType<Options>;
  /** A new, unopened sink. Called once per capture start (an in-process restart makes a new one). */
  create(options: Options, context: SinkContext): Sink;
}

/** Declares a kind with its option types inferred from the schema. */
export function defineSinkKind<Options extends { readonly kind: string }>(kind: SinkKind<Options>): SinkKind<Options> {
  return kind;
}
