/**
 * A real webhook receiver for the HTTP sink tests: a node:http server in the test process, on a free
 * port of 127.0.0.1, that logs every request (headers, raw body, what it answered) and answers as the
 * test says: accept (200), a status with a body and Retry-After, or hold (never answer, as an
 * endpoint that times out does). A request is logged before its 2xx goes out, so a write that
 * resolved is always in the log. With a secret it checks each request's X-Pgcdc-Signature; it
 * checks each request's Idempotency-Key against the event ids in the body.
 *
 * With `tls` it serves https (node:https) with a certificate from test/harness/pki.ts, and can
 * require a client certificate signed by a given CA (mutual TLS): a client without one is refused
 * in the handshake and never reaches the log; its handshake error is kept in `tlsClientErrors`.
 *
 * The server is stopped with the test file (or by `stop`).
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { DeliveredEvent } from './cli.ts';
import { onTeardown } from './pg.ts';
import { verifySignature } from '../../src/sinks/http/signing.ts';

export type Answer =
  | { readonly kind: 'accept' }
  | { readonly kind: 'status'; readonly status: number; readonly body?: string; readonly retryAfter?: string }
  | { readonly kind: 'hold' };

export interface LoggedRequest {
  /** Arrival, epoch ms. */
  readonly at: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
  /** What the server answered; 0 while held, and for good when the client gave up first. */
  status: number;
  /** The signature verified with the secret (undefined without a secret). */
  readonly signatureValid: boolean | undefined;
  /** The CN of the client certificate the connection presented (https with a client CA only). */
  readonly clientCertificate: string | undefined;
}

export interface EndpointOptions {
  /** The signing secret the receiver verifies with. */
  readonly secret?: string;
  /** Serve https with this certificate and key (PEM files). */
  readonly tls?: {
    readonly cert: string;
    readonly key: string;
    /** Require a client certificate signed by this CA (PEM file): mutual TLS. */
    readonly clientCa?: string;
  };
}

const ACCEPT: Answer = { kind: 'accept' };

export class TestEndpoint {
  readonly log: LoggedRequest[] = [];
  /** How the next requests are answered (a rule below may override it). */
  answer: Answer = ACCEPT;
  private readonly rules: { matches: (body: Buffer) => boolean; answer: Answer }[] = [];
  private readonly held = new Map<http.ServerResponse, LoggedRequest>();
  /** Requests being received or answered now, and the most at once. */
  private inFlight = 0;
  maxInFlight = 0;
  private stopped: Promise<void> | undefined;
  /** The codes of the TLS handshakes the server refused or failed (https only), in order. */
  readonly tlsClientErrors: string[] = [];

  private constructor(
    private readonly server: http.Server | https.Server,
    readonly url: string,
    private readonly options: EndpointOptions,
  ) {}

  static async start(options: EndpointOptions = {}): Promise<TestEndpoint> {
    const tls = options.tls;
    const server =
      tls === undefined
        ? http.createServer({ keepAlive: true })
        : https.createServer({
            keepAlive: true,
            cert: readFileSync(tls.cert),
            key: readFileSync(tls.key),
            ...(tls.clientCa === undefined
              ? {}
              : { ca: readFileSync(tls.clientCa), requestCert: true, rejectUnauthorized: true }),
          });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const scheme = tls === undefined ? 'http' : 'https';
    const endpoint = new TestEndpoint(server, `${scheme}://127.0.0.1:${port}/hooks/pgcdc?token=t0k3n`, options);
    server.on('request', (request, response) => endpoint.handle(request, response));
    server.on('tlsClientError', (error: NodeJS.ErrnoException) =>
      endpoint.tlsClientErrors.push(error.code ?? error.message),
    );
    onTeardown(() => endpoint.stop());
    return endpoint;
  }

  /** Bodies that `matches` get `answer`, whatever `this.answer` says; returns a function removing the rule. */
  answerWhen(matches: (body: Buffer) => boolean, answer: Answer): () => void {
    const rule = { matches, answer };
    this.rules.push(rule);
    return () => {
      const at = this.rules.indexOf(rule);
      if (at >= 0) this.rules.splice(at, 1);
    };
  }

