/**
 * A single-writer lock file next to the offsets file, safe against crashed holders.
 *
 * The lock `<name>` holds JSON `{ pid, host, startTime, nonce }`. It is created complete and
 * atomically: written to a unique temp file first, then hard-linked to its name (link fails with
 * EEXIST when the lock exists), so a reader never sees a half-written lock.
 *
 * A lock is stale when its host is ours and its pid is dead, a zombie, or a different process
 * (the start time in /proc/<pid>/stat differs: the pid was reused). A lock from another host is
 * always treated as live: we cannot check it.
 *
 * Taking over a stale lock: only a process holding the breaker `<name>.break` (itself a lock of
 * the same form) may remove a lock it does not own. Under the breaker it re-reads the lock and
 * removes it only if still stale; since a live owner never loses its lock to a breaker and
 * creating needs the name to be free, no two processes can both win. The breaker is held for
 * microseconds; if its holder was killed inside that window, the breaker is moved aside with
 * rename and the moved file checked to be the stale one (put back otherwise).
 */
import { randomBytes } from 'node:crypto';
import { link, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { setTimeout as delay } from 'node:timers/promises';
import { CdcError } from '../core/errors.ts';

interface Owner {
  readonly pid: number;
  readonly host: string;
  /** Field 22 of /proc/<pid>/stat (clock ticks since boot), null where /proc does not exist. */
  readonly startTime: string | null;
  readonly nonce: string;
}

/** How often to try while other processes race for the same lock (each round takes microseconds). */
const ATTEMPTS = 200;
const RETRY_MS = 5;

/** A held lock. `release()` removes it. */
export class LockFile {
  private held = true;

  private constructor(
    readonly path: string,
    private readonly content: string,
  ) {}

  /**
   * Takes the lock at `path` or throws CdcError('OFFSETS_LOCKED') naming the live holder.
   * `what` names the protected resource in messages ("offsets file /x/offsets.json").
   */
  static async acquire(path: string, what: string): Promise<LockFile> {
    const content = JSON.stringify(await ownerOfThisProcess());
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      if (await createExclusive(path, content)) return new LockFile(path, content);
      const holder = await readLock(path);
      if (holder === undefined) continue; // released since our attempt: try again
      if (await isLive(holder.owner)) throw lockedError(what, path, holder.owner);
      await withBreaker(`${path}.break`, what, async () => {
        const again = await readLock(path);
        if (again !== undefined && !(await isLive(again.owner))) await unlinkIfPresent(path);
      });
    }
    throw new CdcError('OFFSETS_LOCKED', `${what} is contended: could not take ${path}`, {
      retryable: true,
      hint: 'another pgcdc process is starting with the same offsets file; run only one',
    });
  }

  /** Removes the lock if it is still ours. Idempotent. */
  async release(): Promise<void> {
    if (!this.held) return;
    this.held = false;
    const current = await readLock(this.path);
    if (current?.raw === this.content) await unlinkIfPresent(this.path);
  }
}

async function ownerOfThisProcess(): Promise<Owner> {
  const stat = await readProcStat(process.pid);
  return {
    pid: process.pid,
    host: hostname(),
    startTime: typeof stat === 'object' ? stat.startTime : null,
    nonce: randomBytes(8).toString('hex'),
  };
}

/** Creates `path` with `content` unless it exists; the content is complete when the name appears. */
async function createExclusive(path: string, content: string): Promise<boolean> {
  const temp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  await writeFile(temp, content, { flag: 'wx', mode: 0o644 });
  try {
    await link(temp, path);
    return true;
  } catch (error) {
    if (errnoOf(error) === 'EEXIST') return false;
    throw new CdcError('INTERNAL', `cannot create the lock file ${path}: ${messageOf(error)}`, {
      hint: 'the offsets file must be on a local file system that supports hard links',
      cause: error,
    });
  } finally {
    await unlinkIfPresent(temp);
  }
}

/** The lock's owner (undefined content when it is not ours: garbage counts as stale), or undefined when absent. */
async function readLock(path: string): Promise<{ raw: string; owner: Owner | undefined } | undefined> {
  let raw: string;
  try {
    raw = await readFile(path, 'utf8');
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return undefined;
    throw error;
  }
  return { raw, owner: parseOwner(raw) };
}

