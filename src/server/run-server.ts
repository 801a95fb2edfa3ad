/**
 * The HTTP server of one `pgcdc run`, from its configuration: the mailbox and offsets file of that
 * run, its status interval, the `http` section. What the metrics and the recent-events sampler give
 * is passed in `extra` by whoever builds them.
 */
import type { Config } from '../config.ts';
import type { Logger } from '../core/log.ts';
import type { RunStatus } from '../library/run.ts';
import { offsetsInSink, sideFilesBase } from '../offsets/open.ts';
import { HttpStatusServer } from './http-server.ts';
import type { ServerSources } from './sources.ts';

/** The optional sources (ServerSources.metrics, recentEvents, rowEstimates). */
export type ExtraSources = Pick<ServerSources, 'metrics' | 'recentEvents' | 'rowEstimates'>;

/**
 * Starts the server when `config.http` is set (undefined otherwise); `status` gives the run's status
 * once the run is started. Throws CONFIG_INVALID (exit 2, one line) when it cannot listen, or would
 * listen off loopback without a token: call it before the capture starts.
 */
export async function startRunServer(
  config: Config,
  log: Logger,
  status: () => RunStatus | undefined,
  extra: ExtraSources = {},
): Promise<HttpStatusServer | undefined> {
  if (config.http === undefined) return undefined;
  const inSink = offsetsInSink(config.offsets, config.sink.kind);
  return HttpStatusServer.start({
    settings: config.http,
    log,
    statusIntervalMs: config.statusIntervalMs,
    sources: {
      status,
      requestsBase: sideFilesBase(config.offsets, config.slot, config.sink.kind),
      offsetsFile: inSink ? undefined : config.offsets,
      ...extra,
    },
  });
}