  /** The requests answered 2xx, in arrival order. */
  accepted(): LoggedRequest[] {
    return this.log.filter((r) => r.status >= 200 && r.status < 300);
  }

  /** Every event line of the accepted requests, in arrival order. */
  acceptedLines(): string[] {
    const lines: string[] = [];
    for (const request of this.accepted()) for (const line of linesOf(request)) lines.push(line);
    return lines;
  }

  /** The accepted events, parsed (for replay). */
  acceptedEvents(): DeliveredEvent[] {
    return this.acceptedLines().map((line) => JSON.parse(line) as DeliveredEvent);
  }

  /** Requests now held without an answer. */
  get heldCount(): number {
    return this.held.size;
  }

  stop(): Promise<void> {
    this.stopped ??= new Promise<void>((resolve) => {
      for (const response of this.held.keys()) response.destroy();
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    return this.stopped;
  }

  private handle(request: http.IncomingMessage, response: http.ServerResponse): void {
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    response.on('close', () => this.inFlight--);
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const body = Buffer.concat(chunks);
      const signatureHeader = request.headers['x-pgcdc-signature'];
      const entry: LoggedRequest = {
        at: Date.now(),
        headers: request.headers,
        body,
        status: 0,
        signatureValid:
          this.options.secret === undefined
            ? undefined
            : verifySignature(
                this.options.secret,
                body,
                typeof signatureHeader === 'string' ? signatureHeader : undefined,
              ),
        clientCertificate: clientCertificateOf(request),
      };
      this.log.push(entry);
      const answer = this.rules.find((rule) => rule.matches(body))?.answer ?? this.answer;
      if (answer.kind === 'hold') {
        this.held.set(response, entry);
        response.on('close', () => this.held.delete(response));
        return;
      }
      this.respond(response, entry, answer);
    });
  }

  /** Accepts every request held now (those whose client has not given up). */
  release(): void {
    for (const [response, entry] of this.held) {
      this.held.delete(response);
      this.respond(response, entry, ACCEPT);
    }
  }

  private respond(response: http.ServerResponse, entry: LoggedRequest, answer: Answer): void {
    const status = answer.kind === 'status' ? answer.status : 200;
    // Logged as answered before the answer goes out: a client that saw a 2xx finds its request here.
    entry.status = status;
    const headers: http.OutgoingHttpHeaders = { 'Content-Type': 'text/plain' };
    if (answer.kind === 'status' && answer.retryAfter !== undefined) headers['Retry-After'] = answer.retryAfter;
    response.writeHead(status, headers);
    response.end(answer.kind === 'status' ? (answer.body ?? '') : 'ok');
  }
}

/** The CN of the verified client certificate of the request's connection, if it has one. */
function clientCertificateOf(request: http.IncomingMessage): string | undefined {
  const socket = request.socket;
  if (!(socket instanceof TLSSocket) || !socket.authorized) return undefined;
  const subject = socket.getPeerCertificate().subject as { CN?: string } | undefined;
  return subject?.CN;
}

/** The event lines of a request's body (json-array or ndjson, by its Content-Type), each as compact JSON. */
export function linesOf(request: LoggedRequest): string[] {
  const text = request.body.toString('utf8');
  if (request.headers['content-type'] === 'application/x-ndjson') {
    const lines = text.split('\n');
    if (lines.at(-1) === '') lines.pop();
    return lines;
  }
  return (JSON.parse(text) as unknown[]).map((event) => JSON.stringify(event));
}

/** The id of an event line (every pgcdc event starts with `{"id":"...`). */
export function idOf(line: string): string {
  return line.slice(7, line.indexOf('"', 7));
}

/** The request's Idempotency-Key is `<first event id>..<last event id>` and X-Pgcdc-Events its count. */
export function keyMatchesBody(request: LoggedRequest): boolean {
  const lines = linesOf(request);
  const expected = `${idOf(lines[0] ?? '')}..${idOf(lines.at(-1) ?? '')}`;
  return request.headers['idempotency-key'] === expected && request.headers['x-pgcdc-events'] === String(lines.length);
}
