/**
 * For bench/sinks.ts: the HTTP target. A local endpoint that only counts (events, requests, bytes) and
 * answers 200 at once, in the bench process; the reference is a minimal node:http client in a child
 * process POSTing JSON-array bodies of the same size and event count as pgcdc's requests, one request
 * in flight (pgcdc's default `ordering: strict`), to the same endpoint.
 */
import { spawn } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SinkTarget, TargetServer } from './target.ts';

const ID_MARK = Buffer.from('{"id":"');
const HERE = path.dirname(fileURLToPath(import.meta.url));

class CountingEndpoint implements TargetServer {
  events = 0;
  requests = 0;
  bytes = 0;

  private constructor(
    private readonly server: http.Server,
    readonly url: string,
  ) {}

  static async start(): Promise<CountingEndpoint> {
    const box: { endpoint?: CountingEndpoint } = {};
    const server = http.createServer({ keepAlive: true }, (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        box.endpoint?.count(body);
        res.writeHead(200, { 'content-length': '0' }).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const endpoint = new CountingEndpoint(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`);
    box.endpoint = endpoint;
    return endpoint;
  }

  count(body: Buffer): void {
    this.requests++;
    this.bytes += body.length;
    // An event starts the body or follows '[', ',' or a newline; `{"id":"` after ':' is a transaction block.
    for (let at = body.indexOf(ID_MARK); at !== -1; at = body.indexOf(ID_MARK, at + ID_MARK.length)) {
      const before = at === 0 ? 0x5b : (body[at - 1] as number);
      if (before === 0x5b || before === 0x2c || before === 0x0a) this.events++;
    }
  }

  reset(): void {
    this.events = 0;
    this.requests = 0;
    this.bytes = 0;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

export const httpTarget: SinkTarget<CountingEndpoint> = {
  name: 'http',
  available: () => true,
  start: () => CountingEndpoint.start(),
  sinkArgs: (endpoint) => ['--sink', 'http', '--http-url', endpoint.url],
  delivered: (endpoint) =>
    Promise.resolve({ events: endpoint.events, bytes: endpoint.bytes, note: `${endpoint.requests} requests` }),
  async reference(endpoint, events, eventBytes) {
    const perRequest = Math.max(1, Math.round(events / Math.max(1, endpoint.requests)));
    endpoint.reset();
    const started = performance.now();
    await new Promise<void>((resolve, reject) => {
      const child = spawn(
        process.execPath,
        [
          '--import',
          'tsx',
          path.join(HERE, 'http-reference.ts'),
          endpoint.url,
          `${events}`,
          `${perRequest}`,
          `${eventBytes}`,
        ],
        { stdio: ['ignore', 'inherit', 'inherit'] },
      );
      child.once('error', reject);
      child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`http reference exited with ${code}`))));
    });
    const ms = performance.now() - started;
    if (endpoint.events !== events)
      throw new Error(`http reference: the endpoint counted ${endpoint.events} events, expected ${events}`);
    return { ms, what: `node:http client, ${perRequest} events of ${eventBytes} bytes per request, 1 in flight` };
  },
  stop: (endpoint) => endpoint.stop(),
};
