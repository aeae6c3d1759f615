/**
 * A PostgreSQL identifier (schema, table, column or channel name) as a quoted identifier, so
 * that any name, mixed case and quotes included, reaches the server unchanged. The one copy for
 * the Prisma store, the replay store and `pipeline-status-sdk/pg`. Internal.
 */
export function quoteIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`
}
