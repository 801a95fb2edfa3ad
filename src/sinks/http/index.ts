/** The HTTP webhook sink kind: events POSTed to a URL in batches, at-least-once (http-sink.ts, docs/sinks.md). */
import { defineSinkKind } from '../kind.ts';
import { HttpSink } from './http-sink.ts';
import { httpOptionsSchema, type HttpOptions } from './options.ts';

export const httpKind = defineSinkKind<HttpOptions>({
  kind: 'http',
  summary:
    'events POSTed to a URL as JSON arrays or NDJSON, signed, retried until accepted (--http-url; at-least-once)',
  schema: httpOptionsSchema,
  create: (options, context) => new HttpSink(options, context.log),
});

export { HttpSink } from './http-sink.ts';
export { HTTP_FORMATS, httpOptionsSchema, type HttpOptions } from './options.ts';
export { SIGNATURE_HEADER, signature, verifySignature } from './signing.ts';
