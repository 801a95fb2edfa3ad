/**
 * The stream the events go to, created or checked at start (before the slot is used): a missing
 * stream is created when sink.stream.create allows it; an existing one must cover every subject the
 * sink publishes on (else one CONFIG_INVALID line naming the subject and the stream's subjects); a
 * storage or replica count other than configured, and a duplicate window shorter than a restart
 * may take, are warnings (the window is what turns a redelivery after a crash into a duplicate that
 * JetStream drops).
 */
import { StorageType, type JetStreamManager, type StreamInfo } from '@nats-io/jetstream';
import { CdcError } from '../../core/errors.ts';
import type { Logger } from '../../core/log.ts';
import { natsError } from './client.ts';
import type { NatsOptions } from './options.ts';
import { filterMatches } from './subjects.ts';

/** A window shorter than this is a warning: a restart (a crash, a rollout) may take longer. */
export const SHORT_DUPLICATE_WINDOW_MS = 60_000;

const NS_PER_MS = 1_000_000;

/** The stream's name and subject filters, as found or created. */
export interface StreamFacts {
  readonly name: string;
  readonly subjects: readonly string[];
}

export interface StreamSettings {
  readonly name: string;
  /** undefined: the template cannot give a default (sink.stream.subjects must be set to create it). */
  readonly subjects: readonly string[] | undefined;
}

/** The stream's info, or undefined when it does not exist. */
async function infoOf(jsm: JetStreamManager, name: string, options: NatsOptions): Promise<StreamInfo | undefined> {
  try {
    return await jsm.streams.info(name);
  } catch (error) {
    if (error instanceof Error && error.name === 'StreamNotFoundError') return undefined;
    throw natsError(error, `reading NATS stream ${name}`, options);
  }
}

/** Creates the stream when missing (and allowed), checks its settings; resolves with its subjects. */
export async function ensureStream(
  jsm: JetStreamManager,
  options: NatsOptions,
  settings: StreamSettings,
  log: Logger | undefined,
): Promise<StreamFacts> {
  const stream = options.stream;
  const existing = await infoOf(jsm, settings.name, options);
  if (existing === undefined) {
    if (!stream.create)
      throw new CdcError(
        'CONFIG_INVALID',
        `NATS stream ${settings.name} does not exist and sink.stream.create is off`,
        {
          hint: 'create the stream (subjects covering the topics), or set sink.stream.create: true',
        },
      );
    if (settings.subjects === undefined)
      throw new CdcError(
        'CONFIG_INVALID',
        `sink.subject ${options.subject} has text after {topic}, so pgcdc cannot choose the subjects of ` +
          `stream ${settings.name}`,
        { hint: 'set sink.stream.subjects' },
      );
    try {
      const created = await jsm.streams.add({
        name: settings.name,
        subjects: [...settings.subjects],
        storage: stream.storage === 'memory' ? StorageType.Memory : StorageType.File,
        num_replicas: stream.replicas,
        duplicate_window: stream.duplicateWindowMs * NS_PER_MS,
      });
      log?.info({ stream: settings.name, subjects: created.config.subjects }, 'created the NATS stream');
      return { name: settings.name, subjects: created.config.subjects ?? [] };
    } catch (error) {
      throw natsError(error, `creating NATS stream ${settings.name}`, options);
    }
  }
  const config = existing.config;
  const windowMs = Math.round((config.duplicate_window ?? 0) / NS_PER_MS);
  if (windowMs < SHORT_DUPLICATE_WINDOW_MS)
    log?.warn(
      { stream: settings.name, duplicateWindowMs: windowMs },
      `NATS stream ${settings.name} has a duplicate window of ${windowMs / 1000} s: events sent again after a ` +
        'restart that takes longer are stored twice (raise duplicate_window to a few minutes)',
    );
  if (config.storage !== (stream.storage === 'memory' ? StorageType.Memory : StorageType.File))
    log?.warn(
      { stream: settings.name, storage: config.storage, configured: stream.storage },
      `NATS stream ${settings.name} uses ${config.storage} storage, not ${stream.storage}` +
        (config.storage === StorageType.Memory ? ': its events are lost when the server restarts' : ''),
    );
  if (config.num_replicas !== stream.replicas)
    log?.warn(
      { stream: settings.name, replicas: config.num_replicas, configured: stream.replicas },
      `NATS stream ${settings.name} has ${config.num_replicas} replicas, not ${stream.replicas}`,
    );
  return { name: settings.name, subjects: config.subjects ?? [] };
}

/** Throws CONFIG_INVALID naming the first of `subjects` the stream does not cover. */
export function requireCovered(
  facts: StreamFacts,
  subjects: readonly string[],
  code: 'CONFIG_INVALID' | 'SINK_FAILED',
): void {
  const uncovered = subjects.find((subject) => !facts.subjects.some((filter) => filterMatches(filter, subject)));
  if (uncovered === undefined) return;
  throw new CdcError(
    code,
    `NATS stream ${facts.name} does not take subject ${uncovered}: its subjects are ` +
      (facts.subjects.length === 0 ? '(none)' : facts.subjects.join(', ')),
    {
      retryable: false,
      hint:
        `add ${uncovered} (or a wildcard such as ${uncovered.split('.')[0] ?? uncovered}.>) to the stream's ` +
        'subjects, or point sink.stream.name at the stream that takes it',
    },
  );
}
