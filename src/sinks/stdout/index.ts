/** The stdout sink kind: every event as one JSON line on standard output (stdout.ts). */
import { z } from 'zod';
import { defineSinkKind } from '../kind.ts';
import { StdoutSink } from './stdout.ts';

export const stdoutOptionsSchema = z.strictObject({
  kind: z.literal('stdout'),
  /**
   * Accepted and ignored: a config file written for the JSONL sink keeps its `out` when
   * `--sink stdout` switches the kind, as it always could.
   */
  out: z.string().optional(),
});

export type StdoutOptions = z.infer<typeof stdoutOptionsSchema>;

export const stdoutKind = defineSinkKind<StdoutOptions>({
  kind: 'stdout',
  summary: 'every event as one JSON line on standard output (at-least-once)',
  schema: stdoutOptionsSchema,
  create: (_options, context) => new StdoutSink(context.stdout ? { stream: context.stdout } : {}),
});

export { StdoutSink } from './stdout.ts';
