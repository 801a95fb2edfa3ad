/**
 * The last events written, for the dashboard: a ring of the last `size` sampled events (at most
 * SAMPLE_SIZE per batch, see `batch-written` in core/engine-events.ts) with their table, op, id, LSN,
 * commit time and key. Values are kept only when `values` is set; otherwise a value never reaches here
 * (the line is not even read).
 */
import type { EngineEvent, EngineEvents, SampledEvent } from '../core/engine-events.ts';

export interface RecentEvent {
  /** "schema.table" ("" for events that are no table's change). */
  readonly table: string;
  /** c, u, d, r, t, or `other`. */
  readonly op: string;
  readonly id: string;
  /** The LSN the id starts with (a change's commit LSN, a snapshot read's snapshot point). */
  readonly lsn: string | undefined;
  /** Commit time (ISO) of the batch's last transaction; undefined for snapshot reads. */
  readonly committedAt: string | undefined;
  /** When it was durable in the sink (ISO). */
  readonly writtenAt: string;
  /** The event's key (parsed JSON), null when it has none. */
  readonly key: unknown;
  /** The event's `value` member, only with `values: true`. */
  readonly value?: unknown;
}

export interface RecentEventsOptions {
  /** How many events are kept; default 50. */
  readonly size?: number;
  /** Keep the events' values too (they may hold personal data); default false: keys only. */
  readonly values?: boolean;
}

export class RecentEvents implements EngineEvents {
  private readonly size: number;
  private readonly values: boolean;
  private readonly ring: RecentEvent[] = [];
  private next = 0;

  constructor(options: RecentEventsOptions = {}) {
    this.size = Math.max(1, options.size ?? 50);
    this.values = options.values === true;
  }

  /** See EngineEvents: never throws (an event that cannot be read is left out). */
  emit(event: EngineEvent): void {
    if (event.type !== 'batch-written') return;
    const writtenAt = new Date(event.durableAt).toISOString();
    for (const sampled of event.sample) {
      try {
        this.add(this.recent(sampled, writtenAt));
      } catch {
        // A key or line that does not parse is not shown.
      }
    }
  }

  /** The kept events, oldest first. */
  list(): readonly RecentEvent[] {
    if (this.ring.length < this.size) return this.ring.slice();
    return [...this.ring.slice(this.next), ...this.ring.slice(0, this.next)];
  }

  private recent(sampled: SampledEvent, writtenAt: string): RecentEvent {
    const recent: RecentEvent = {
      table: sampled.table,
      op: sampled.op,
      id: sampled.id,
      lsn: sampled.lsn,
      committedAt: sampled.commitAt === undefined ? undefined : new Date(sampled.commitAt).toISOString(),
      writtenAt,
      key: JSON.parse(sampled.key) as unknown,
    };
    if (!this.values) return recent;
    const line = JSON.parse(sampled.line()) as { value?: unknown };
    return { ...recent, value: line.value ?? null };
  }

  private add(recent: RecentEvent): void {
    if (this.ring.length < this.size) this.ring.push(recent);
    else this.ring[this.next] = recent;
    this.next = (this.next + 1) % this.size;
  }
}
