/**
 * `pgcdc snapshot` requests: a mailbox directory next to the offsets file (`<offsets>.requests/`).
 * The CLI drops one JSON file per request (written whole, then renamed into place); the running
 * capture takes it at the next transaction boundary, stores it with the checkpoint (the request
 * id is remembered there, so it is never taken twice) and only then deletes the file. A request
 * made while no capture runs waits for the next start. Nothing here needs the signal table or any
 * write to the source.
 *
 * The capture also leaves the list of tables it captures there (`.captured`, with its pid), so
 * that `pgcdc snapshot` can refuse a request for another table before it is made.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { parseTableName } from '../selection/table-name.ts';
import type { TableName } from './initial-reader.ts';

export interface SnapshotRequest {
  readonly id: string;
  readonly tables: readonly TableName[];
}

const requestSchema = z.object({ tables: z.array(z.string().min(1)).min(1) });

export function requestsDir(offsetsPath: string): string {
  return `${path.resolve(offsetsPath)}.requests`;
}

/** Writes a request for `tables` (`schema.table` texts, validated); resolves with its id. */
export async function writeRequest(offsetsPath: string, tables: readonly string[]): Promise<string> {
  for (const t of tables) parseTableName(t);
  const dir = requestsDir(offsetsPath);
  await mkdir(dir, { recursive: true });
  const id = `${Date.now().toString(36)}-${randomBytes(5).toString('hex')}`;
  const temp = path.join(dir, `.${id}.tmp`);
  await writeFile(temp, `${JSON.stringify({ tables })}\n`, { mode: 0o600 });
  await rename(temp, path.join(dir, `${id}.json`));
  return id;
}

/** Whether the request file `id` is still waiting (not yet taken and stored). */
export async function requestPending(offsetsPath: string, id: string): Promise<boolean> {
  try {
    await readFile(path.join(requestsDir(offsetsPath), `${id}.json`));
    return true;
  } catch {
    return false;
  }
}

/** The waiting requests, oldest first; a malformed file is reported through `bad` and deleted. */
export async function readRequests(
  offsetsPath: string,
  bad: (file: string, reason: string) => void,
): Promise<SnapshotRequest[]> {
  const dir = requestsDir(offsetsPath);
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => n.endsWith('.json')).sort();
  } catch {
    return [];
  }
  const out: SnapshotRequest[] = [];
  for (const name of names) {
    const file = path.join(dir, name);
    try {
      const parsed = requestSchema.parse(JSON.parse(await readFile(file, 'utf8')));
      out.push({ id: name.slice(0, -'.json'.length), tables: parsed.tables.map(parseTableName) });
    } catch (error) {
      bad(file, error instanceof Error ? (error.message.split('\n')[0] ?? 'invalid') : 'invalid');
      await unlink(file).catch(() => undefined);
    }
  }
  return out;
}

export async function removeRequest(offsetsPath: string, id: string): Promise<void> {
  await unlink(path.join(requestsDir(offsetsPath), `${id}.json`)).catch(() => undefined);
}

/** The tables a running capture captures, as it wrote them at start. */
export interface CapturedTables {
  readonly pid: number;
  /** `schema.table` names. */
  readonly tables: readonly string[];
}

const capturedSchema = z.object({ pid: z.number().int(), tables: z.array(z.string()) });

function capturedFile(offsetsPath: string): string {
  return path.join(requestsDir(offsetsPath), '.captured');
}

/** Records the tables this process captures (replaced whole, so a reader never sees half of it). */
export async function writeCaptured(offsetsPath: string, tables: readonly string[]): Promise<void> {
  const dir = requestsDir(offsetsPath);
  await mkdir(dir, { recursive: true });
  const temp = path.join(dir, `.captured.${process.pid}.tmp`);
  await writeFile(temp, `${JSON.stringify({ pid: process.pid, tables })}\n`, { mode: 0o600 });
  await rename(temp, capturedFile(offsetsPath));
}

/** The list written by the last capture to start with this offsets file; undefined when none is readable. */
export async function readCaptured(offsetsPath: string): Promise<CapturedTables | undefined> {
  try {
    const parsed = capturedSchema.safeParse(JSON.parse(await readFile(capturedFile(offsetsPath), 'utf8')));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}
