/** The JSONL sink kind: one exactly-once file per topic in a directory (jsonl.ts). */
import { z } from 'zod';
import { defineSinkKind } from '../kind.ts';
import { JsonlSink } from './jsonl.ts';

export const jsonlOptionsSchema = z.strictObject({
  kind: z.literal('jsonl'),
  /** Directory of the JSONL files (one per topic). */
  out: z.string().min(1, 'must name a directory').default('./events'),
});

export type JsonlOptions = z.infer<typeof jsonlOptionsSchema>;

export const jsonlKind = defineSinkKind<JsonlOptions>({
  kind: 'jsonl',
  summary: 'one JSON-lines file per topic in --out (exactly-once)',
  schema: jsonlOptionsSchema,
  create: (options, context) => new JsonlSink({ dir: options.out, ...(context.log ? { log: context.log } : {}) }),
});

export { JsonlSink, jsonlFileName } from './jsonl.ts';
