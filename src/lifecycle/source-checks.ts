/**
 * What a capture checks of its source before it touches a slot: the server's facts, the table selection (every
 * table named exists), the preflight rules, and the server features the configuration needs (wal_level logical,
 * protocol streaming, origin filtering). Each refusal is one CdcError naming the server (host:port) and the fix.
 *
 * Separate from the engine (engine.ts), which runs a capture from start to stop: this is the read-only part of
 * its start-up, where nothing is created yet and a refusal leaves nothing behind.
 */
import type pg from 'pg';
import type { Config } from '../config.ts';
import { CdcError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { describeEndpoint, type SourceEndpoint } from '../postgres/connect.ts';
import { readServerFacts, type ServerFacts } from '../postgres/catalog.ts';
import { requireMatched, resolveSelection, type TableSelection } from '../selection/table-selection.ts';
import { checkStreamingSupported } from '../pipeline/large-transactions.ts';
import { preflightForRun } from '../preflight/preflight.ts';

/** The source as checked: its facts and the selection, resolved once for every mode. */
export interface CheckedSource {
  readonly facts: ServerFacts;
  /** Used by the preflight, the snapshots, the stream and snapshot requests. */
  readonly selection: TableSelection;
}

/**
 * Reads and checks the source over `query`. Snapshot mode initial_only reads tables only (no slot, no stream):
 * it skips the preflight and the wal_level check.
 */
export async function checkSource(
  config: Config,
  endpoint: SourceEndpoint,
  query: pg.Client,
  log: Logger,
): Promise<CheckedSource> {
  const facts = await readServerFacts(query);
  const mode = config.snapshot.mode;
  // The selection, once, for every mode: the preflight, the snapshots, the stream and requests.
  const selection = await resolveSelection(query, config);
  requireMatched(selection);
  if (mode !== 'initial_only') await preflightForRun({ query, endpoint, config, selection, facts, log });
  if (facts.walLevel !== 'logical' && mode !== 'initial_only') {
    throw new CdcError(
      'SOURCE_NOT_READY',
      `wal_level is ${facts.walLevel} on ${describeEndpoint(endpoint)}, logical replication needs logical`,
      {
        hint: 'set wal_level = logical (rds.logical_replication = 1 on RDS/Aurora) and restart the server',
      },
    );
  }
  checkStreamingSupported(config.streaming, facts.major, describeEndpoint(endpoint));
  if (config.origin === 'none' && facts.major < 16) {
    throw new CdcError(
      'CONFIG_INVALID',
      `origin: none needs PostgreSQL 16 or later, and ${describeEndpoint(endpoint)} runs PostgreSQL ${facts.major}`,
      {
        hint: 'remove origin: none (the default, any, delivers changes whatever their origin)',
      },
    );
  }
  return { facts, selection };
}
