import { describe, expect, it } from 'vitest'
import { StoreUnavailableError } from '../../core/store.js'
import type { SqlExecutor } from './adapters/sql-executor.js'
import { CATALOGUE_TABLE_PROBE, CatalogueTable, namesCatalogueTable } from './catalogue-table.js'
import { STORE_FUNCTIONS_RECHECK_MS } from './function-calls.js'
import { resolveTableNames } from './table-names.js'

const names = resolveTableNames({}, { schema: 'app', names: { PipelineCatalogue: { table: 'catalogues', columns: { digest: 'key' } } } })

/** An executor that answers the probe with `present`, or throws `failProbe`; `asked` holds each probe's values. */
function database() {
  const db = { present: false, failProbe: undefined as unknown, asked: [] as unknown[][] }
  const sql: SqlExecutor = {
    async query<Row>(text: string, values: unknown[]): Promise<Row[]> {
      expect(text).toBe(CATALOGUE_TABLE_PROBE)
      db.asked.push(values)
      if (db.failProbe) throw db.failProbe
      return [{ ok: db.present }] as Row[]
    },
  }
  return { db, sql }
}

function logger() {
  const messages: string[] = []
  return { messages, logger: () => ({ warn: (message: string) => void messages.push(message), error: () => undefined }) }
}

