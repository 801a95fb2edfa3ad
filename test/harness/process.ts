/**
 * What a pgcdc child process used and said: peak memory, lines delivered, JSON log records.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';

/** A field of a running process's /proc status, in MB. */
async function statusMb(pid: number, field: 'VmHWM' | 'VmRSS'): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const match = new RegExp(`${field}:\\s+(\\d+) kB`).exec(status);
  return match ? Number(match[1]) / 1024 : NaN;
}

/** Peak resident set size of a running process, in MB (Linux VmHWM). */
export function peakRssMb(pid: number): Promise<number> {
  return statusMb(pid, 'VmHWM');
}

/** Resident set size of a running process now, in MB (Linux VmRSS). */
export function rssMb(pid: number): Promise<number> {
  return statusMb(pid, 'VmRSS');
}

/** Newline count over every file of `dir` (one per event for JSONL), without parsing. */
export async function countLines(dir: string): Promise<number> {
  let lines = 0;
  for (const file of await readdir(dir)) {
    const text = await readFile(path.join(dir, file));
    for (let i = text.indexOf(10); i !== -1; i = text.indexOf(10, i + 1)) lines++;
  }
  return lines;
}

/** One pino record from `--log-format json`. */
export type LogRecord = { msg: string } & Record<string, unknown>;

/** The JSON log records in a process's stderr (other lines, such as the final error line, skipped). */
export function logRecords(stderr: string): LogRecord[] {
  const records: LogRecord[] = [];
  for (const line of stderr.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const parsed = JSON.parse(line) as unknown;
      if (typeof parsed === 'object' && parsed !== null && 'msg' in parsed && typeof parsed.msg === 'string')
        records.push(parsed as LogRecord);
    } catch {
      // a line cut short by SIGKILL
    }
  }
  return records;
}
