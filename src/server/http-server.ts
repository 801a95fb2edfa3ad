/**
 * `pgcdc run --http host:port`: a node:http server beside the capture, for people (the dashboard at
 * `/`) and machines (`/metrics`, `/healthz`, `/readyz`, `/status`). It observes and never takes part:
 * a request that fails gets its JSON error and the capture goes on; its work is done per request and
 * per history step, never per change event.
 *
 * Security: loopback by default; listening elsewhere needs a bearer token (http.tokenFile, tokenEnv or
 * PGCDC_HTTP_TOKEN), refused at start otherwise. With a token, every route but `/healthz` and the
 * dashboard's static files needs `Authorization: Bearer <token>` (the page asks for it). Without
 * one, the Host header must name a loopback address, so a web page cannot reach the server through a
 * DNS name rebound to 127.0.0.1. A POST must be `application/json`, which a cross-site form cannot
 * send without a CORS preflight that this server never grants.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { CdcError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { AlertState, HealthListener, SlotSample } from '../health/types.ts';
import { tryParseLsn } from '../protocol/lsn.ts';
import { History, type HistoryPoint } from './history.ts';
import { isLoopback, parseListen, type HttpSettings } from './options.ts';
import { ReadinessWatch } from './readiness.ts';
import * as routes from './routes.ts';
import type { HealthReport, Reply, RouteContext } from './routes.ts';
import type { ServerSources } from './sources.ts';
import { loadDashboard, type DashboardFiles } from './static-files.ts';
import { bearerMatches, resolveToken } from './token.ts';

/** Largest request body read (a snapshot request of a thousand tables fits well). */
export const MAX_BODY_BYTES = 64 * 1024;

export interface HttpServerOptions {
  readonly settings: HttpSettings;
  readonly sources: ServerSources;
  readonly log: Logger;
  /** The standby status update interval (`statusIntervalMs`): `/readyz` expects updates at that pace. */
  readonly statusIntervalMs: number;
  /** One history point every this many ms (default 5000). */
  readonly historyStepMs?: number;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** The running server; it hears every health sample (pass it to the health monitor as a listener). */
export class HttpStatusServer implements HealthListener {
  private latestHealth: HealthReport | undefined;
  private readonly context: RouteContext;
  private readonly history: History;
  private timer: NodeJS.Timeout | undefined;
  /** Unexpected failures already logged (each message once, so a repeated bad request cannot flood the log). */
  private readonly logged = new Set<string>();

  private constructor(
    private readonly server: Server,
    private readonly options: HttpServerOptions,
    private readonly token: string | undefined,
    private readonly dashboard: DashboardFiles,
    /** The address actually bound (port 0 picks a free one). */
    readonly address: { readonly host: string; readonly port: number },
  ) {
    this.history = new History(options.historyStepMs ?? 5_000);
    const readiness = new ReadinessWatch(options.settings.stallAfterMs, options.statusIntervalMs);
    this.context = {
      sources: options.sources,
      history: this.history,
      readiness,
      health: () => this.latestHealth,
      now: () => this.point(),
      showValues: options.settings.showValues,
    };
    this.sample();
    this.timer = setInterval(() => this.sample(), this.history.stepMs);
    this.timer.unref();
  }

