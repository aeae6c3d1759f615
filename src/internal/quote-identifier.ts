/**
 * A PostgreSQL identifier (schema, table, column or channel name) as a quoted identifier, so
 * that any name, mixed case and quotes included, reaches the server unchanged. The one copy for
 * the Prisma store, the replay store and `pipeline-status-sdk/pg`. Internal.
 */
export function quoteIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`
}

/** PostgreSQL's longest identifier in UTF-8 bytes (NAMEDATALEN − 1): a longer name is silently truncated to it. */
export const MAX_IDENTIFIER_BYTES = 63

/**
 * Why `schema` cannot name a PostgreSQL schema as given, or `undefined`: longer than
 * {@link MAX_IDENTIFIER_BYTES} bytes as UTF-8, which PostgreSQL would silently truncate (the
 * tables would be looked for, or put, in a schema of another name than the one given). The one
 * rule for `pipeline-status migrate --schema`, `applyMigrations` and `createPrismaStore({ schema })`.
 */
export function schemaNameProblem(schema: string): string | undefined {
  const bytes = new TextEncoder().encode(schema).byteLength
  if (bytes <= MAX_IDENTIFIER_BYTES) return undefined
  return (
    `schema name "${schema}" is ${bytes} bytes in UTF-8, over PostgreSQL's limit of ${MAX_IDENTIFIER_BYTES} bytes for a name ` +
    '(NAMEDATALEN − 1), which it would silently truncate: give a shorter name'
  )
}
