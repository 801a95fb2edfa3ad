/**
 * The run-state file: what a running capture tells `pgcdc status` (and anyone reading it) about
 * itself, next to its offsets file as `<offsets>.run.json` (with the checkpoints in the sink only,
 * `--offsets kafka|nats`, next to the other side files: `./pgcdc-<slot>.run.json`, offsets/open.ts
 * sideFilesBase). Written atomically (a temp file renamed over it) every few seconds and at state
 * and alert changes, from a timer: never on the capture's hot path. Not fsynced: it is a report,
 * not a checkpoint.
 *
 * A reader never trusts it: it may be stale (the process was killed), edited or corrupt.
 * `readRunFile` validates every field and reports a bad file as such instead of failing.
 */
import { readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { z } from 'zod';
import type { EngineState } from '../core/engine-events.ts';
import type { AlertState, SlotSample } from './types.ts';

export const RUN_FILE_VERSION = 1;

/** The run file of a capture whose offsets setting is `offsets`. */
export function runFilePath(sideFilesBase: string): string {
  return `${sideFilesBase}.run.json`;
}

const lsnText = z.string().regex(/^[0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8}$/, 'must be an LSN like 0/16B3748');
const isoTime = z.iso.datetime({ offset: true });
const count = z.number().int().min(0);
const optionalNumber = z.number().nullable().optional();

const alertSchema = z.object({
  name: z.enum(['lag_bytes', 'lag_seconds', 'retained_wal_bytes', 'safe_wal_size_bytes', 'slot']),
  level: z.enum(['ok', 'warning', 'critical']),
  value: optionalNumber,
  threshold: optionalNumber,
  message: z.string().max(2000),
  since: isoTime,
});

const runStateSchema = z.object({
  version: z.literal(RUN_FILE_VERSION),
  pid: z.number().int().min(1),
  host: z.string().min(1).max(255),
  /** Field 22 of /proc/<pid>/stat at start: a reused pid is told apart from the capture. */
  procStartTime: z.string().regex(/^\d+$/).nullable(),
  slot: z.string().min(1).max(63),
  startedAt: isoTime,
  updatedAt: isoTime,
  state: z.enum(['starting', 'snapshotting', 'streaming', 'retrying', 'stopping', 'stopped']),
  /** Commit time of the last transaction made durable, ISO; null when none is known. */
  lastCommitAt: isoTime.nullable(),
  eventsDelivered: count,
  checkpointLsn: lsnText.nullable(),
  snapshot: z
    .array(
      z.object({
        table: z.string().min(1).max(300),
        rows: count,
        total: count.nullable(),
        done: z.boolean(),
      }),
    )
    .max(100_000),
  alerts: z.array(alertSchema).max(20),
  /** Samples the monitor took; it grows while the monitor works. */
  samples: count,
  lastSampleAt: isoTime.nullable(),
  /** The address of `run --http`, when it serves one (host:port). */
  http: z.string().max(300).nullable().optional(),
});

/** The run-state file's content (docs/operations.md, "Monitoring"). */
export type RunState = z.infer<typeof runStateSchema>;

/** What a reader found. */
export type RunFileRead =
  | { readonly kind: 'absent' }
  | { readonly kind: 'ok'; readonly state: RunState }
  | { readonly kind: 'invalid'; readonly reason: string };

/** Reads and validates the run file at `path`; never throws. */
export async function readRunFile(path: string): Promise<RunFileRead> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if (error instanceof Error && 'code' in error && error.code === 'ENOENT') return { kind: 'absent' };
    return { kind: 'invalid', reason: `cannot be read: ${error instanceof Error ? error.message : String(error)}` };
  }
  return parseRunState(text);
}

/** Validates a run file's text. */
export function parseRunState(text: string): RunFileRead {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { kind: 'invalid', reason: text.length === 0 ? 'it is empty' : 'it is not JSON' };
  }
  const parsed = runStateSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue === undefined || issue.path.length === 0 ? '' : `${issue.path.join('.')}: `;
    return { kind: 'invalid', reason: `${where}${issue?.message ?? 'invalid'}` };
  }
  return { kind: 'ok', state: parsed.data };
}

