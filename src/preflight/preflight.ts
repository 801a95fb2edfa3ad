/**
 * The preflight: connect, read the facts, judge them. `runCheck` is `pgcdc check` (read-only, every
 * problem collected, never throws for a server problem); `preflightForRun` is the same judgement
 * at the start of `pgcdc run`, which stops on errors and logs warnings.
 */
import { readFile } from 'node:fs/promises';
import type pg from 'pg';
import type { Config } from '../config.ts';
import { CdcError, toCdcError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { ServerFacts } from '../postgres/catalog.ts';
import { describeEndpoint, openConnection, resolveEndpoint, type SourceEndpoint } from '../postgres/connect.ts';
import { openTunnelFor } from '../postgres/tunnel.ts';
import { listCatalogTables, readPublicationFacts, readRole, readSettings, readSlotFacts, readTables, readTls, type TableFacts } from './facts.ts';
import { errorsOf, warningsOf, type CheckReport, type Problem } from './problem.ts';
import { evaluate, poolerFromError, poolerFromHost, type PreflightMode } from './rules.ts';
import { parseTablePattern, patternsFromCsv, qualifiedName, selectTables, type TablePattern } from './selection.ts';

/** The include and exclude patterns of a config (reads `tablesFile`). */
export async function selectionPatterns(config: Config): Promise<{ include: TablePattern[]; exclude: TablePattern[] }> {
  const include = config.tables.map(parseTablePattern);
  if (config.tablesFile !== undefined) {
    let text: string;
    try {
      text = await readFile(config.tablesFile, 'utf8');
    } catch (cause) {
      throw new CdcError('CONFIG_INVALID', `cannot read tables file ${config.tablesFile}`, { cause, hint: 'check --tables-file' });
    }
    include.push(...patternsFromCsv(text, config.tablesFile));
  }
  return { include, exclude: config.excludeTables.map(parseTablePattern) };
}

interface Gathered {
  readonly problems: Problem[];
  readonly notes: string[];
  /** The concrete tables selected, when a selection was given (undefined: the publication's tables). */
  readonly selected: readonly { schema: string; table: string }[] | undefined;
  readonly unmatched: readonly string[];
}

/** Reads the facts on `client` and evaluates every rule. */
async function gather(client: pg.ClientBase, endpoint: SourceEndpoint, config: Config, mode: PreflightMode): Promise<Gathered> {
  const settings = await readSettings(client);
  const [role, tls] = [await readRole(client), await readTls(client)];
  const publication = await readPublicationFacts(client, config.publication, settings.major);
  const { include, exclude } = await selectionPatterns(config);
  let names: { schema: string; table: string }[];
  let unmatched: readonly string[] = [];
  let selected: { schema: string; table: string }[] | undefined;
  const fromPublication = include.length === 0;
  if (fromPublication) {
    names = [...publication.tables].map((key) => {
      const [schema = '', table = ''] = JSON.parse(key) as string[];
      return { schema, table };
    });
    if (exclude.length > 0) {
      selected = selectTables(names.map((n) => ({ ...n, isPartition: false })), [parseTablePattern('*.*')], exclude).tables.map((t) => ({ schema: t.schema, table: t.table }));
      names = selected;
    }
  } else {
    const selection = selectTables(await listCatalogTables(client), include, exclude);
    unmatched = selection.unmatched;
    names = selection.tables.map((t) => ({ schema: t.schema, table: t.table }));
    selected = names;
  }
  const tables = await readTables(client, names);
  let signal: { name: string; table: TableFacts | undefined } | undefined;
  if (config.signalTable !== undefined) {
    const pattern = parseTablePattern(config.signalTable);
    const want = 'exact' in pattern.schema && 'exact' in pattern.table ? [{ schema: pattern.schema.exact, table: pattern.table.exact }] : [];
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
    tablesFromPublication: fromPublication && exclude.length === 0,
    publicationName: config.publication,
    publication,
    createPublication: config.createPublication,
    slotName: config.slot,
    slot,
    signal,
  });
  const notes = [
    `PostgreSQL ${Math.floor(settings.versionNum / 10000)}.${settings.versionNum % 10000}${settings.inRecovery ? ' (standby)' : ''}, user ${role.name}${role.superuser ? ' (superuser)' : ''}`,
    `TLS: ${tls.inUse ? `${tls.version ?? 'on'}, sslmode=${endpoint.sslmode}` : 'off'}`,
    `tables: ${tables.length === 0 ? 'none' : tables.map((t) => `${t.schema}.${t.table}`).join(', ')}${fromPublication ? ` (from publication ${config.publication})` : ''}`,
    `slot ${config.slot}: ${slot ? `exists (${slot.plugin ?? '?'}${slot.walStatus ? `, wal_status ${slot.walStatus}` : ''})` : 'will be created on the first run'}`,
  ];
  return { problems, notes, selected, unmatched };
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
      return { severity: 'error', code: 'replication-hba', message: `the server refuses replication connections from here: ${raw}`,
        fix: 'allow them in pg_hba.conf (host replication <user> <address> scram-sha-256; managed services allow it once the role has REPLICATION/rds_replication)' };
    }
    return { severity: 'error', code: 'replication-connect', message: `a replication connection failed: ${cdc.message}`, fix: cdc.hint ?? 'see the message' };
  } finally {
    await client?.end().catch(() => undefined);
  }
}

