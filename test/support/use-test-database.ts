/**
 * The set-up of a test file that drives the Prisma store on one database: the database and the
 * store made once before the file's tests, every run deleted after each test (a stale-run sweep
 * looks at the whole table, so each test must see only its own runs), the database closed (and,
 * on PostgreSQL, dropped) after them.
 */
import { createPrismaStore, type PrismaStore } from 'pipeline-status-sdk/server'
import { afterAll, afterEach, beforeAll } from 'vitest'
import type { PrismaClient } from '../../src/generated/prisma/client.js'
import { createTestDatabase, type TestDatabase, type TestDatabaseOptions } from '../setup/test-database.js'

/** What {@link useTestDatabase} gives a test file, set once its `beforeAll` has run. */
export interface TestDatabaseFixture {
  /** The file's database. */
  readonly db: TestDatabase
  /** A Prisma store on it. */
  readonly store: PrismaStore<PrismaClient>
}

/** Registers the file's database set-up (see the module comment) and gives its database and store. */
export function useTestDatabase(options: TestDatabaseOptions = { poolSize: 10 }): TestDatabaseFixture {
  let current: TestDatabaseFixture | undefined
  const now = (): TestDatabaseFixture => {
    if (!current) throw new Error('useTestDatabase: the database is not set up (beforeAll failed or has not run)')
    return current
  }
  beforeAll(async () => {
    const db = await createTestDatabase(options)
    current = { db, store: createPrismaStore({ prisma: db.prisma }) }
  })
  afterEach(async () => {
    await now().db.prisma.pipelineRun.deleteMany()
  })
  afterAll(() => current?.db.close())
  return {
    get db() {
      return now().db
    },
    get store() {
      return now().store
    },
  }
}
