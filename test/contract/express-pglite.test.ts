/**
 * The contract suite against the Express router on embedded PGlite through PrismaStore, the
 * database the demo and a fresh clone use. (The Express router on real PostgreSQL runs the same
 * suite in test/server/express.test.ts.)
 */
import { PrismaPg } from '@prisma/adapter-pg'
import { createPrismaStore, type PrismaStore } from 'pipeline-status-sdk/server'
import { afterAll, beforeAll } from 'vitest'
import { PrismaClient } from '../../src/generated/prisma/client.js'
import { createTestDatabase, type TestDatabase } from '../setup/test-database.js'
import { describeContract } from './suite/index.js'
import { expressTarget } from './targets.js'

let db: TestDatabase
let store: PrismaStore<TestDatabase['prisma']>
const unreachable = new PrismaClient({ adapter: new PrismaPg({ connectionString: 'postgresql://postgres@127.0.0.1:1/none' }) })

beforeAll(async () => {
  db = await createTestDatabase({ engine: 'pglite' })
  store = createPrismaStore({ prisma: db.prisma, maxWaitMs: 20_000, timeoutMs: 30_000 })
})
afterAll(async () => {
  await unreachable.$disconnect()
  await db?.close()
})

describeContract(
  'express router on embedded PGlite over a port',
  () =>
    expressTarget({
      store: () => store,
      unavailable: () => createPrismaStore({ prisma: unreachable, maxWaitMs: 2_000 }),
    }),
)
