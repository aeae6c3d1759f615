import { describe, expect, it } from 'vitest'
import { StoreUnavailableError } from '../../core/store.js'
import { isDatabaseUnreachableError } from '../database-errors.js'
import type { PrismaStoreClient } from './prisma-client.js'
import { PrismaStore } from './prisma-store.js'

function prismaError(code: string, meta?: Record<string, unknown>) {
  return Object.assign(new Error(`prisma ${code}`), { name: 'PrismaClientKnownRequestError', code, meta })
}

/** A client whose every call fails with `error`; `$transaction` optionally enters its callback first. */
function failingClient(error: unknown, options: { enterCallback?: boolean } = {}): PrismaStoreClient {
  const fail = async () => {
    throw error
  }
  const delegates = {
    pipelineRun: { findUnique: fail, findUniqueOrThrow: fail, findMany: fail, createMany: fail, update: fail },
    stageOutput: { findUnique: fail, upsert: fail },
  }
  return {
    ...delegates,
    $queryRawUnsafe: fail,
    $transaction: async (fn) => {
      if (options.enterCallback) return fn({ ...delegates, $queryRawUnsafe: fail })
      throw error
    },
  }
}

describe('isDatabaseUnreachableError', () => {
  it.each([
    ['P1001 from a query', prismaError('P1001')],
    ['P1017 (server closed the connection)', prismaError('P1017')],
    ['P2024 (no pooled connection in time)', prismaError('P2024')],
    [
      "a raw query's P2010 caused by an unreachable database",
      prismaError('P2010', { driverAdapterError: { name: 'DriverAdapterError', cause: { kind: 'DatabaseNotReachable' } } }),
    ],
    ['an initialization error', Object.assign(new Error('init'), { errorCode: 'P1001' })],
    ['ECONNREFUSED deep in the cause chain', new Error('a', { cause: new Error('b', { cause: { code: 'ECONNREFUSED' } }) })],
    ['PostgreSQL shutting down (57P01)', { kind: 'postgres', code: '57P01' }],
    ['a connection exception (08006)', { cause: { kind: 'postgres', code: '08006' } }],
  ])('is true for %s', (_, error) => {
    expect(isDatabaseUnreachableError(error)).toBe(true)
  })

  it.each([
    ['a unique violation', prismaError('P2002')],
    ['a record not found', prismaError('P2025')],
    ['a failed raw query', prismaError('P2010', { driverAdapterError: { cause: { kind: 'postgres', code: '22003' } } })],
    ['a plain error', new Error('boom')],
    ['not an error', 'ECONNREFUSED'],
    ['a cyclic cause chain', (() => { const e: { cause?: unknown } = {}; e.cause = e; return e })()],
  ])('is false for %s', (_, error) => {
    expect(isDatabaseUnreachableError(error)).toBe(false)
  })
})

describe('PrismaStore errors', () => {
  it('wraps connectivity errors in StoreUnavailableError with the original as cause', async () => {
    const cause = prismaError('P1001')
    const store = new PrismaStore(failingClient(cause))
    for (const attempt of [
      store.getRun('r'),
      store.insertRun({ id: 'r' } as never),
      store.listStaleRuns(new Date(), 10),
      store.transaction(async () => 1),
    ]) {
      const error = await attempt.catch((e: unknown) => e)
      expect(error).toBeInstanceOf(StoreUnavailableError)
      expect((error as Error).cause).toBe(cause)
    }
  })

  it('passes every other error through unchanged', async () => {
    const cause = prismaError('P2025')
    const store = new PrismaStore(failingClient(cause, { enterCallback: true }))
    await expect(store.getRun('r')).rejects.toBe(cause)
    await expect(store.listStaleRuns(new Date(), 10)).rejects.toBe(cause)
    await expect(store.transaction((tx) => tx.lockRun('r'))).rejects.toBe(cause)
  })

  it('treats a transaction that could not start in maxWait, or ran out of its timeout, as unavailable', async () => {
    const timeout = prismaError('P2028')
    const notStarted = await new PrismaStore(failingClient(timeout)).transaction(async () => 1).catch((e: unknown) => e)
    expect(notStarted).toBeInstanceOf(StoreUnavailableError)
    expect((notStarted as Error).message).toBe('No connection within 5000 ms')
    const started = new PrismaStore(failingClient(timeout, { enterCallback: true }))
    const expired = await started.transaction((tx) => tx.lockRun('r')).catch((e: unknown) => e)
    expect(expired).toBeInstanceOf(StoreUnavailableError)
    expect((expired as Error).cause).toBe(timeout)
  })
})

describe('createPrismaStore options', () => {
  it('refuses a schema name PostgreSQL would truncate (over 63 bytes as UTF-8), naming the limit; 63 bytes is taken', () => {
    const client = failingClient(new Error('never called'))
    expect(() => new PrismaStore(client, { schema: `${'日'.repeat(21)}x` })).toThrow(
      'createPrismaStore: schema name "日日日日日日日日日日日日日日日日日日日日日x" is 64 bytes in UTF-8, over PostgreSQL\'s limit of 63 bytes',
    )
    expect(() => new PrismaStore(client, { schema: 'x'.repeat(64) })).toThrow('is 64 bytes in UTF-8')
    expect(new PrismaStore(client, { schema: '日'.repeat(21) })).toBeInstanceOf(PrismaStore)
  })
})