  /**
   * Listens on `settings.listen`. Throws CONFIG_INVALID (exit 2) with one line when the address is
   * not loopback and no token is configured, when the token's file or variable is unusable, or when
   * the address cannot be bound (in use, not this machine's, needing privileges).
   */
  static async start(options: HttpServerOptions): Promise<HttpStatusServer> {
    const { settings } = options;
    const listen = parseListen(settings.listen);
    if (listen === undefined)
      throw new CdcError('CONFIG_INVALID', `http.listen ${JSON.stringify(settings.listen)} is not host:port`);
    const token = resolveToken(settings);
    if (token === undefined && !isLoopback(listen.host))
      throw new CdcError(
        'CONFIG_INVALID',
        `the HTTP server would listen on ${settings.listen}, which other machines may reach, without a token`,
        {
          hint:
            'give a bearer token (--http-token-file <file>, http.tokenEnv, or the PGCDC_HTTP_TOKEN variable), or ' +
            'listen on 127.0.0.1',
        },
      );
    const dashboard = await loadDashboard();
    // The server object exists once listening succeeded; a request before that cannot arrive.
    const made: { server?: HttpStatusServer } = {};
    const server = createServer((request, response) => {
      if (made.server === undefined) response.writeHead(503).end();
      else void made.server.handle(request, response);
    });
    // Bounds a client that never finishes its request (slow headers or body).
    server.requestTimeout = 15_000;
    server.headersTimeout = 10_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (error: NodeJS.ErrnoException) => reject(listenError(settings.listen, error)));
      server.listen({ host: listen.host, port: listen.port }, () => resolve());
    });
    server.on('error', (error) => options.log.warn({ error: error.message }, 'HTTP server error'));
    const bound = server.address();
    const port = typeof bound === 'object' && bound !== null ? bound.port : listen.port;
    const self = new HttpStatusServer(server, options, token, dashboard, { host: listen.host, port });
    made.server = self;
    options.log.info(
      { listen: `${listen.host}:${port}`, token: token !== undefined },
      `HTTP server on http://${listen.host.includes(':') ? `[${listen.host}]` : listen.host}:${port}/ ` +
        (token === undefined ? '(loopback, no token)' : '(bearer token required)'),
    );
    return self;
  }

  /** HealthListener: keeps the latest sample for `/status` and the history. Never throws. */
  health(sample: SlotSample, alerts: readonly AlertState[]): void {
    this.latestHealth = { sample, alerts };
  }

  /** Stops listening and closes open connections. */
  async close(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  /** The point of this moment, from the status and the latest health sample. */
  private point(): HistoryPoint {
    const status = this.options.sources.status();
    this.context.readiness.observe(status);
    const acked = status?.ackedLsn === undefined ? undefined : tryParseLsn(status.ackedLsn);
    const received = status?.receivedLsn === undefined ? undefined : tryParseLsn(status.receivedLsn);
    const sample = this.latestHealth?.sample;
    return {
      at: Date.now(),
      events: status?.eventsDelivered ?? 0,
      unackedBytes: acked !== undefined && received !== undefined ? Math.max(0, received - acked) : null,
      lagBytes: sample?.lagBytes ?? null,
      lagSeconds: sample?.lagSeconds ?? null,
      retainedWalBytes: sample?.retainedWalBytes ?? null,
    };
  }

  /** Adds a history point. */
  private sample(): void {
    try {
      this.history.add(this.point());
    } catch (error) {
      this.logOnce('history', routes.internalError(error));
    }
  }

  private logOnce(where: string, message: string): void {
    const key = `${where}: ${message}`;
    if (this.logged.has(key) || this.logged.size > 100) return;
    this.logged.add(key);
    this.options.log.warn({ where }, `HTTP server: ${message} (the capture goes on; logged once)`);
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    let reply: Reply;
    try {
      reply = await this.route(request);
    } catch (error) {
      if (error instanceof HttpError) reply = routes.failure(error.status, error.message);
      else {
        const message = routes.internalError(error);
        this.logOnce(`${request.method ?? '?'} ${(request.url ?? '').split('?')[0] ?? ''}`, message);
        reply = routes.failure(500, `internal error: ${message}`);
      }
    }
    try {
      send(response, reply, reply.status === 413);
    } catch (error) {
      this.logOnce('reply', routes.internalError(error));
      response.destroy();
    }
  }

  private async route(request: IncomingMessage): Promise<Reply> {
    const method = request.method ?? 'GET';
    const url = new URL(request.url ?? '/', 'http://pgcdc.invalid');
    const path = url.pathname;
    if (path === '/healthz') return only(method, 'GET', () => routes.healthz());
    if (this.token === undefined && !isLoopbackHost(request.headers.host))
      throw new HttpError(
        403,
        'this server answers only requests addressed to a loopback host (127.0.0.1, localhost, [::1]); ' +
          'give it a token to serve other names',
      );
    const file = this.dashboard.get(path);
    if (file !== undefined)
      return only(method, 'GET', () => ({ kind: 'text', status: 200, contentType: file.contentType, body: file.body }));
    if (this.token !== undefined && !bearerMatches(this.token, request.headers.authorization))
      throw new HttpError(401, 'missing or wrong bearer token: send the header Authorization: Bearer <token>');
    const context = this.context;
    switch (path) {
      case '/readyz':
        return only(method, 'GET', () => routes.readyz(context));
      case '/status':
        return only(method, 'GET', () => routes.status(context));
      case '/metrics':
        return only(method, 'GET', () => routes.metrics(context));
      case '/api/history':
        return only(method, 'GET', () => routes.history(context));
      case '/api/events':
        return only(method, 'GET', () => routes.events(context));
      case '/api/tables':
        return only(method, 'GET', () => routes.tables(context));
      case '/api/snapshot':
        return only(method, 'POST', async () => routes.requestSnapshot(context, await readJson(request)));
    }
    if (path.startsWith('/api/snapshot/'))
      return only(method, 'GET', () => routes.snapshotRequestState(context, path.slice('/api/snapshot/'.length)));
    throw new HttpError(404, `no route ${method} ${path.slice(0, 100)}; see docs/operations.md for the routes`);
  }
}

