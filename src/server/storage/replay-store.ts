import { toStoreError } from '../database-errors.js'
import { quoteIdentifier } from '../../internal/quote-identifier.js'
import { ServerConfigurationError } from '../configuration-error.js'

/**
 * Remembers the signed messages that were accepted, by `webhook-id`, with a fingerprint of the
 * body. A message id seen again with the same body is a redelivery (the sender lost the answer
 * and sent the same message again, maybe signed again with a fresh timestamp): the handlers
 * process it, and the state machine answers it like any duplicate. The same id with another
 * body is refused: a message id names one message (Standard Webhooks).
 *
 * The default keeps them in process memory. With several web instances behind a load balancer,
 * use {@link createPostgresReplayStore} (a table of the same database) or another shared store.
 *
 * @example
 * ```ts
 * import type { ReplayStore } from 'pipeline-status-sdk/server'
 * // Your Redis client (node-redis's shape).
 * declare const redis: {
 *   set(key: string, value: string, options: { NX: true; PXAT: number }): Promise<string | null>
 *   get(key: string): Promise<string | null>
 * }
 * // Redis: SET NX keeps the first fingerprint; a later claim compares against it.
 * const redisReplayStore: ReplayStore = {
 *   claim: async (messageId, fingerprint, expiresAt) =>
 *     (await redis.set(messageId, fingerprint, { NX: true, PXAT: expiresAt })) === 'OK' ||
 *     (await redis.get(messageId)) === fingerprint,
 * }
 * ```
 */
export interface ReplayStore {
  /**
   * Records `messageId` with `fingerprint` (the body's SHA-256, base64) until `expiresAt`
   * (milliseconds since the epoch), or extends the record when the same fingerprint is already
   * recorded. Returns `false` when the id is recorded, not yet expired, with another fingerprint.
   */
  claim(messageId: string, fingerprint: string, expiresAt: number): boolean | Promise<boolean>
}

/** Options of {@link createMemoryReplayStore}. */
export interface MemoryReplayStoreOptions {
  /**
   * The most message ids kept; past it the oldest are dropped (they are close to expiry anyway).
   * @default 100_000
   */
  maxEntries?: number | undefined
  /**
   * The current time in milliseconds since the epoch.
   * @default Date.now
   */
  now?: (() => number) | undefined
}

/**
 * A {@link ReplayStore} in process memory, with expiry and a size bound. It protects one
 * process only; several web instances need a shared store ({@link createPostgresReplayStore}).
 *
 * @example
 * ```ts
 * import { createMemoryReplayStore } from 'pipeline-status-sdk/server'
 * const replayStore = createMemoryReplayStore({ maxEntries: 10_000 })
 * ```
 */
export function createMemoryReplayStore(options: MemoryReplayStoreOptions = {}): ReplayStore {
  const maxEntries = options.maxEntries ?? 100_000
  const now = options.now ?? Date.now
  const entries = new Map<string, { fingerprint: string; expiresAt: number }>()
  let sweepAt = 0

  const sweep = (time: number): void => {
    for (const [key, entry] of entries) if (entry.expiresAt <= time) entries.delete(key)
  }

  return {
    claim(messageId, fingerprint, expiresAt) {
      const time = now()
      if (time >= sweepAt) {
        sweep(time)
        sweepAt = time + 60_000
      }
      const known = entries.get(messageId)
      if (known !== undefined && known.expiresAt > time) {
        if (known.fingerprint !== fingerprint) return false
        known.expiresAt = Math.max(known.expiresAt, expiresAt)
        return true
      }
      entries.delete(messageId)
      entries.set(messageId, { fingerprint, expiresAt })
      // Maps iterate in insertion order, so the first keys are the oldest.
      for (const oldest of entries.keys()) {
        if (entries.size <= maxEntries) break
        entries.delete(oldest)
      }
      return true
    },
  }
}

/** The raw-SQL part of a Prisma client (or transaction client) that {@link createPostgresReplayStore} uses. */
export interface ReplayStoreSqlClient {
  /** Prisma's `$queryRawUnsafe`: runs one parameterized statement and returns its rows. */
  $queryRawUnsafe<T = unknown>(query: string, ...values: unknown[]): PromiseLike<T>
}

