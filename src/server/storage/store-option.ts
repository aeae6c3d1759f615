import type { Store } from '../../core/store.js'
import { storeWrites } from '../../core/store-writes.js'
import { isPositive } from '../../internal/is-positive.js'
import { ServerConfigurationError } from '../configuration-error.js'
import type { PrismaStoreClient } from './prisma-client.js'
import { lendLogger, PrismaStore } from './prisma-store.js'
import type { Logger } from '../../internal/logger.js'
import { describeReceived } from '../../internal/received-value.js'
import type { ReadReplicaOptions } from '../handler-options.js'

/**
 * The store a factory was given: its `store`, or a `PrismaStore` on its `prisma` client, with
 * its write protocol chosen (`core/store-writes.ts`). A
 * PrismaStore without its own `logger` (built here, or passed without one) warns through
 * `logger`, the factory's.
 * `owner` names the factory in the error, e.g. `' to the stale-run sweeper'`.
 * Internal: shared by the handlers and the stale-run sweeper.
 */
export function resolveStore(options: object, logger: Logger, owner = ''): Store<unknown> {
  const { store, prisma } = options as { store?: Store<unknown> | undefined; prisma?: PrismaStoreClient | undefined }
  if (store && prisma) throw new ServerConfigurationError(`Pass either \`store\` or \`prisma\`${owner}, not both`)
  if (store) {
    lendLogger(store, logger)
    // Its write protocol is chosen now, when the handlers (or the sweeper) are created.
    storeWrites(store)
    return store
  }
  if (prisma) {
    const created = new PrismaStore(prisma, { logger })
    storeWrites(created)
    return created
  }
  throw new ServerConfigurationError(`Pass \`store\` (e.g. a MemoryStore or PrismaStore) or \`prisma\` (your PrismaClient)${owner}`)
}

/** Checks a count option (a limit, a size, milliseconds of a timer). Internal. */
export function positiveInteger(name: string, value: number): number {
  if (!isPositive(value, { integer: true })) {
    throw new ServerConfigurationError(`${name} must be a positive whole number, got ${describeReceived(value)}`)
  }
  return value
}

/** The default of `readReplica.queryTimeoutMs`, in milliseconds. */
const DEFAULT_REPLICA_QUERY_TIMEOUT_MS = 2_000

/**
 * The store that reads the replica of `readReplica` (the handlers' option), or `undefined`
 * without one: `store` as given, a `PrismaStore` on `prisma`, or the primary's `PrismaStore` (or
 * the one built on the handlers' `prisma`) on `pool`. Internal.
 */
export function resolveReadReplica(readReplica: ReadReplicaOptions | undefined, primary: Store<unknown>, logger: Logger): Store<unknown> | undefined {
  if (readReplica === undefined) return undefined
  const forms = [readReplica.pool, readReplica.prisma, readReplica.store].filter((form) => form !== undefined).length
  if (forms !== 1) {
    throw new ServerConfigurationError(
      `readReplica takes exactly one of pool (a pg pool on the replica), prisma (a PrismaClient on the replica) or store, got ${forms === 0 ? 'none' : forms}`,
    )
  }
  const queryTimeoutMs = positiveInteger('readReplica.queryTimeoutMs', readReplica.queryTimeoutMs ?? DEFAULT_REPLICA_QUERY_TIMEOUT_MS)
  if (readReplica.store) return readReplica.store
  if (readReplica.prisma) return new PrismaStore(readReplica.prisma, { logger, queryTimeoutMs })
  if (!(primary instanceof PrismaStore)) {
    throw new ServerConfigurationError(
      'readReplica.pool runs the PrismaStore\'s SQL on the replica, so the handlers need `prisma` or a PrismaStore as `store`; for another store pass readReplica: { store } (a store that reads the replica)',
    )
  }
  return primary.onReplica(readReplica.pool, queryTimeoutMs)
}