/** The reply of `handler` when `method` is `allowed`, else 405. */
async function only(method: string, allowed: string, handler: () => Reply | Promise<Reply>): Promise<Reply> {
  if (method !== allowed && !(allowed === 'GET' && method === 'HEAD'))
    throw new HttpError(405, `method ${method.slice(0, 10)} is not allowed here; use ${allowed}`);
  return handler();
}

function isLoopbackHost(header: string | undefined): boolean {
  if (header === undefined) return false;
  const host = header.startsWith('[') ? header.slice(1, header.indexOf(']')) : (header.split(':')[0] ?? '');
  return isLoopback(host);
}

/** The request's JSON body: 415 when not JSON, 413 past MAX_BODY_BYTES, 400 when malformed. */
async function readJson(request: IncomingMessage): Promise<unknown> {
  const type = (request.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (type !== 'application/json')
    throw new HttpError(415, 'the body must be JSON: send the header Content-Type: application/json');
  const declared = Number(request.headers['content-length'] ?? '0');
  if (declared > MAX_BODY_BYTES) throw new HttpError(413, `the body is over ${MAX_BODY_BYTES} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, `the body is over ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch {
    throw new HttpError(400, 'the body is not valid JSON');
  }
}

const COMMON_HEADERS = {
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'content-security-policy': "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
};

function send(response: ServerResponse, reply: Reply, closeConnection: boolean): void {
  const body = reply.kind === 'json' ? `${JSON.stringify(reply.body)}\n` : reply.body;
  const contentType = reply.kind === 'json' ? 'application/json; charset=utf-8' : reply.contentType;
  const headers: Record<string, string | number> = {
    ...COMMON_HEADERS,
    'content-type': contentType,
    'content-length': Buffer.byteLength(body),
  };
  if (reply.status === 401) headers['www-authenticate'] = 'Bearer realm="pgcdc"';
  if (closeConnection) headers.connection = 'close';
  response.writeHead(reply.status, headers);
  response.end(response.req.method === 'HEAD' ? undefined : body);
}

function listenError(listen: string, error: NodeJS.ErrnoException): CdcError {
  const why =
    error.code === 'EADDRINUSE'
      ? 'the port is in use by another process'
      : error.code === 'EADDRNOTAVAIL'
        ? 'that address is not one of this machine'
        : error.code === 'EACCES'
          ? 'permission denied (ports below 1024 need privileges)'
          : (error.code ?? error.message);
  return new CdcError('CONFIG_INVALID', `cannot listen on ${listen} for the HTTP server: ${why}`, {
    hint: 'choose another address with --http host:port (http.listen)',
    cause: error,
  });
}
