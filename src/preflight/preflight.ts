/**
 * The preflight: connect, read the facts, judge them. `runCheck` is `pgcdc check` (read-only, every
 * problem collected, never throws for a server problem); `preflightForRun` is the same judgement
 * at the start of `pgcdc run`, which stops on errors and logs warnings.
 */
import type pg from 'pg';
import type { Config } from '../config.ts';
import { parseTableName } from '../selection/table-name.ts';
import { CdcError, toCdcError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { ServerFacts } from '../postgres/catalog.ts';
import { describeEndpoint, openConnection, resolveEndpoint, type SourceEndpoint } from '../postgres/connect.ts';
import { openTunnelFor } from '../postgres/tunnel.ts';
import {
  readPublicationFacts,
  readRole,
  readSettings,
  readSlotFacts,
  readTables,
  readTls,
  type PublicationFacts,
  type TableFacts,
} from './facts.ts';
import { readFailoverFacts } from './failover-rules.ts';
import { errorsOf, warningsOf, type CheckReport, type Problem } from './problem.ts';
import { evaluate, poolerFromError, poolerFromHost, type PreflightMode } from './rules.ts';
import { parseTablePattern, type TableName } from '../selection/patterns.ts';
import {
  displayName,
  partitionRoots,
  resolveSelection,
  selectionPatterns,
  type TableSelection,
} from '../selection/table-selection.ts';
import { heartbeatTable } from '../selection/heartbeat-table.ts';
import { readInactiveSlots } from './retained-wal.ts';

interface Gathered {
  readonly problems: Problem[];
  readonly notes: string[];
}

/**
 * Tables the publication sends whose changes the selection drops (the signal and heartbeat tables
 * are pgcdc's own and never count). Empty when the selection is the publication's.
 */
async function extraPublished(
  client: pg.ClientBase,
  config: Config,
  selection: TableSelection,
  publication: PublicationFacts,
): Promise<TableName[]> {
  if (!publication.exists || (selection.fromPublication && config.excludeTables.length === 0)) return [];
  const own = new Set(
    [
      config.signalTable === undefined ? undefined : parseTableName(config.signalTable),
      heartbeatTable(config.heartbeat),
    ].flatMap((t) => (t ? [displayName(t)] : [])),
  );
  const published = [...publication.tables].map((key) => {
    const [schema = '', table = ''] = JSON.parse(key) as string[];
    return { schema, table };
  });
  const roots = await partitionRoots(client, published);
  return published.filter(
    (t) => !own.has(displayName(t)) && !selection.captures(t, roots.get(JSON.stringify([t.schema, t.table]))),
  );
}

/** Reads the facts on `client` and evaluates every rule over `selection`. */
async function gather(
  client: pg.ClientBase,
  endpoint: SourceEndpoint,
  config: Config,
  mode: PreflightMode,
  selection: TableSelection,
): Promise<Gathered> {
  const settings = await readSettings(client);
  const [role, tls] = [await readRole(client), await readTls(client)];
  const publication = await readPublicationFacts(client, config.publication, settings.major);
  const { unmatched, fromPublication } = selection;
  const tables = await readTables(client, selection.tables);
  const extra = await extraPublished(client, config, selection, publication);
  let signal: { name: string; table: TableFacts | undefined } | undefined;
  if (config.signalTable !== undefined) {
    const pattern = parseTablePattern(config.signalTable);
    const want =
      'exact' in pattern.schema && 'exact' in pattern.table
        ? [{ schema: pattern.schema.exact, table: pattern.table.exact }]
        : [];
    signal = { name: config.signalTable, table: (await readTables(client, want))[0] };
  }
  const slot = await readSlotFacts(client, config.slot, settings.major);
  const problems = evaluate({
    mode,
    host: endpoint.tlsHost ?? endpoint.host,
    database: endpoint.database,
    sslmode: endpoint.sslmode,
    settings,
    role,
    tls,
    tables,
    unmatched,
    tablesFromPublication: fromPublication && config.excludeTables.length === 0,
    extraPublished: extra,
    publicationName: config.publication,
    publication,
    createPublication: config.createPublication,
    slotName: config.slot,
    slot,
    signal,
    failover: await readFailoverFacts(client, settings.major, settings.inRecovery),
    slotFailover: config.slotFailover,
    ...(mode === 'check'
      ? {
          inactiveSlots: {
            slots: await readInactiveSlots(client),
            thresholdBytes: config.alerts.retainedWalBytes.warning,
          },
        }
      : {}),
  });
  const version = `${Math.floor(settings.versionNum / 10000)}.${settings.versionNum % 10000}`;
  const tableList = tables.length === 0 ? 'none' : tables.map((t) => `${t.schema}.${t.table}`).join(', ');
  const walStatus = slot?.walStatus ? `, wal_status ${slot.walStatus}` : '';
  const notes = [
    `PostgreSQL ${version}${settings.inRecovery ? ' (standby)' : ''}, ` +
      `user ${role.name}${role.superuser ? ' (superuser)' : ''}`,
    `TLS: ${tls.inUse ? `${tls.version ?? 'on'}, sslmode=${endpoint.sslmode}` : 'off'}`,
    `tables: ${tableList}${fromPublication ? ` (from publication ${config.publication})` : ''}`,
    `slot ${config.slot}: ` +
      `${slot ? `exists (${slot.plugin ?? '?'}${walStatus})` : 'will be created on the first run'}`,
  ];
  return { problems, notes };
}

/** Opens a replication connection and runs IDENTIFY_SYSTEM: what `pgcdc run` needs first. */
async function probeReplication(endpoint: SourceEndpoint): Promise<Problem | undefined> {
  let client: pg.Client | undefined;
  try {
    client = await openConnection(endpoint, 'replication', 'pgcdc-check');
    client.on('error', () => undefined);
    await client.query('IDENTIFY_SYSTEM');
    return undefined;
  } catch (error) {
    const cdc = toCdcError(error);
    const raw = cdc.cause instanceof Error ? cdc.cause.message : cdc.message;
    const pooler = poolerFromError(raw);
    if (pooler) return pooler;
    if (/pg_hba\.conf.*replication/i.test(raw)) {
      return {
        severity: 'error',
        code: 'replication-hba',
        message: `the server refuses replication connections from here: ${raw}`,
        fix:
          "allow them in pg_hba.conf: pgcdc's logical replication connections match a line naming the " +
          ('database (host <database> <user> <address> scram-sha-256), not the replication keyword, which only ' +
            'admits physical replication; managed services allow them once the role has REPLICATION/rds_replication'),
      };
    }
    return {
      severity: 'error',
      code: 'replication-connect',
      message: `a replication connection failed: ${cdc.message}`,
      fix: cdc.hint ?? 'see the message',
    };
  } finally {
    await client?.end().catch(() => undefined);
  }
}

/** How the connection went through SSH, with the host key seen (so a user can pin it). */
function tunnelNotes(endpoint: SourceEndpoint): string[] {
  if (endpoint.ssh === undefined) return [];
  const tunnel = openTunnelFor(endpoint.ssh, endpoint);
  const key =
    tunnel === undefined
      ? 'unknown'
      : tunnel.hostKeyFingerprint +
        (tunnel.trustedOnFirstUse ? ', trusted on first use: pin it with --ssh-host-key' : ', pinned');
  return [`SSH tunnel: ${endpoint.ssh.user}@${endpoint.ssh.host}:${endpoint.ssh.port} (host key ${key})`];
}

/**
 * `pgcdc check`: every problem with its fix. Throws only for bad input (config); a server that
 * cannot be reached is reported as a problem.
 */
export async function runCheck(config: Config, env: NodeJS.ProcessEnv = process.env): Promise<CheckReport> {
  const endpoint = resolveEndpoint(config.source, env);
  const target = describeEndpoint(endpoint);
  await selectionPatterns(config); // bad patterns or an unreadable file are usage errors, before connecting
  let client: pg.Client;
  try {
    client = await openConnection(endpoint, 'query', 'pgcdc-check');
  } catch (error) {
    const cdc = toCdcError(error);
    const raw = cdc.cause instanceof Error ? cdc.cause.message : '';
    // A pooler recognised from its refusal is the whole story: the generic connect fix would mislead.
    const refusedByPooler = poolerFromError(raw);
    if (refusedByPooler) return { target, notes: [], problems: [refusedByPooler] };
    const pooler = poolerFromHost(endpoint.tlsHost ?? endpoint.host);
    const problems: Problem[] = [
      {
        severity: 'error',
        code: cdc.code === 'AUTH_FAILED' ? 'auth' : cdc.code === 'TUNNEL_FAILED' ? 'ssh-tunnel' : 'connect',
        message: cdc.message,
        fix: cdc.hint ?? 'check the host, port and credentials',
      },
    ];
    if (pooler) problems.push(pooler);
    return { target, notes: [], problems };
  }
  client.on('error', () => undefined);
  try {
    const gathered = await gather(client, endpoint, config, 'check', await resolveSelection(client, config));
    const problems = [...gathered.problems];
    if (
      !problems.some(
        (p) =>
          p.code.startsWith('pooler-') ||
          p.code === 'replication-privilege' ||
          (p.code === 'standby' && p.severity === 'error'),
      )
    ) {
      const replication = await probeReplication(endpoint);
      if (replication) problems.push(replication);
    }
    return { target, notes: [...tunnelNotes(endpoint), ...gathered.notes], problems };
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Warnings of one code beyond this many are logged as one line at start (`pgcdc check` lists them all). */
const WARNINGS_PER_CODE = 3;

/**
 * The preflight of `pgcdc run`, on its catalog connection, over the selection computed at start.
 * Leaves to the capture what it handles itself (creating a missing publication and slot, refusing
 * a bad slot). Logs each warning at warn level, one line each (many of one kind, such as replica
 * identity on many tables, as one line); throws PREFLIGHT_FAILED naming every error.
 */
export async function preflightForRun(args: {
  query: pg.ClientBase;
  endpoint: SourceEndpoint;
  config: Config;
  selection: TableSelection;
  facts: ServerFacts;
  log: Logger;
}): Promise<void> {
  const { problems } = await gather(args.query, args.endpoint, args.config, 'run', args.selection);
  const report: CheckReport = { target: describeEndpoint(args.endpoint), notes: [], problems };
  const byCode = new Map<string, Problem[]>();
  for (const w of warningsOf(report)) byCode.set(w.code, [...(byCode.get(w.code) ?? []), w]);
  for (const [code, list] of byCode) {
    const shown = list.length > WARNINGS_PER_CODE ? list.slice(0, 1) : list;
    for (const w of shown) {
      const more = list.length - shown.length;
      args.log.warn(
        { code, fix: w.fix },
        more > 0 ? `${w.message} (and ${more} more like it: pgcdc check lists them)` : w.message,
      );
    }
  }
  const errors = errorsOf(report);
  if (errors.length > 0) {
    const [first] = errors;
    throw new CdcError(
      'PREFLIGHT_FAILED',
      `${errors.length} problem${errors.length === 1 ? '' : 's'} on ` +
        `${report.target}: ${errors.map((e) => e.message).join('; ')}`,
      {
        hint: `${first?.fix ?? ''}${errors.length > 1 ? ` (pgcdc check lists every fix)` : ''}`,
      },
    );
  }
  args.log.debug({ major: args.facts.major }, 'preflight passed');
}
