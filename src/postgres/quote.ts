/**
 * The one place SQL identifiers and literals are quoted. Every statement pgcdc builds goes through
 * these, including those sent on the replication connection (which accepts only the simple query
 * protocol, so parameters cannot be bound there).
 */

/** Quotes an identifier: `my"table` -> `"my""table"`. Always quotes, so case is preserved. */
export function quoteIdent(name: string): string {
  if (name.includes('\0')) throw new TypeError('identifier contains a NUL byte');
  return `"${name.replaceAll('"', '""')}"`;
}

/** `schema.table` with both parts quoted. */
export function quoteQualified(schema: string, table: string): string {
  return `${quoteIdent(schema)}.${quoteIdent(table)}`;
}

/**
 * Quotes a string literal. Uses the E'' form when the text has a backslash so the result is the
 * same whatever standard_conforming_strings is.
 */
export function quoteLiteral(value: string): string {
  if (value.includes('\0')) throw new TypeError('literal contains a NUL byte');
  const body = value.replaceAll("'", "''");
  return value.includes('\\') ? `E'${body.replaceAll('\\', '\\\\')}'` : `'${body}'`;
}
