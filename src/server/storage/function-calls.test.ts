import { describe, expect, it } from 'vitest'
import { StoreUnavailableError } from '../../core/store.js'
import type { SqlExecutor } from './adapters/sql-executor.js'
import { FunctionCalls, STORE_FUNCTIONS_RECHECK_MS } from './function-calls.js'
import { STORE_FUNCTIONS_PROBE, storeFunctions } from './sql/functions.js'

const functions = storeFunctions()

/** An executor that answers the probe with `present` and every function call with `[{ row: 'called' }]`, or throws `failCall`. */
function database() {
  const db = {
    present: false,
    prepares: false,
    failCall: undefined as unknown,
    failProbe: undefined as unknown,
    probes: 0,
    calls: 0,
  }
  const sql: SqlExecutor = {
    get prepares() {
      return db.prepares
    },
    async query<Row>(text: string): Promise<Row[]> {
      if (text === STORE_FUNCTIONS_PROBE) {
        db.probes++
        if (db.failProbe) throw db.failProbe
        return [{ ok: db.present }] as Row[]
      }
      db.calls++
      if (db.failCall) throw db.failCall
      return [{ row: 'called' }] as Row[]
    },
  }
  return { db, sql }
}

function logger() {
  const messages: string[] = []
  return { messages, logger: () => ({ warn: (message: string) => void messages.push(message), error: () => undefined }) }
}

const read = (calls: FunctionCalls) => calls.call<{ row: string }>((f) => f.readRunStage, ['run', 1])

describe('FunctionCalls', () => {
  it('missing: inline, said once; asked again only after the recheck interval, then called, and that said once', async () => {
    const { db, sql } = database()
    const log = logger()
    let now = 1_000_000
    const calls = new FunctionCalls(sql, functions, log.logger, () => now)
    expect(await read(calls)).toBeUndefined()
    expect(await read(calls)).toBeUndefined()
    expect(db.probes).toBe(1)
    expect(log.messages).toHaveLength(1)
    expect(log.messages[0]).toContain('send their statements inline')
    expect(log.messages[0]).toContain('the database lacks one of the functions')
    expect(log.messages[0]).toContain('npx pipeline-status migrate')

    // The migration is applied while the app runs.
    db.present = true
    now += STORE_FUNCTIONS_RECHECK_MS - 1
    expect(await read(calls)).toBeUndefined()
    expect(db.probes).toBe(1)
    now += 1
    expect(await read(calls)).toEqual([{ row: 'called' }])
    expect(await read(calls)).toEqual([{ row: 'called' }])
    expect(db.probes).toBe(2)
    expect(db.calls).toBe(2)
    expect(log.messages).toHaveLength(2)
    expect(log.messages[1]).toContain('call them again')
  })

  it('dropped while in use (42883): that call goes inline, said once, and they are asked for again later', async () => {
    const { db, sql } = database()
    const log = logger()
    let now = 0
    const calls = new FunctionCalls(sql, functions, log.logger, () => now)
    db.present = true
    expect(await read(calls)).toEqual([{ row: 'called' }])
    expect(log.messages).toEqual([])
    // As Prisma wraps it: the driver adapter's error, with PostgreSQL's SQLSTATE, inside its own.
    db.failCall = Object.assign(new Error('function does not exist'), {
      code: 'P2010',
      meta: { driverAdapterError: { cause: { originalCode: '42883', kind: 'postgres' } } },
    })
    db.present = false
    expect(await read(calls)).toBeUndefined()
    expect(await read(calls)).toBeUndefined()
    expect(db.calls).toBe(2)
    expect(db.probes).toBe(1)
    expect(log.messages).toHaveLength(1)
    expect(log.messages[0]).toContain('a call found no such function')
    now += STORE_FUNCTIONS_RECHECK_MS
    expect(await read(calls)).toBeUndefined()
    expect(db.probes).toBe(2)
    expect(log.messages).toHaveLength(1)
  })

  it('any other error of a call is thrown as it is', async () => {
    const { db, sql } = database()
    db.present = true
    const calls = new FunctionCalls(sql, functions, logger().logger)
    db.failCall = Object.assign(new Error('deadlock detected'), { code: '40P01' })
    await expect(read(calls)).rejects.toThrow('deadlock detected')
  })

  it('an unreachable database while asking: thrown, nothing said, asked again next time', async () => {
    const { db, sql } = database()
    const log = logger()
    const calls = new FunctionCalls(sql, functions, log.logger)
    db.failProbe = new StoreUnavailableError('The database did not answer within 5000 ms')
    await expect(read(calls)).rejects.toBeInstanceOf(StoreUnavailableError)
    db.failProbe = undefined
    db.present = true
    expect(await read(calls)).toEqual([{ row: 'called' }])
    expect(db.probes).toBe(2)
    expect(log.messages).toEqual([])
  })

  it('named statements: never asks, always inline, says nothing; other names: never asks, says so once', async () => {
    const { db, sql } = database()
    db.prepares = true
    const log = logger()
    expect(await read(new FunctionCalls(sql, functions, log.logger))).toBeUndefined()
    expect(db.probes).toBe(0)
    expect(log.messages).toEqual([])
    db.prepares = false
    const renamed = new FunctionCalls(sql, undefined, log.logger)
    expect(await read(renamed)).toBeUndefined()
    expect(await read(renamed)).toBeUndefined()
    expect(db.probes).toBe(0)
    expect(log.messages).toHaveLength(1)
    expect(log.messages[0]).toContain('other names than the defaults (@@map, @map)')
  })
})
