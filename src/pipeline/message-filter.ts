/**
 * Which logical decoding messages become events (`messages.include` / `messages.exclude`).
 *
 * Entries are exact prefixes, or globs where `*` matches any run of characters (`audit.*`,
 * `*-debug`); nothing else is special. A message passes when `include` is empty or one of its
 * entries matches, and no `exclude` entry matches. pgcdc's own prefix (`pgcdc...`) never passes,
 * whatever the lists say.
 */
import { RESERVED_MESSAGE_PREFIX } from '../envelope/message.ts';

function matcher(pattern: string): (prefix: string) => boolean {
  if (!pattern.includes('*')) return (prefix) => prefix === pattern;
  const source = pattern
    .split('*')
    .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
    .join('.*');
  const re = new RegExp(`^${source}$`, 's');
  return (prefix) => re.test(prefix);
}

export function messageFilter(include: readonly string[], exclude: readonly string[]): (prefix: string) => boolean {
  const included = include.map(matcher);
  const excluded = exclude.map(matcher);
  return (prefix) =>
    !prefix.startsWith(RESERVED_MESSAGE_PREFIX) &&
    (included.length === 0 || included.some((m) => m(prefix))) &&
    !excluded.some((m) => m(prefix));
}