/** What the writer reads from the capture (a subset of the engine's status, observability/status-tracker.ts). */
export interface RunStatusView {
  readonly state: EngineState;
  readonly startedAt: string;
  readonly eventsDelivered: number;
  readonly checkpointLsn: string | undefined;
  readonly snapshot: readonly {
    readonly table: string;
    readonly rows: number;
    readonly total: number | undefined;
    readonly done: boolean;
  }[];
}

/** What the writer reads from the monitor. */
export interface RunHealthView {
  readonly lastCommitAt: number | undefined;
  readonly samples: number;
  readonly reading: { readonly sample: SlotSample; readonly alerts: readonly AlertState[] } | undefined;
}

/** Field 22 of /proc/self/stat, or null where /proc does not exist. */
export async function procStartTime(pid: number): Promise<string | null> {
  try {
    const text = await readFile(`/proc/${pid}/stat`, 'utf8');
    return text.slice(text.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

/**
 * Writes the run file every `intervalMs` and when `changed()` is called, from a timer. Writes never
 * overlap; a failed write is logged once by `onError` and tried again at the next tick.
 */
export class RunFileWriter {
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> | undefined;
  private again = false;
  private failed = false;
  private stopped = false;
  private startTime: string | null = null;
  private http: string | undefined;

  constructor(
    private readonly path: string,
    private readonly slot: string,
    private readonly status: () => RunStatusView,
    private readonly health: () => RunHealthView,
    private readonly onError: (error: unknown) => void,
    private readonly intervalMs = 2000,
  ) {}

  async start(): Promise<void> {
    this.startTime = await procStartTime(process.pid);
    if (this.stopped) return;
    this.timer = setInterval(() => this.changed(), this.intervalMs);
    this.timer.unref();
    this.changed();
  }

  /** The HTTP server's address, shown to status (the server wiring sets it). */
  setHttpAddress(address: string | undefined): void {
    this.http = address;
    this.changed();
  }

  /** Asks for a write soon (state or alerts changed). */
  changed(): void {
    if (this.stopped) return;
    if (this.writing !== undefined) {
      this.again = true;
      return;
    }
    this.writing = this.write().finally(() => {
      this.writing = undefined;
      if (this.again) {
        this.again = false;
        this.changed();
      }
    });
  }

  /** Writes the final state (stopped, or whatever it is) and stops the timer. */
  async stop(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.stopped = true;
    await this.writing;
    await this.write();
  }

  snapshot(): RunState {
    const status = this.status();
    const health = this.health();
    return {
      version: RUN_FILE_VERSION,
      pid: process.pid,
      host: hostname(),
      procStartTime: this.startTime,
      slot: this.slot,
      startedAt: status.startedAt,
      updatedAt: new Date().toISOString(),
      state: status.state,
      lastCommitAt: health.lastCommitAt === undefined ? null : new Date(health.lastCommitAt).toISOString(),
      eventsDelivered: status.eventsDelivered,
      checkpointLsn: status.checkpointLsn ?? null,
      snapshot: status.snapshot.map((t) => ({ table: t.table, rows: t.rows, total: t.total ?? null, done: t.done })),
      alerts: (health.reading?.alerts ?? []).map((a) => ({
        ...a,
        value: a.value ?? null,
        threshold: a.threshold ?? null,
      })),
      samples: health.samples,
      lastSampleAt: health.reading?.sample.at ?? null,
      http: this.http ?? null,
    };
  }

  private async write(): Promise<void> {
    const temp = `${this.path}.${process.pid}.tmp`;
    try {
      await writeFile(temp, `${JSON.stringify(this.snapshot(), null, 2)}\n`, { mode: 0o644 });
      await rename(temp, this.path);
      this.failed = false;
    } catch (error) {
      await unlink(temp).catch(() => undefined);
      if (!this.failed) this.onError(error);
      this.failed = true;
    }
  }
}