describe('CatalogueTable', () => {
  it('asks for the table by its resolved names (@@map, @map, schema)', async () => {
    const { db, sql } = database()
    db.present = true
    const table = new CatalogueTable(sql, names, logger().logger)
    expect(table.name).toBe('"app"."catalogues"')
    expect(await table.usable()).toBe(true)
    expect(db.asked).toEqual([['"app"."catalogues"', ['"key"', '"stages"']]])
  })

  it('missing: unusable, said once with the fix; asked again only after the recheck interval, then usable, and that said once', async () => {
    const { db, sql } = database()
    const log = logger()
    let now = 1_000_000
    const table = new CatalogueTable(sql, names, log.logger, () => now)
    expect(await table.usable()).toBe(false)
    expect(await table.usable()).toBe(false)
    expect(db.asked).toHaveLength(1)
    expect(log.messages).toHaveLength(1)
    expect(log.messages[0]).toContain('send each run\'s catalogue whole')
    expect(log.messages[0]).toContain('the database has no table "app"."catalogues" with columns "key", "stages"')
    expect(log.messages[0]).toContain('20261207110000_pipeline_catalogue')
    expect(log.messages[0]).toContain('names.PipelineCatalogue')

    // The migration is applied while the app runs.
    db.present = true
    now += STORE_FUNCTIONS_RECHECK_MS - 1
    expect(await table.usable()).toBe(false)
    expect(db.asked).toHaveLength(1)
    now += 1
    expect(await table.usable()).toBe(true)
    expect(await table.usable()).toBe(true)
    expect(db.asked).toHaveLength(2)
    expect(log.messages).toHaveLength(2)
    expect(log.messages[1]).toContain('the database has "app"."catalogues" now')
  })

  it('gone while in use (42P01, 42703): unusable at once, said once; other errors are not its business', async () => {
    const { db, sql } = database()
    db.present = true
    const log = logger()
    let now = 1_000_000
    const table = new CatalogueTable(sql, names, log.logger, () => now)
    expect(await table.usable()).toBe(true)
    expect(await table.lost(Object.assign(new Error('duplicate key'), { code: '23505' }))).toBe(false)
    expect(await table.usable()).toBe(true)
    // As the store receives it: classified, the driver's error as its cause.
    const dropped = new StoreUnavailableError('not migrated', { cause: Object.assign(new Error('relation "app.catalogues" does not exist'), { code: '42P01' }) })
    expect(await table.lost(dropped)).toBe(true)
    expect(await table.lost(Object.assign(new Error('column c.key does not exist'), { code: '42703' }))).toBe(true)
    expect(await table.usable()).toBe(false)
    expect(db.asked).toHaveLength(1)
    expect(log.messages).toHaveLength(1)
    expect(log.messages[0]).toContain('a statement found it gone (')
    now += STORE_FUNCTIONS_RECHECK_MS
    expect(await table.usable()).toBe(true)
  })

  it("another table's missing column or table (the run's migration not applied) is not its: thrown as it is, the table kept in use, nothing said", async () => {
    const { db, sql } = database()
    db.present = true
    const log = logger()
    const table = new CatalogueTable(sql, names, log.logger)
    expect(await table.usable()).toBe(true)
    const failed = (code: string, message: string) =>
      new StoreUnavailableError('not migrated', { cause: Object.assign(new Error(message), { code, severity: 'ERROR' }) })
    for (const [code, message] of [
      ['42703', 'column "tags" of relation "pipeline_runs" does not exist'],
      ['42703', 'column r.version does not exist'],
      ['42703', 'column c.version does not exist'],
      ['42P01', 'relation "app.pipeline_runs" does not exist'],
      ['42P01', 'relation "catalogues" does not exist'.replace('catalogues', 'other.catalogues')],
      ['42501', 'permission denied for table pipeline_runs'],
    ] as const) {
      expect({ message, lost: await table.lost(failed(code, message)) }).toEqual({ message, lost: false })
    }
    // Through Prisma's driver adapter: the words are its originalMessage.
    const viaPrisma = Object.assign(new Error('Invalid `prisma.$queryRawUnsafe()` invocation'), {
      code: 'P2010',
      meta: { driverAdapterError: { cause: { kind: 'ColumnNotFound', originalCode: '42703', originalMessage: 'column "metadata" of relation "pipeline_runs" does not exist' } } },
    })
    expect(await table.lost(viaPrisma)).toBe(false)
    // Words that name no table: the database is asked; the table is there, so not its.
    expect(await table.lost(failed('42703', 'column "version" does not exist'))).toBe(false)
    expect(db.asked).toHaveLength(2)
    expect(await table.usable()).toBe(true)
    expect(log.messages).toEqual([])
    // The same words while the table is gone: its.
    db.present = false
    expect(await table.lost(failed('42703', 'column "version" does not exist'))).toBe(true)
    expect(await table.usable()).toBe(false)
    expect(log.messages).toEqual([expect.stringContaining('a statement found it gone (not migrated)')])
  })

  it("names the table by PostgreSQL's words: the relation, the column's relation, the lookup's alias, the privilege", () => {
    const table = { schema: 'app', name: 'catalogues' }
    const columns = ['key', 'stages']
    expect(namesCatalogueTable('relation "catalogues" does not exist', table, columns)).toBe(true)
    expect(namesCatalogueTable('relation "app.catalogues" does not exist', table, columns)).toBe(true)
    expect(namesCatalogueTable('relation "PipelineRun" does not exist', table, columns)).toBe(false)
    expect(namesCatalogueTable('column "stages" of relation "catalogues" does not exist', table, columns)).toBe(true)
    expect(namesCatalogueTable('column "stages" of relation "StageOutput" does not exist', table, columns)).toBe(false)
    expect(namesCatalogueTable('column c.key does not exist', table, columns)).toBe(true)
    expect(namesCatalogueTable('column s.key does not exist', table, columns)).toBe(false)
    expect(namesCatalogueTable('permission denied for table catalogues', table, columns)).toBe(true)
    expect(namesCatalogueTable('permission denied for table PipelineRun', table, columns)).toBe(false)
    // No table named, or words of another language: not known from the words.
    expect(namesCatalogueTable('column "key" does not exist', table, columns)).toBeUndefined()
    expect(namesCatalogueTable('Relation »catalogues« existiert nicht', table, columns)).toBeUndefined()
  })

  it('a database that cannot be reached: thrown, and asked again next time; another failure counts as missing', async () => {
    const { db, sql } = database()
    const log = logger()
    const table = new CatalogueTable(sql, names, log.logger)
    db.failProbe = new StoreUnavailableError('unreachable')
    await expect(table.usable()).rejects.toBeInstanceOf(StoreUnavailableError)
    db.failProbe = new Error('permission denied for table pg_attribute')
    expect(await table.usable()).toBe(false)
    expect(db.asked).toHaveLength(2)
    expect(log.messages).toEqual([expect.stringContaining('asking the database for it failed (permission denied for table pg_attribute)')])
  })
})
