/**
 * A PostgreSQL identifier in double quotes, inner quotes doubled, so that any table, column or
 * schema name (mixed case, spaces, quotes) is used exactly as given. The one quoting rule of the
 * store's SQL. Internal.
 */
export function quoteIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`
}
