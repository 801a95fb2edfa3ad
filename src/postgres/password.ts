/**
 * Where the source password comes from, in libpq's order: the connection settings (config
 * `password`/`passwordFile`, else the URL), then PGPASSWORD, then the password file (PGPASSFILE or
 * ~/.pgpass), read only when the server asks for a password, as libpq does.
 *
 * The password file follows libpq exactly: lines `host:port:database:user:password`, `*` matches
 * anything, `\:` and `\\` escape, `#` starts a comment line, the first matching line wins, and a
 * file that group or others can read is ignored (it must be 0600 or stricter).
 */
import { readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { CdcError } from '../core/errors.ts';

/** What a password-file line is matched against (the real server, never a tunnel's local end). */
export interface PasswordKey {
  host: string;
  port: number;
  database: string;
  user: string;
}

/** A password-file lookup: the password, or why there is none (to say in an error). */
export type PassfileResult = { password: string } | { password: undefined; reason: string };

/** libpq's pwdfMatchesString: the rest of the line after a field matching `token`, or undefined. */
function matchField(line: string, at: number, token: string): number | undefined {
  if (line[at] === '*' && line[at + 1] === ':') return at + 2;
  let i = at;
  let t = 0;
  while (i < line.length) {
    let escaped = false;
    if (line[i] === '\\') {
      i++;
      escaped = true;
    }
    if (!escaped && line[i] === ':' && t === token.length) return i + 1;
    if (t === token.length || line[i] !== token[t]) return undefined;
    i++;
    t++;
  }
  return undefined;
}

/** The password of the first line matching `key`, de-escaped; undefined when none matches. */
export function matchPassfile(text: string, key: PasswordKey): string | undefined {
  const want = [key.host, String(key.port), key.database, key.user];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '');
    if (line === '' || line.startsWith('#')) continue;
    let at: number | undefined = 0;
    for (const token of want) {
      at = matchField(line, at, token);
      if (at === undefined) break;
    }
    if (at === undefined) continue;
    let password = '';
    for (let i = at; i < line.length && line[i] !== ':'; i++) {
      if (line[i] === '\\' && i + 1 < line.length) i++;
      password += line[i];
    }
    return password;
  }
  return undefined;
}

/** PGPASSFILE, else ~/.pgpass. */
export function passfilePath(env: NodeJS.ProcessEnv): string {
  return env.PGPASSFILE !== undefined && env.PGPASSFILE !== ''
    ? env.PGPASSFILE
    : path.join(env.HOME ?? homedir(), '.pgpass');
}

/** Looks `key` up in the password file, applying libpq's plain-file and 0600 rules. */
export function passwordFromPassfile(key: PasswordKey, env: NodeJS.ProcessEnv = process.env): PassfileResult {
  const file = passfilePath(env);
  let mode: number;
  try {
    const info = statSync(file);
    if (!info.isFile())
      return { password: undefined, reason: `the password file ${file} is not a plain file, so it was ignored` };
    mode = info.mode;
  } catch {
    return { password: undefined, reason: `no password file at ${file}` };
  }
  if ((mode & 0o077) !== 0) {
    return {
      password: undefined,
      reason: `the password file ${file} was ignored because group or others can read it (run chmod 0600 ${file})`,
    };
  }
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return { password: undefined, reason: `the password file ${file} cannot be read` };
  }
  const password = matchPassfile(text, key);
  return password === undefined
    ? { password: undefined, reason: `no line of ${file} matches ${key.host}:${key.port}:${key.database}:${key.user}` }
    : { password };
}

/**
 * The contents of a password file given by the user (`--password-file`, `source.passwordFile`):
 * the first line, without its line ending. An unreadable or empty file is bad input.
 */
export function readSecretFile(file: string, what: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (cause) {
    throw new CdcError('CONFIG_INVALID', `cannot read ${what} ${file}`, {
      cause,
      hint: `check the path and permissions of ${what}`,
    });
  }
  const first = text.split(/\r?\n/)[0] ?? '';
  if (first === '')
    throw new CdcError('CONFIG_INVALID', `${what} ${file} is empty`, { hint: 'put the password on its first line' });
  return first;
}
