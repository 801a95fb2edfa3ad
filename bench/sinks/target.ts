/**
 * One destination of bench/sinks.ts: how to start its server, the `pgcdc run` flags that point the sink
 * at it, how to count what it holds, and the reference run that drives the same server with its own
 * tool (or a minimal client) in the same run.
 */
export interface TargetServer {
  readonly url: string;
}

export interface SinkTarget<Server extends TargetServer = TargetServer> {
  readonly name: string;
  /** Whether the server's program is here; a missing one is reported and skipped. */
  available(): boolean;
  start(dir: string): Promise<Server>;
  /** The sink's flags for `pgcdc run` (after --topic-prefix bench_<name>). */
  sinkArgs(server: Server, prefix: string): string[];
  /** What the destination holds after pgcdc's run: events and their bytes. */
  delivered(server: Server, prefix: string): Promise<{ events: number; bytes: number; note: string }>;
  /** The reference: `events` events of `eventBytes` bytes into the same server. */
  reference(server: Server, events: number, eventBytes: number): Promise<{ ms: number; what: string }>;
  stop(server: Server): Promise<void>;
}
