/**
 * The `pgcdc check` command setup prints as its last step: it repeats what setup was given (host,
 * port, database, user, sslmode, the table selection, slot, publication, signal table) so that,
 * run as printed with the capture user's password in PGPASSWORD or ~/.pgpass, it checks exactly
 * what setup prepared. It never holds a password; what setup was not told (the host and port
 * without --admin-url) stays a visible placeholder.
 */

export interface CheckTarget {
  /** Undefined without an admin connection: printed as `<host>` / `<port>`. */
  readonly host: string | undefined;
  readonly port: number | undefined;
  readonly database: string;
  readonly user: string;
  /** The sslmode of the admin connection (undefined: not connected, left to the default). */
  readonly sslmode: string | undefined;
  readonly sslrootcert: string | undefined;
  /** The selection flags as given (undefined: not given; none of them: every table of the publication). */
  readonly tables: string | undefined;
  readonly tablesFile: string | undefined;
  readonly excludeTables: string | undefined;
  readonly slot: string;
  readonly publication: string;
  readonly signalTable: string | undefined;
}

/** Quotes `value` for a POSIX shell when it holds anything but plain characters. */
export function shellQuote(value: string): string {
  return /^[A-Za-z0-9_.,:/@%+=-]+$/.test(value) ? value : `'${value.replaceAll("'", `'\\''`)}'`;
}

/** `postgres://user@host:port/database?sslmode=...`, without a password. */
export function checkSourceUrl(t: CheckTarget): string {
  const host = t.host === undefined ? '<host>' : t.host.includes(':') ? `[${t.host}]` : t.host;
  const port = t.port === undefined ? '<port>' : String(t.port);
  const query = new URLSearchParams();
  if (t.sslmode !== undefined) query.set('sslmode', t.sslmode);
  if (t.sslrootcert !== undefined) query.set('sslrootcert', t.sslrootcert);
  const search = query.size > 0 ? `?${query.toString()}` : '';
  return `postgres://${encodeURIComponent(t.user)}@${host}:${port}/${encodeURIComponent(t.database)}${search}`;
}

/** The whole command line, each argument shell-quoted. */
export function checkCommand(t: CheckTarget): string {
  const args = ['--source', checkSourceUrl(t)];
  if (t.tables !== undefined) args.push('--tables', t.tables);
  if (t.tablesFile !== undefined) args.push('--tables-file', t.tablesFile);
  if (t.excludeTables !== undefined) args.push('--exclude-tables', t.excludeTables);
  if (t.signalTable !== undefined) args.push('--signal-table', t.signalTable);
  args.push('--slot', t.slot, '--publication', t.publication);
  return ['pgcdc', 'check', ...args.map(shellQuote)].join(' ');
}
