import { describe, expect, it } from 'vitest'
import { isStoreUnavailableError } from '../core/store.js'
import { describeMissingSchema, toStoreError } from './database-errors.js'

/** A Prisma error around a driver adapter error, as Prisma 7 with `@prisma/adapter-pg` throws them. */
function adapterError(code: string, cause: Record<string, unknown>) {
  return Object.assign(new Error(`prisma ${code}`), {
    name: 'PrismaClientKnownRequestError',
    code,
    meta: { driverAdapterError: { name: 'DriverAdapterError', cause } },
  })
}

describe('describeMissingSchema', () => {
  it.each([
    [
      'a missing table (raw query, P2010)',
      adapterError('P2010', { originalCode: '42P01', originalMessage: 'relation "PipelineRun" does not exist', kind: 'TableDoesNotExist', table: 'PipelineRun' }),
      'The table "PipelineRun" does not exist',
    ],
    [
      'a missing column in a SELECT, with its alias',
      adapterError('P2010', { originalCode: '42703', originalMessage: 'column r.version does not exist', kind: 'ColumnNotFound', column: 'r.version' }),
      'The column "version" does not exist',
    ],
    [
      'the same column in an UPDATE',
      adapterError('P2010', { originalCode: '42703', originalMessage: 'column "version" of relation "PipelineRun" does not exist' }),
      'The column "version" does not exist',
    ],
    [
      'a missing database (P1003)',
      adapterError('P1003', { originalCode: '3D000', originalMessage: 'database "app" does not exist', kind: 'DatabaseDoesNotExist', db: 'app' }),
      'The database "app" does not exist: create it, then run `prisma migrate deploy`',
    ],
    ['a pg error for a missing schema', { code: '3F000', message: 'schema "pipeline" does not exist' }, 'The schema "pipeline" does not exist'],
  ])('names %s', (_, error, expected) => {
    const description = describeMissingSchema(error)
    expect(description).toContain(expected)
    expect(description).toContain('prisma migrate deploy')
    const storeError = toStoreError(error)
    expect(isStoreUnavailableError(storeError) && storeError.code).toBe('database_not_migrated')
  })

  it.each([
    ['a unique violation', adapterError('P2002', { originalCode: '23505', originalMessage: 'duplicate key value' })],
    ['an unreachable database', { code: 'ECONNREFUSED' }],
    ['a plain error', new Error('boom')],
  ])('is undefined for %s', (_, error) => {
    expect(describeMissingSchema(error)).toBeUndefined()
  })
})
