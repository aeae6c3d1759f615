import { readFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { listMigrations } from '../../examples/shared/database.js'
import { readDmmf, SCHEMA_PATH } from '../setup/schema-dmmf.js'
import { expectedShape, introspectShape, type SchemaShape } from '../setup/schema-shape.js'
import { createTestDatabase, type TestDatabase } from '../setup/test-database.js'

const schema = readFileSync(SCHEMA_PATH, 'utf8')

let db: TestDatabase
let migrated: SchemaShape

beforeAll(async () => {
  db = await createTestDatabase()
  migrated = await introspectShape((sql) => db.prisma.$queryRawUnsafe(sql))
})
afterAll(() => db?.close())

describe('prisma/migrations', () => {
  it('creates exactly what prisma/schema.prisma describes', async () => {
    // On failure: regenerate the migration SQL as described in scripts/README.md.
    expect(migrated).toEqual(expectedShape(await readDmmf(schema)))
  })

  it('holds the tables, keys and indexes the store relies on', () => {
    expect(Object.keys(migrated.tables).sort()).toEqual(['PipelineCatalogue', 'PipelineRun', 'StageOutput', 'StageOutputChunk', 'WebhookMessage'])
    // The shared replay store claims a message id with one INSERT … ON CONFLICT on its key.
    expect(migrated.tables['WebhookMessage']?.indexes['WebhookMessage_pkey']).toEqual({ columns: ['id'], unique: true, primary: true })
    expect(migrated.enums['RunStatus']).toEqual(['PENDING', 'PROCESSING', 'COMPLETED', 'FAILED', 'CANCELLED'])
    expect(migrated.tables['StageOutput']?.indexes['StageOutput_runId_stageNumber_key']).toEqual({
      columns: ['runId', 'stageNumber'],
      unique: true,
      primary: false,
    })
    // The stale-run sweep lists unfinished runs by their last update.
    expect(migrated.tables['PipelineRun']?.indexes['PipelineRun_status_updatedAt_idx']).toEqual({
      columns: ['status', 'updatedAt'],
      unique: false,
      primary: false,
    })
    expect(migrated.tables['StageOutput']?.foreignKeys['StageOutput_runId_fkey']).toMatchObject({
      references: 'PipelineRun',
      onDelete: 'CASCADE',
    })
  })

  it('is laid out as prisma migrate deploy reads it', () => {
    const lock = readFileSync(new URL('../../prisma/migrations/migration_lock.toml', import.meta.url), 'utf8')
    expect(lock).toMatch(/^provider = "postgresql"$/m)
    const names = listMigrations().map((m) => m.name)
    expect(names.length).toBeGreaterThan(0)
    for (const name of names) expect(name).toMatch(/^\d{14}_[a-z0-9_]+$/)
  })

  // The comparison itself must notice drift, or the first test proves nothing.
  it.each([
    ['a column becomes optional', 'stageName   String', 'stageName   String?'],
    ['a column is added', 'stages               StageOutput[]', 'stages StageOutput[]\n  note String @default("")'],
    ['an index is removed', '@@index([runId])', ''],
    ['a column type changes', 'completedAt          DateTime?     @db.Timestamptz(3)', 'completedAt DateTime?'],
    ['an enum value is added', '  CANCELLED\n}', '  CANCELLED\n  PAUSED\n}'],
  ])('detects drift when %s', async (_, from, to) => {
    expect(schema).toContain(from)
    const edited = expectedShape(await readDmmf(schema.replace(from, to)))
    expect(edited).not.toEqual(migrated)
  })
})
