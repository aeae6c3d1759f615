/**
 * LISTEN mode for the live status streams, on Node with `pg` (an optional peer dependency that
 * only this entry imports, so `pipeline-status-sdk/server` stays usable on edge runtimes).
 *
 * One `LISTEN` connection per process: after each write commits, the store queues
 * `'<runId>:<version>'` and sends the queue every few milliseconds as one `pg_notify` statement
 * outside the write (`notifyChannel`, `notifyIntervalMs` on the `PrismaStore`); PostgreSQL delivers
 * it to every listening instance, and each one reads the runs it streams that changed. A
 * notification lost to a writer's crash is caught up by the handlers' safety poll
 * (`live.safetyPollIntervalMs`). Notifications
 * need a direct session connection: not a transaction pooler (PgBouncer in transaction mode,
 * most serverless poolers), which never delivers another session's notifications. The listener
 * proves both that its connection is alive (TCP keep-alive and a bounded `SELECT 1` probe) and
 * that notifications from other sessions reach it (a check after every `LISTEN`); until both
 * hold, the process polls run versions (docs/live-status.md).
 *
 * The two URLs are said once, in {@link createPgConnections}: `connectionString` (`DATABASE_URL`,
 * pooled, for requests: its `pool` goes to Prisma's adapter and to the store) and
 * `directConnectionString` (`DIRECT_DATABASE_URL`, for `LISTEN` and migrations). Given a direct
 * URL, LISTEN is the default (issue 31; `live: 'poll'` opts out, `live: 'listen'` opts in on one
 * direct URL), and `db.handlerOptions({ prisma })` wires both halves, the notifying store and the
 * listener, on one channel.
 *
 * @example
 * ```ts
 * import { PrismaPg } from '@prisma/adapter-pg'
 * import { createPgConnections } from 'pipeline-status-sdk/pg'
 * import { createPipelineStatusHandlers } from 'pipeline-status-sdk/server'
 * import { PrismaClient } from './generated/prisma/client.js'
 *
 * const db = createPgConnections({
 *   connectionString: process.env.DATABASE_URL ?? '',
 *   directConnectionString: process.env.DIRECT_DATABASE_URL,
 * })
 * const prisma = new PrismaClient({ adapter: new PrismaPg(db.pool) })
 * const handlers = createPipelineStatusHandlers({ ...db.handlerOptions({ prisma }) })
 * ```
 *
 * It also holds {@link applyMigrations}: the package's migrations applied and recorded as
 * `prisma migrate deploy` does, for code that starts the app on a database that serves only
 * this package (the `pipeline-status migrate` command runs the same function).
 *
 * @module pipeline-status-sdk/pg
 */
export type { RunChangeSink, RunChangeSource } from '../server/live/run-watcher.js'
export { createPgConnections } from './connections.js'
export type {
  PgConnections,
  PgConnectionsOptions,
  PgHandlerOptions,
  PgHandlerOptionsInput,
  PgLiveMode,
  PgLiveModeSetting,
} from './connections.js'
export { applyMigrations, MigrationError } from './migrate.js'
export type {
  ApplyMigrationsOptions,
  ApplyMigrationsResult,
  MigrationErrorCode,
  PGliteLike,
  PgQueryable,
} from './migrate.js'

export {
  createPgRunListener,
  DEFAULT_NOTIFY_CHANNEL,
  type PgRunListener,
  type PgRunListenerCounts,
  type PgRunListenerOptions,
  type PgRunListenerState,
} from './run-listener.js'
