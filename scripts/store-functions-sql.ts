/**
 * Prints the PL/pgSQL functions of the hot path (stage update, heartbeat, run insert) of the current code
 * (src/server/storage/sql/functions.ts), as `CREATE OR REPLACE FUNCTION` statements, for the
 * migration that STORE_FUNCTIONS_MIGRATION names: a migration that changes the statements' SQL
 * (and so the functions' names) drops the functions it replaces and creates them all again.
 * Run: npx tsx scripts/store-functions-sql.ts > .tmp/functions.sql, then paste it into
 * prisma/migrations/<timestamp>_<name>/migration.sql below that migration's own statements.
 */
import { storeFunctions } from '../src/server/storage/sql/functions.js'

const functions = Object.values(storeFunctions())
process.stdout.write(`${functions.map((fn) => fn.create).join('\n\n')}\n`)
