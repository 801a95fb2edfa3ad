/**
 * The alert webhook: every alert state change POSTed as JSON to `alerts.webhook.url`, in order, with
 * `Authorization: Bearer <token>` when a token file or variable is configured. Each POST has
 * `timeoutMs`; a failed one (no answer, or a status outside 2xx) is tried again up to ATTEMPTS times
 * with a doubling delay. Deliveries run in the background, one at a time: sampling never waits for
 * them. A delivery that fails is logged once (a warning); further failures stay quiet until one
 * succeeds again (logged at info).
 */
import { readFile } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { CdcError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { AlertsConfig } from './alerts-config.ts';

export type WebhookConfig = NonNullable<AlertsConfig['webhook']>;

/** Tries per state change, and the first delay between them (doubled each time). */
const ATTEMPTS = 4;
const FIRST_RETRY_MS = 500;
/** Pending deliveries kept while the receiver is down; the oldest go first beyond this. */
const QUEUE_LIMIT = 100;

/** The bearer token of `config`, or undefined without one. Throws CONFIG_INVALID when it cannot be read. */
export async function webhookToken(
  config: WebhookConfig,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string | undefined> {
  if (config.tokenEnv !== undefined) {
    const value = env[config.tokenEnv];
    if (value === undefined || value === '')
      throw new CdcError('CONFIG_INVALID', `alerts.webhook.tokenEnv: the variable ${config.tokenEnv} is not set`, {
        hint: `export ${config.tokenEnv}=<token> before starting pgcdc, or remove alerts.webhook.tokenEnv`,
      });
    return value.trim();
  }
  if (config.tokenFile === undefined) return undefined;
  let text: string;
  try {
    text = await readFile(config.tokenFile, 'utf8');
  } catch (cause) {
    throw new CdcError('CONFIG_INVALID', `alerts.webhook.tokenFile: cannot read ${config.tokenFile}`, {
      cause,
      hint: 'give a readable file whose first line is the token',
    });
  }
  const token = text.split('\n')[0]?.trim() ?? '';
  if (token === '')
    throw new CdcError('CONFIG_INVALID', `alerts.webhook.tokenFile: ${config.tokenFile} is empty`, {
      hint: 'its first line must be the token',
    });
  return token;
}

/** Where the webhook posts, for logs: scheme, host and path, never a query string or credentials. */
export function describeWebhook(url: string): string {
  const parsed = new URL(url);
  return `${parsed.protocol}//${parsed.host}${parsed.pathname}`;
}

export class AlertWebhook {
  private readonly queue: string[] = [];
  private running: Promise<void> | undefined;
  private failing = false;
  private closed = false;

  constructor(
    private readonly config: WebhookConfig,
    private readonly token: string | undefined,
    private readonly log: Logger,
  ) {}

  /** Queues `payload` for delivery; returns at once. */
  notify(payload: object): void {
    if (this.closed) return;
    this.queue.push(JSON.stringify(payload));
    if (this.queue.length > QUEUE_LIMIT) this.queue.shift();
    this.running ??= this.drain().finally(() => (this.running = undefined));
  }

  /** Stops retrying; gives what is being sent at most one timeout to finish. */
  async close(): Promise<void> {
    this.closed = true;
    const running = this.running;
    if (running !== undefined) await Promise.race([running, delay(this.config.timeoutMs, undefined, { ref: false })]);
  }

  private async drain(): Promise<void> {
    for (let body = this.queue.shift(); body !== undefined; body = this.queue.shift()) await this.deliver(body);
  }

  private async deliver(body: string): Promise<void> {
    let reason = '';
    for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
      if (attempt > 1) {
        if (this.closed) break;
        await delay(FIRST_RETRY_MS * 2 ** (attempt - 2), undefined, { ref: false });
      }
      try {
        const response = await fetch(this.config.url, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            ...(this.token === undefined ? {} : { authorization: `Bearer ${this.token}` }),
          },
          body,
          signal: AbortSignal.timeout(this.config.timeoutMs),
        });
        await response.body?.cancel().catch(() => undefined);
        if (response.ok) {
          if (this.failing)
            this.log.info({ webhook: describeWebhook(this.config.url) }, 'alert webhook delivers again');
          this.failing = false;
          return;
        }
        reason = `HTTP ${response.status}`;
      } catch (error) {
        reason =
          error instanceof Error
            ? error.name === 'TimeoutError'
              ? 'no answer in timeoutMs'
              : error.message
            : String(error);
      }
    }
    if (!this.failing)
      this.log.warn(
        { webhook: describeWebhook(this.config.url), reason, attempts: ATTEMPTS },
        `alert webhook failed (${reason}) after ${ATTEMPTS} attempts: that state change was not delivered; ` +
          'the capture goes on (further failures are not logged until it works again)',
      );
    this.failing = true;
  }
}
