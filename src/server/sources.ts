/**
 * What the HTTP server reads, given by whoever starts it (cli/run-command.ts). Every source is a
 * function the server calls when a request or its history timer needs it: the server keeps no
 * reference into the engine and never sits on the capture's path. The optional sources are built
 * elsewhere (the metrics registry, the recent-events sampler); without them their routes say so.
 */
import type { RunStatus } from '../library/run.ts';

/** A Prometheus exposition: what `/metrics` answers. */
export interface MetricsText {
  /** `text/plain; version=0.0.4; charset=utf-8` (prom-client's `register.contentType`). */
  readonly contentType: string;
  readonly body: string;
}

export interface ServerSources {
  /**
   * The run's status over every in-process restart (`RunHandle.status()`); undefined before the run
   * is started. Called per request and once per history step: it must be cheap and never throw.
   */
  status(): RunStatus | undefined;
  /**
   * The base of the files next to the offsets (offsets/open.ts `sideFilesBase`): the snapshot request
   * mailbox `<base>.requests/` and the captured tables' list in it (snapshot/requests.ts).
   */
  readonly requestsBase: string;
  /**
   * The offsets file, when one is kept: tells a request the capture took (stored with the checkpoint)
   * from one it dropped. Undefined with the checkpoints in the sink only (`--offsets kafka`).
   */
  readonly offsetsFile: string | undefined;
  /** The Prometheus text (the metrics registry's `Metrics.text()`); absent: `/metrics` answers 503. */
  readonly metrics?: (() => Promise<MetricsText>) | undefined;
  /**
   * The latest events delivered, oldest first (the sampler's `RecentEvents.list()`): plain JSON
   * objects. Unless `http.showValues`, the server replaces every property named `before`, `after`,
   * `value`, `values`, `row` or `payload` (at any depth) with "[redacted]", keeping keys, tables and
   * positions. Must be cheap and never throw.
   */
  readonly recentEvents?: (() => readonly unknown[]) | undefined;
  /**
   * The planner's row estimates ("schema.table" -> rows) of tables being snapshotted incrementally,
   * from the health monitor's last sample: the totals behind the dashboard's ETA. Absent: unknown.
   */
  readonly rowEstimates?: (() => ReadonlyMap<string, number> | undefined) | undefined;
}
