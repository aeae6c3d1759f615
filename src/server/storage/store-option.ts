import type { Store } from '../../core/store.js'
import { storeWrites } from '../../core/store-writes.js'
import { isPositive } from '../../internal/is-positive.js'
import { ServerConfigurationError } from '../configuration-error.js'
import type { PrismaStoreClient } from './prisma-client.js'
import { lendLogger, PrismaStore } from './prisma-store.js'
import type { Logger } from '../../internal/logger.js'
import { describeReceived } from '../../internal/received-value.js'

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