/** Options of {@link createPostgresReplayStore}. */
export interface PostgresReplayStoreOptions {
  /**
   * The table, as created by the package's migration `20261130090000_webhook_replay` (the
   * `WebhookMessage` model of `prisma/schema.prisma`). A schema-qualified name is written
   * `schema.Table`; each part is quoted.
   * @default 'WebhookMessage'
   */
  table?: string | undefined
  /**
   * The current time in milliseconds since the epoch; expired rows count as absent.
   * @default Date.now
   */
  now?: (() => number) | undefined
  /**
   * How often expired rows are deleted, in milliseconds, at most once per interval per process
   * and never on the request's path (a failed cleanup is retried at the next interval).
   * @default 60_000
   */
  cleanupIntervalMs?: number | undefined
}

/**
 * A {@link ReplayStore} in a PostgreSQL table, shared by every web instance on the same
 * database: one `INSERT … ON CONFLICT` per signed request, atomic across instances. Create the
 * table with the package's migrations (`prisma migrate deploy`), or copy the `WebhookMessage`
 * model into your schema.
 *
 * A database error of a claim is classified like `PrismaStore`'s: an unreachable
 * database answers 503 `database_unavailable`, a missing `WebhookMessage` table 503
 * `database_not_migrated` naming the table and `prisma migrate deploy` (logged once).
 *
 * @example
 * ```ts
 * import { createPipelineStatusHandlers, createPostgresReplayStore } from 'pipeline-status-sdk/server'
 * const handlers = createPipelineStatusHandlers({
 *   prisma,
 *   signing: { secret: process.env.WEBHOOK_SIGNING_SECRET!, replayStore: createPostgresReplayStore(prisma) },
 * })
 * ```
 */
export function createPostgresReplayStore(client: ReplayStoreSqlClient, options: PostgresReplayStoreOptions = {}): ReplayStore {
  const table = quoteTable(options.table ?? 'WebhookMessage')
  const now = options.now ?? Date.now
  const cleanupIntervalMs = options.cleanupIntervalMs ?? 60_000
  // One statement: a new id is inserted; an expired row or the same fingerprint is taken over
  // (the expiry only grows for the same message); another fingerprint leaves the row as it is
  // and returns nothing. ON CONFLICT serializes concurrent claims of one id across instances.
  const claimSql =
    `INSERT INTO ${table} AS t ("id", "fingerprint", "expiresAt") VALUES ($1, $2, $3::timestamptz) ` +
    `ON CONFLICT ("id") DO UPDATE SET "fingerprint" = EXCLUDED."fingerprint", "expiresAt" = CASE ` +
    `WHEN t."fingerprint" = EXCLUDED."fingerprint" AND t."expiresAt" > $4::timestamptz THEN GREATEST(t."expiresAt", EXCLUDED."expiresAt") ` +
    `ELSE EXCLUDED."expiresAt" END ` +
    `WHERE t."expiresAt" <= $4::timestamptz OR t."fingerprint" = EXCLUDED."fingerprint" RETURNING 1 AS "claimed"`
  const cleanupSql = `DELETE FROM ${table} WHERE "expiresAt" <= $1::timestamptz`
  let cleanupAt = now() + cleanupIntervalMs

  return {
    async claim(messageId, fingerprint, expiresAt) {
      const time = now()
      if (time >= cleanupAt) {
        cleanupAt = time + cleanupIntervalMs
        void Promise.resolve(client.$queryRawUnsafe(cleanupSql, new Date(time).toISOString())).catch(() => undefined)
      }
      try {
        const rows = await client.$queryRawUnsafe<unknown[]>(
          claimSql,
          messageId,
          fingerprint,
          // ISO text with `Z`, cast in the SQL: a driver's `Date` handling may shift it by the session's TimeZone.
          new Date(expiresAt).toISOString(),
          new Date(time).toISOString(),
        )
        return rows.length > 0
      } catch (error) {
        // Classified like the Prisma store's errors: the handlers answer 503 database_unavailable
        // or database_not_migrated (naming the missing table, logged once), not 500 per request.
        throw toStoreError(error)
      }
    },
  }
}

function quoteTable(name: string): string {
  const parts = name.split('.')
  if (parts.some((part) => part === '')) throw new ServerConfigurationError(`Invalid replay store table name: ${name}`)
  return parts.map(quoteIdentifier).join('.')
}
