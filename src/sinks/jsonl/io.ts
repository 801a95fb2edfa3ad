/**
 * File and error helpers of the JSONL sink (jsonl.ts): reading what a cut removes, full positional
 * writes, and turning file system failures into the sink's errors.
 */
import { createReadStream } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { CdcError } from '../../core/errors.ts';
import { isLocalIoFailure, localIoError } from '../../core/local-io.ts';

/** The lines between byte `from` and `to` of a file: whole events, and whether a torn line ends it. */
export async function countCut(file: string, from: number, to: number): Promise<{ events: number; tornLine: boolean }> {
  if (to <= from) return { events: 0, tornLine: false };
  let events = 0;
  let last = 0x0a;
  // Read in chunks: what is cut may be one huge transaction's events.
  for await (const chunk of createReadStream(file, {
    start: from,
    end: to - 1,
    highWaterMark: 1 << 20,
  }) as AsyncIterable<Buffer>) {
    for (let i = chunk.indexOf(0x0a); i !== -1; i = chunk.indexOf(0x0a, i + 1)) events++;
    if (chunk.length > 0) last = chunk[chunk.length - 1] ?? last;
  }
  return { events, tornLine: last !== 0x0a };
}

/** pwrite until every byte is written: a regular file may take a short write (e.g. near ENOSPC). */
export async function writeFully(handle: FileHandle, data: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await handle.write(data, done, data.length - done, position + done);
    if (bytesWritten === 0) throw new CdcError('SINK_FAILED', 'the file system accepted no bytes', { retryable: true });
    done += bytesWritten;
  }
}

export function queuedBehindFailure(dir: string, cause: unknown): CdcError {
  return new CdcError(
    'SINK_FAILED',
    `an earlier write to ${dir} failed, so the writes queued behind it are not written`,
    {
      retryable: cause instanceof CdcError && cause.retryable,
      cause,
    },
  );
}

export function firstRejection(results: readonly PromiseSettledResult<unknown>[]): unknown {
  for (const result of results)
    if (result.status === 'rejected') return (result.reason as unknown) ?? new Error('unknown failure');
  return undefined;
}

export function errnoOf(error: unknown): string | undefined {
  if (error instanceof Error && 'code' in error && typeof error.code === 'string') return error.code;
  return undefined;
}

/** Failures that may pass without the user changing anything. */
const TRANSIENT = new Set(['ENOSPC', 'EDQUOT', 'EMFILE', 'ENFILE', 'EAGAIN', 'EINTR', 'EBUSY', 'ETIMEDOUT']);

/** `what` + `dir` says what failed where; a full, read-only or failing disk is LOCAL_IO (core/local-io.ts). */
export function fsError(error: unknown, what: string, dir: string, mayRetry = true): CdcError {
  if (error instanceof CdcError) return error;
  if (isLocalIoFailure(error)) return localIoError(error, what, dir, mayRetry);
  const code = errnoOf(error);
  const detail = error instanceof Error ? error.message : String(error);
  const hint = mayRetry ? undefined : 'restart pgcdc: on start the JSONL sink restores the last checkpointed state';
  return new CdcError('SINK_FAILED', `${what} ${dir}: ${detail}`, {
    retryable: mayRetry && code !== undefined && TRANSIENT.has(code),
    hint,
    cause: error,
  });
}
