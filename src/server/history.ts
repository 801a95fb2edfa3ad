/**
 * The dashboard's time series: one point every `stepMs` over the last `spanMs` (an hour by default),
 * in a fixed ring, so the memory it takes is bounded whatever the uptime. Points are taken from the
 * run's status (events delivered, the positions) and from the latest health sample (lag and retained
 * WAL, read from the server's own views), never per change event.
 */

/** One point of the history. Values unknown at that moment are null (JSON has no undefined). */
export interface HistoryPoint {
  /** Unix ms. */
  readonly at: number;
  /** Events made durable since the process started (the dashboard's throughput is its difference). */
  readonly events: number;
  /** Received WAL not yet acknowledged, from the status updates (bytes). */
  readonly unackedBytes: number | null;
  /** The slot's lag (current WAL minus confirmed flush), from the latest health sample. */
  readonly lagBytes: number | null;
  /** Seconds since the last durable commit while WAL waits, from the latest health sample. */
  readonly lagSeconds: number | null;
  /** WAL the slot keeps on the server's disk, from the latest health sample. */
  readonly retainedWalBytes: number | null;
}

export class History {
  private readonly points: (HistoryPoint | undefined)[];
  private next = 0;
  private count = 0;

  /** Keeps `spanMs / stepMs` points. */
  constructor(
    readonly stepMs = 5_000,
    readonly spanMs = 3_600_000,
  ) {
    this.points = new Array<HistoryPoint | undefined>(Math.max(1, Math.ceil(spanMs / stepMs)));
  }

  add(point: HistoryPoint): void {
    this.points[this.next] = point;
    this.next = (this.next + 1) % this.points.length;
    this.count = Math.min(this.count + 1, this.points.length);
  }

  /** The points, oldest first. */
  list(): HistoryPoint[] {
    const out: HistoryPoint[] = [];
    const start = (this.next - this.count + this.points.length) % this.points.length;
    for (let i = 0; i < this.count; i++) {
      const point = this.points[(start + i) % this.points.length];
      if (point !== undefined) out.push(point);
    }
    return out;
  }
}