function parseOwner(raw: string): Owner | undefined {
  try {
    const value: unknown = JSON.parse(raw);
    if (typeof value !== 'object' || value === null) return undefined;
    const { pid, host, startTime, nonce } = value as Record<string, unknown>;
    if (typeof pid !== 'number' || !Number.isSafeInteger(pid) || pid <= 0) return undefined;
    if (typeof host !== 'string' || typeof nonce !== 'string') return undefined;
    if (startTime !== null && typeof startTime !== 'string') return undefined;
    return { pid, host, startTime, nonce };
  } catch {
    return undefined;
  }
}

/** Whether the lock's owner may still be running. Unknown content is a crashed writer's garbage. */
async function isLive(owner: Owner | undefined): Promise<boolean> {
  if (owner === undefined) return false;
  if (owner.host !== hostname()) return true;
  try {
    process.kill(owner.pid, 0);
  } catch (error) {
    if (errnoOf(error) === 'ESRCH') return false;
    // EPERM: it exists but belongs to another user; the start time below still applies.
  }
  const stat = await readProcStat(owner.pid);
  if (stat === undefined) return true; // no /proc (not Linux): the pid is all we have
  if (stat === 'gone' || stat.state === 'Z' || stat.state === 'X') return false;
  return owner.startTime === null || owner.startTime === stat.startTime;
}

/** State and start time from /proc/<pid>/stat; 'gone' when the pid has no entry. */
async function readProcStat(pid: number): Promise<{ state: string; startTime: string } | 'gone' | undefined> {
  let text: string;
  try {
    text = await readFile(`/proc/${pid}/stat`, 'utf8');
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return (await procExists()) ? 'gone' : undefined;
    return undefined;
  }
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const state = fields[0];
  const startTime = fields[19]; // field 22 overall
  if (state === undefined || startTime === undefined) return undefined;
  return { state, startTime };
}

async function procExists(): Promise<boolean> {
  try {
    await readFile('/proc/self/stat', 'utf8');
    return true;
  } catch {
    return false;
  }
}

async function withBreaker(path: string, what: string, fn: () => Promise<void>): Promise<void> {
  const content = JSON.stringify(await ownerOfThisProcess());
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    if (await createExclusive(path, content)) {
      try {
        await fn();
      } finally {
        await unlinkIfPresent(path);
      }
      return;
    }
    const holder = await readLock(path);
    if (holder === undefined) continue;
    if (await isLive(holder.owner)) {
      await delay(RETRY_MS); // another process is taking over right now
      continue;
    }
    await removeStaleBreaker(path, holder.raw);
  }
  throw new CdcError('OFFSETS_LOCKED', `${what} is contended: could not take ${path}`, {
    retryable: true,
    hint: 'another pgcdc process is starting with the same offsets file; run only one',
  });
}

/** Moves a dead process's breaker aside; if the moved file is not that one, puts it back. */
async function removeStaleBreaker(path: string, staleRaw: string): Promise<void> {
  const aside = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.stale`;
  try {
    await rename(path, aside);
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return;
    throw error;
  }
  const moved = await readLock(aside);
  if (moved !== undefined && moved.raw !== staleRaw) {
    await link(aside, path).catch(() => undefined); // someone's live breaker: give it back
  }
  await unlinkIfPresent(aside);
}

function lockedError(what: string, path: string, owner: Owner | undefined): CdcError {
  const who =
    owner === undefined
      ? 'another pgcdc process'
      : `another pgcdc process (pid ${owner.pid}${owner.host === hostname() ? '' : ` on ${owner.host}`})`;
  return new CdcError('OFFSETS_LOCKED', `${what} is in use by ${who}`, {
    hint: `stop that process first or use another offsets file; if it is surely not running, remove ${path}`,
  });
}

async function unlinkIfPresent(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (error) {
    if (errnoOf(error) !== 'ENOENT') throw error;
  }
}

function errnoOf(error: unknown): string | undefined {
  if (error instanceof Error && 'code' in error && typeof error.code === 'string') return error.code;
  return undefined;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The pid of the live process holding the lock at `path`, or undefined when none holds it. */
export async function lockHolder(path: string): Promise<{ readonly pid: number; readonly host: string } | undefined> {
  const holder = await readLock(path);
  if (holder?.owner === undefined || !(await isLive(holder.owner))) return undefined;
  return { pid: holder.owner.pid, host: holder.owner.host };
}