/** How the connection went through SSH, with the host key seen (so a user can pin it). */
function tunnelNotes(endpoint: SourceEndpoint): string[] {
  if (endpoint.ssh === undefined) return [];
  const tunnel = openTunnelFor(endpoint.ssh, endpoint);
  const key = tunnel === undefined ? 'unknown' : `${tunnel.hostKeyFingerprint}${tunnel.trustedOnFirstUse ? ', trusted on first use: pin it with --ssh-host-key' : ', pinned'}`;
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
    const problems: Problem[] = [{ severity: 'error', code: cdc.code === 'AUTH_FAILED' ? 'auth' : cdc.code === 'TUNNEL_FAILED' ? 'ssh-tunnel' : 'connect', message: cdc.message, fix: cdc.hint ?? 'check the host, port and credentials' }];
    if (pooler) problems.push(pooler);
    return { target, notes: [], problems };
  }
  client.on('error', () => undefined);
  try {
    const gathered = await gather(client, endpoint, config, 'check');
    const problems = [...gathered.problems];
    if (!problems.some((p) => p.code.startsWith('pooler-') || p.code === 'replication-privilege' || (p.code === 'standby' && p.severity === 'error'))) {
      const replication = await probeReplication(endpoint);
      if (replication) problems.push(replication);
    }
    return { target, notes: [...tunnelNotes(endpoint), ...gathered.notes], problems };
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * The preflight of `pgcdc run`, on its catalog connection. Leaves to the capture what it handles
 * itself (creating a missing publication and slot, refusing a bad slot). Logs warnings; throws
 * PREFLIGHT_FAILED naming every error. When a selection was given (patterns, a tables file,
 * exclusions), replaces `config.tables` in place with the concrete `"schema"."table"` list, so
 * the capture resolves exactly the tables that were checked.
 */
export async function preflightForRun(args: { query: pg.ClientBase; endpoint: SourceEndpoint; config: Config; facts: ServerFacts; log: Logger }): Promise<void> {
  const { problems, selected, unmatched } = await gather(args.query, args.endpoint, args.config, 'run');
  if (unmatched.length > 0) {
    // Bad input (exit 2), reported as the capture always has: one line naming every missing table.
    throw new CdcError('TABLE_MISSING', `table${unmatched.length > 1 ? 's' : ''} not found: ${unmatched.join(', ')}`, {
      hint: 'check --tables/--tables-file (schema.table or schema.*, case-sensitive) and that the user can see them',
    });
  }
  const report: CheckReport = { target: describeEndpoint(args.endpoint), notes: [], problems };
  // Debug level: a start-up must stay quiet (one line on failure); pgcdc check shows warnings with fixes.
  for (const w of warningsOf(report)) args.log.debug({ code: w.code, fix: w.fix }, `preflight warning: ${w.message}`);
  const errors = errorsOf(report);
  if (errors.length > 0) {
    const [first] = errors;
    throw new CdcError('PREFLIGHT_FAILED', `${errors.length} problem${errors.length === 1 ? '' : 's'} on ${report.target}: ${errors.map((e) => e.message).join('; ')}`, {
      hint: `${first?.fix ?? ''}${errors.length > 1 ? ` (pgcdc check lists every fix)` : ''}`,
    });
  }
  if (selected) args.config.tables.splice(0, args.config.tables.length, ...selected.map(qualifiedName));
  args.log.debug({ major: args.facts.major }, 'preflight passed');
}
