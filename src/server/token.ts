/**
 * The HTTP server's bearer token: read once at start from a file or the environment (never a flag
 * value, never the configuration), never logged, compared in constant time.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { CdcError } from '../core/errors.ts';
import { readSecret } from '../sinks/secrets.ts';
import { DEFAULT_TOKEN_ENV, type HttpSettings } from './options.ts';

/** Shortest token accepted: a guessable one protects nothing. */
const MIN_TOKEN_LENGTH = 16;

/**
 * The token from `http.tokenFile`, else `http.tokenEnv`, else PGCDC_HTTP_TOKEN when set; undefined
 * when none is configured. CONFIG_INVALID when the named file or variable is unreadable, empty or
 * too short.
 */
export function resolveToken(settings: HttpSettings, env: NodeJS.ProcessEnv = process.env): string | undefined {
  let token: string;
  if (settings.tokenFile !== undefined) token = readSecret({ file: settings.tokenFile }, 'http.tokenFile', true);
  else if (settings.tokenEnv !== undefined) token = readSecret({ env: settings.tokenEnv }, 'http.tokenEnv', true);
  else {
    const value = env[DEFAULT_TOKEN_ENV];
    if (value === undefined || value === '') return undefined;
    token = value;
  }
  token = token.trim();
  if (token.length < MIN_TOKEN_LENGTH)
    throw new CdcError(
      'CONFIG_INVALID',
      `the HTTP bearer token (${tokenOrigin(settings)}) has ${token.length} characters; at least ` +
        `${MIN_TOKEN_LENGTH} are required`,
      { hint: 'use a random token, e.g. openssl rand -hex 32' },
    );
  return token;
}

/** Where the token comes from, for messages (never the token). */
export function tokenOrigin(settings: HttpSettings): string {
  if (settings.tokenFile !== undefined) return `the file ${settings.tokenFile}`;
  if (settings.tokenEnv !== undefined) return `the environment variable ${settings.tokenEnv}`;
  return `the environment variable ${DEFAULT_TOKEN_ENV}`;
}

const digest = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();

/**
 * Whether the `Authorization` header carries `Bearer <expected>`. Both sides are hashed first, so
 * the comparison takes the same time whatever the lengths and wherever they differ.
 */
export function bearerMatches(expected: string, header: string | undefined): boolean {
  const match = /^Bearer[ ]+(\S+)\s*$/i.exec(header ?? '');
  const given = match?.[1] ?? '';
  return timingSafeEqual(digest(expected), digest(given)) && match !== null;
}
