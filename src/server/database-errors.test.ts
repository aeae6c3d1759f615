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
      'The database "app" does not exist: create it, then run `npx pipeline-status migrate` (or `prisma migrate deploy`',
    ],
    ['a pg error for a missing schema', { code: '3F000', message: 'schema "pipeline" does not exist' }, 'The schema "pipeline" does not exist'],
    [
      "a table Prisma qualified with the adapter's schema",
      adapterError('P2021', { originalCode: '42P01', originalMessage: 'relation "public.PipelineRun" does not exist', kind: 'TableDoesNotExist', table: 'public.PipelineRun' }),
      'The table "PipelineRun" does not exist in schema "public"',
    ],
  ])('names %s', (_, error, expected) => {
    const description = describeMissingSchema(error)
    expect(description).toContain(expected)
    expect(description).toContain('prisma migrate deploy')
    const storeError = toStoreError(error)
    expect(isStoreUnavailableError(storeError) && storeError.code).toBe('database_not_migrated')
  })

  it("names the schema queried, and the adapter's and the store's schema option for tables migrated into another one", () => {
    // `pipeline-status migrate` honoured `?schema=pipeline`; @prisma/adapter-pg ignores it and Prisma queries "public".
    const prisma = adapterError('P2021', { originalCode: '42P01', originalMessage: 'relation "public.PipelineRun" does not exist', kind: 'TableDoesNotExist', table: 'public.PipelineRun' })
    expect(describeMissingSchema(prisma)).toBe(
      'The table "PipelineRun" does not exist in schema "public": the database lacks pipeline-status-sdk migrations. ' +
        'Run `npx pipeline-status migrate` or `prisma migrate deploy` with the migrations of prisma/migrations (copy any new ones from the package after an upgrade). ' +
        'If the migrations created the tables in another PostgreSQL schema (`pipeline-status migrate --schema NAME`, or `?schema=NAME` in the URL, ' +
        'which @prisma/adapter-pg ignores, so it queries "public"), name that schema in the adapter\'s `schema` option and the store\'s: ' +
        "new PrismaPg({ connectionString }, { schema: 'NAME' }) and createPrismaStore({ prisma, schema: 'NAME' })",
    )
    // The store's own SQL names no schema: PostgreSQL looked in the search_path.
    expect(describeMissingSchema({ code: '42P01', message: 'relation "PipelineRun" does not exist' })).toMatch(
      /^The table "PipelineRun" does not exist in the schema of the connection's search_path \(normally "public"\): .*which @prisma\/adapter-pg ignores\), name that schema in the adapter's `schema` option/,
    )
    // A missing column is an older schema after an upgrade, not another schema.
    expect(describeMissingSchema({ code: '42703', message: 'column "version" of relation "PipelineRun" does not exist' })).not.toContain('another PostgreSQL schema')
  })

  it.each([
    ['a unique violation', adapterError('P2002', { originalCode: '23505', originalMessage: 'duplicate key value' })],
    ['an unreachable database', { code: 'ECONNREFUSED' }],
    ['a plain error', new Error('boom')],
  ])('is undefined for %s', (_, error) => {
    expect(describeMissingSchema(error)).toBeUndefined()
  })
})
