/**
 * NATS names derived from pgcdc's: the subject of a topic, the default stream name and subjects, the
 * checkpoint's KV key, and whether a stream's subject filters cover a subject.
 *
 * A NATS subject is tokens separated by dots; a token is not empty and holds no whitespace, and `*`
 * and `>` are wildcards. A topic (`<prefix>.<schema>.<table>`) keeps its dots; every character
 * other than ASCII letters, digits, `_`, `-` and `$` becomes `_` (as Debezium's topic-name sanitizer
 * does), and an empty token becomes `_`: `shop.public.Order Items` is published on
 * `shop.public.Order_Items`.
 */
import type { NatsOptions } from './options.ts';

/** `topic` as dot-separated subject tokens (see the module comment). */
export function subjectOfTopic(topic: string): string {
  return topic
    .replace(/[^A-Za-z0-9_\-$.]/g, '_')
    .split('.')
    .map((token) => (token === '' ? '_' : token))
    .join('.');
}

/** The subject `template` (sink.subject) gives `topic`. */
export function subjectFor(template: string, topic: string): string {
  return template.replace('{topic}', subjectOfTopic(topic));
}

/** A stream name from the topic prefix: `pgcdc-<prefix>`, characters a stream name cannot hold as `_`. */
export function defaultStreamName(topicPrefix: string): string {
  return `pgcdc-${topicPrefix.replace(/[^A-Za-z0-9_-]/g, '_')}`;
}

/**
 * The stream's subjects when sink.stream.subjects is not set: every subject under the topic prefix
 * (`<prefix>.>` after the template). Undefined when the template has text after `{topic}`, which no
 * single filter can express: the user names the subjects then.
 */
export function defaultStreamSubjects(options: NatsOptions, topicPrefix: string): string[] | undefined {
  if (!options.subject.endsWith('{topic}')) return undefined;
  return [`${options.subject.replace('{topic}', subjectOfTopic(topicPrefix))}.>`];
}

/** Whether the subject filter `filter` (with `*` and `>` wildcards) matches `subject`. */
export function filterMatches(filter: string, subject: string): boolean {
  const want = filter.split('.');
  const have = subject.split('.');
  for (let i = 0; i < want.length; i++) {
    const token = want[i];
    if (token === '>') return have.length > i;
    if (i >= have.length) return false;
    if (token !== '*' && token !== have[i]) return false;
  }
  return want.length === have.length;
}

/**
 * The checkpoint's key in the KV bucket: `<database>.<slot>`, each character a KV key cannot hold
 * written as `=XX` (its UTF-8 bytes in hex), so distinct captures never share a key.
 */
export function checkpointKey(database: string, slot: string): string {
  const escape = (text: string): string =>
    [...Buffer.from(text, 'utf8')]
      .map((byte) =>
        /[A-Za-z0-9_-]/.test(String.fromCharCode(byte))
          ? String.fromCharCode(byte)
          : `=${byte.toString(16).padStart(2, '0')}`,
      )
      .join('');
  return `${escape(database)}.${escape(slot)}`;
}
