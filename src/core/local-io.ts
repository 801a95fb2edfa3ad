/**
 * Local I/O failures: the disk pgcdc writes its offsets, lock and output to is full, over quota,
 * read-only, failing or not ours. They get their own code (LOCAL_IO, exit 1: a supervisor keeps
 * restarting, and pgcdc resumes from its last checkpoint once the cause is fixed) and one line
 * naming the path and the free space left on its file system.
 */
import { statfsSync } from 'node:fs';
import path from 'node:path';
import { CdcError } from './errors.ts';

/** errno codes that mean the local file system, not pgcdc or its input, is the problem. */
const LOCAL_IO_CODES: ReadonlySet<string> = new Set(['ENOSPC', 'EDQUOT', 'EIO', 'EROFS', 'EACCES', 'EPERM']);

export function errnoOf(error: unknown): string | undefined {
  if (error instanceof Error && 'code' in error && typeof error.code === 'string') return error.code;
  return undefined;
}

/** Whether `error` is a local I/O failure that `localIoError` describes. */
export function isLocalIoFailure(error: unknown): boolean {
  const code = errnoOf(error);
  return code !== undefined && LOCAL_IO_CODES.has(code);
}

/** Free space for an unprivileged writer on the file system holding `target` (its nearest existing ancestor). */
export function freeSpace(target: string): string {
  for (let current = path.resolve(target); ; current = path.dirname(current)) {
    try {
      const stats = statfsSync(current);
      return formatBytes(stats.bavail * stats.bsize);
    } catch {
      if (current === path.dirname(current)) return 'unknown';
    }
  }
}

function formatBytes(bytes: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} bytes` : `${value.toFixed(1)} ${units[unit]}`;
}

function hintFor(code: string | undefined, file: string): string {
  switch (code) {
    case 'ENOSPC':
    case 'EDQUOT':
      return (
        `free disk space on the file system of ` +
        `${file} (or raise the quota); restarted, pgcdc resumes from its last checkpoint`
      );
    case 'EROFS':
      return `the file system of ${file} is read-only: remount it read-write or choose another path`;
    case 'EACCES':
    case 'EPERM':
      return `give the user running pgcdc write access to ${file} and its directory`;
    default:
      return (
        `the disk reported an I/O error: check it (dmesg) before restarting pgcdc, which resumes from its ` +
        `last checkpoint`
      );
  }
}

/**
 * CdcError('LOCAL_IO') for a local I/O failure `cause` while doing `what` (e.g. "cannot store the
 * checkpoint in") on `file` (a file or a directory): one line with the path, the errno and the
 * free space there. Call only when `isLocalIoFailure(cause)`. `mayRetry` false: the same operation
 * cannot simply be tried again (the caller's state is unknown), whatever the cause.
 */
export function localIoError(cause: unknown, what: string, file: string, mayRetry = true): CdcError {
  const code = errnoOf(cause);
  const detail = cause instanceof Error ? cause.message : String(cause);
  return new CdcError('LOCAL_IO', `${what} ${file}: ${detail} (${freeSpace(file)} free on that file system)`, {
    retryable: mayRetry && (code === 'ENOSPC' || code === 'EDQUOT'),
    hint: hintFor(code, file),
    cause,
  });
}
