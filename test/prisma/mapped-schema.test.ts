/**
 * PrismaStore on an app's own schema: the SDK's models renamed with `@@map` / `@map`, living in
 * another PostgreSQL schema (`@@schema("pipeline")`), with an extra column. The store writes
 * its hot-path SQL itself, so it must find the names: from the client's data model, or from
 * explicit options when a client does not expose it.
 */
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { PrismaPg } from '@prisma/adapter-pg'
import { DEFAULT_STAGES } from 'pipeline-status-sdk'
import { createPipelineStatusHandlers, createPrismaStore, type PrismaStore, type PrismaStoreClient } from 'pipeline-status-sdk/server'
import { applyStageUpdate, completeRun, createRun, failStaleRuns } from '../../src/core/operations.js'
import { PrismaPGlite } from 'pglite-prisma-adapter'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeCompleteRun, makeStageUpdate } from '../support/fixtures.js'
import { MAPPED_NAMES } from '../support/mapped-names.js'
import { createTestDatabase, type TestDatabase } from '../setup/test-database.js'

const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url))
const root = fileURLToPath(new URL('../..', import.meta.url))

interface MappedClient extends PrismaStoreClient {
  $disconnect(): Promise<void>
  $executeRawUnsafe(sql: string): Promise<number>
}

let db: TestDatabase
let mapped: MappedClient

beforeAll(async () => {
  // The app's own client, generated from the mapped schema into src/generated/mapped.
  const cli = createRequire(import.meta.url).resolve('prisma/build/index.js')
  const generated = spawnSync(process.execPath, [cli, 'generate', '--schema', fixture('mapped-schema.prisma')], {
    cwd: root,
    env: { ...process.env, PRISMA_SCHEMA_ENGINE_BINARY: process.execPath, PRISMA_HIDE_UPDATE_MESSAGE: '1', CHECKPOINT_DISABLE: '1' },
    encoding: 'utf8',
  })
  if (generated.status !== 0) throw new Error(`prisma generate failed:\n${generated.stdout}\n${generated.stderr}`)
  // Generated just above, so the type checker (run before any test) cannot see it: import by a computed path.
  const generatedClient: string = '../../src/generated/mapped/client.js'
  const { PrismaClient } = (await import(generatedClient)) as unknown as {
    PrismaClient: new (options: { adapter: unknown }) => MappedClient
  }

  db = await createTestDatabase()
  for (const statement of readFileSync(fixture('mapped-schema.sql'), 'utf8').split(/;\s*\n/)) {
    if (statement.trim() !== '') await db.prisma.$executeRawUnsafe(statement)
  }
  const adapter = db.kind === 'pglite' ? new PrismaPGlite(db.pglite as never) : new PrismaPg({ connectionString: db.url as string })
  mapped = new PrismaClient({ adapter })
}, 120_000)

afterAll(async () => {
  await mapped?.$disconnect()
  await db?.close()
})

/** The same client with its data model hidden, as a client made by other means may be. */
function withoutDataModel(client: MappedClient): MappedClient {
  return new Proxy(client, {
    get: (target, key) => (key === '_runtimeDataModel' ? undefined : Reflect.get(target, key, target)),
  })
}

const variants = [
  ['names read from the client’s data model', () => createPrismaStore({ prisma: mapped })],
  [
    'names given as options',
    () =>
      createPrismaStore({
        prisma: withoutDataModel(mapped),
        schema: 'pipeline',
        names: MAPPED_NAMES,
      }),
  ],
] as const

interface StageRow {
  id: string
  stage_number: number
  stage_status: string
  body: string | null
  updated_at: Date
}

describe.each(variants)('PrismaStore on @@map/@map models in schema "pipeline", %s', (label, makeStore) => {
  const stages = DEFAULT_STAGES
  const prefix = label.startsWith('names read') ? 'model' : 'options'

  it('creates, updates, reads, completes and versions a run in the mapped tables', async () => {
    const store = makeStore()
    const runId = `${prefix}-full`
    expect(await createRun(store, { id: runId, now: new Date() })).toMatchObject({ created: true })
    expect((await createRun(store, { id: runId, now: new Date() })).created).toBe(false)

    let applied = 0
    for (const stage of stages) {
      for (const status of ['PROCESSING', 'COMPLETED'] as const) {
        const result = await applyStageUpdate(store, runId, makeStageUpdate({ stageNumber: stage.number, stageName: stage.name, status, output: `${status} ${stage.number}` }), {
          stages,
          now: new Date(),
        })
        expect(result.outcome).toBe('applied')
        applied++
      }
    }
    // A duplicate changes nothing, the version included.
    const duplicate = await applyStageUpdate(store, runId, makeStageUpdate({ stageNumber: 5, status: 'COMPLETED' }), { stages, now: new Date() })
    expect(duplicate.outcome).toBe('duplicate')

    const snapshot = await store.getRun(runId)
    expect(snapshot?.run.status).toBe('COMPLETED')
    expect(snapshot?.version).toBe(applied)
    expect(snapshot?.stages.map((s) => [s.stageNumber, s.status, s.output])).toEqual(
      stages.map((s) => [s.number, 'COMPLETED', `COMPLETED ${s.number}`]),
    )

    // The rows are where the mapping says, with the id and updatedAt Prisma used to fill in.
    const rows = await mapped.$queryRawUnsafe<StageRow[]>(
      'SELECT "id", "stage_number", "stage_status"::text AS "stage_status", "body", "updated_at" FROM "pipeline"."stage_outputs" WHERE "run_id" = $1 ORDER BY "stage_number"',
      runId,
    )
    expect(rows.map((row) => row.stage_number)).toEqual([1, 2, 3, 4, 5])
    for (const row of rows) {
      expect(row.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
      expect(row.updated_at).toBeInstanceOf(Date)
    }
    const [run] = await mapped.$queryRawUnsafe<Array<{ row_version: number; owner_id: string | null }>>(
      'SELECT "row_version", "owner_id" FROM "pipeline"."pipeline_runs" WHERE "id" = $1',
      runId,
    )
    expect(run).toEqual({ row_version: applied, owner_id: null })
    // This schema kept the catalogue as jsonb (the package's migrations make it json since
    // 20261207100000_catalogue_json): the store's SQL takes the column's type, so either works.
    const [catalogue] = await mapped.$queryRawUnsafe<Array<{ type: string; catalogue: string }>>(
      'SELECT pg_typeof("stage_catalogue")::text AS "type", "stage_catalogue"::text AS "catalogue" FROM "pipeline"."pipeline_runs" WHERE "id" = $1',
      runId,
    )
    expect(catalogue?.type).toBe('jsonb')
    expect(JSON.parse(catalogue?.catalogue ?? 'null')).toEqual(stages.map((stage) => ({ number: stage.number, name: stage.name })))
    // Kept once under its digest in the mapped catalogue table, beside the runs (json there).
    const kept = await mapped.$queryRawUnsafe<Array<{ stages: string }>>('SELECT "catalogue_stages"::text AS "stages" FROM "pipeline"."pipeline_catalogues"')
    expect(kept.map((row) => JSON.parse(row.stages)).filter((rowStages) => JSON.stringify(rowStages) === JSON.stringify(stages.map((stage) => ({ number: stage.number, name: stage.name }))))).toHaveLength(1)

    const hooked: string[] = []
    const completed = await completeRun(store, runId, makeCompleteRun(), { now: new Date(), onRunCompleted: (_tx, r) => void hooked.push(r.id) })
    expect([completed.outcome, hooked]).toEqual(['applied', [runId]])
    expect((await store.getRun(runId))?.version).toBe(applied + 1)
  })

  it('applies concurrent updates of one run exactly once each, the version counting them', async () => {
    const store = makeStore()
    const runId = `${prefix}-race`
    await createRun(store, { id: runId, now: new Date() })
    const updates = stages.slice(0, 4).flatMap((stage) =>
      [0, 1].map(() => makeStageUpdate({ stageNumber: stage.number, stageName: stage.name, status: 'COMPLETED', output: `done ${stage.number}` })),
    )
    const results = await Promise.all(updates.map((update) => applyStageUpdate(store, runId, update, { stages, now: new Date() })))
    expect(results.filter((r) => r.outcome === 'applied')).toHaveLength(4)
    expect(results.filter((r) => r.outcome === 'duplicate')).toHaveLength(4)
    const snapshot = await store.getRun(runId)
    expect(snapshot?.version).toBe(4)
    expect(snapshot?.stages.map((s) => s.status)).toEqual(['COMPLETED', 'COMPLETED', 'COMPLETED', 'COMPLETED'])
  })

  it('fails stale runs and serves GET /status with an ETag', async () => {
    const store = makeStore()
    const runId = `${prefix}-stale`
    const long = new Date(Date.now() - 3_600_000)
    await createRun(store, { id: runId, now: long })
    await applyStageUpdate(store, runId, makeStageUpdate({ stageNumber: 1, status: 'PROCESSING' }), { stages, now: long })
    const failed = await failStaleRuns(store, { staleAfterMs: 60_000, now: new Date(), limit: 100 })
    expect(failed.map((r) => r.id)).toContain(runId)

    const handlers = createPipelineStatusHandlers({ store, secret: 's' })
    const url = `https://app.example/api/pipeline/${runId}/status`
    const first = await handlers.fetch(new Request(url, { headers: { 'X-Webhook-Secret': 's' } }))
    expect([first.status, first.headers.get('etag'), (await first.json()).run.status]).toEqual([200, '"2"', 'FAILED'])
    const again = await handlers.fetch(new Request(url, { headers: { 'X-Webhook-Secret': 's', 'If-None-Match': '"2"' } }))
    expect([again.status, again.headers.get('etag'), await again.text()]).toEqual([304, '"2"', ''])
  })

  it('lists and counts runs in the mapped tables: tags, the mapped enum, stage counts, keyset order', async () => {
    const store = makeStore()
    const tag = `${prefix}-listed`
    const at = new Date('2400-01-01T00:00:00.000Z')
    for (const id of ['b', 'B', 'a']) {
      await store.insertRun({ id: `${prefix}-list-${id}`, status: 'FAILED', error: 'e', completedAt: at, completionReceivedAt: null, createdAt: at, updatedAt: at, tags: [tag] })
    }
    const listed = await store.listRuns({ filter: { tags: [tag], statuses: ['FAILED', 'CANCELLED'] }, limit: 2 })
    expect(listed.map((item) => item.run.id)).toEqual([`${prefix}-list-b`, `${prefix}-list-a`])
    expect(listed[0]).toMatchObject({ version: 0, currentStage: null, stageRows: { PROCESSING: 0, COMPLETED: 0, FAILED: 0, CANCELLED: 0 } })
    const rest = await store.listRuns({ filter: { tags: [tag] }, after: { createdAt: at, id: `${prefix}-list-a` }, limit: 5 })
    expect(rest.map((item) => item.run.id)).toEqual([`${prefix}-list-B`])
    expect(await store.countRuns({ filter: { tags: [tag] }, groupBy: 'status' })).toEqual({ FAILED: 3 })
    expect(await store.countRuns({ filter: { tags: [tag], pipeline: 'default' }, groupBy: 'pipeline' })).toEqual({ default: 3 })
  })
})

describe('PrismaStore on @@map/@map models, the catalogues kept by digest', () => {
  it('in the mapped PipelineCatalogue model’s table: the text sent with the first run’s first update, the digest alone after', async () => {
    // Each raw statement's text and whether it carried the catalogue's text (`$9`) and its digest (`$31`).
    const writes: Array<{ keeping: boolean; byDigest: boolean; text: boolean; digest: boolean }> = []
    const recorded = new Proxy(mapped, {
      get: (target, key) =>
        key === '$queryRawUnsafe'
          ? (sql: string, ...args: unknown[]) => {
              if (sql.includes('INSERT INTO "pipeline"."stage_outputs"') && !sql.includes('chunk')) {
                writes.push({
                  keeping: sql.includes('INSERT INTO "pipeline"."pipeline_catalogues"'),
                  byDigest: sql.includes('FROM "pipeline"."pipeline_catalogues" c WHERE c."catalogue_digest" = $31'),
                  text: args[8] != null,
                  digest: args[30] != null,
                })
              }
              return target.$queryRawUnsafe(sql, ...args)
            }
          : Reflect.get(target, key, target),
    })
    const store = createPrismaStore({ prisma: recorded })
    const stages = [
      { number: 1, name: 'Mapped fetch' },
      { number: 2, name: 'Mapped parse' },
    ]
    for (const id of ['kept-a', 'kept-b']) {
      await createRun(store, { id, now: new Date() })
      expect((await applyStageUpdate(store, id, makeStageUpdate({ stageNumber: 1, stageName: 'Mapped fetch', status: 'PROCESSING' }), { stages, now: new Date() })).outcome).toBe('applied')
      expect((await store.getRun(id))?.run.catalogue).toEqual(stages)
    }
    expect(writes).toEqual([
      { keeping: true, byDigest: false, text: true, digest: true },
      { keeping: false, byDigest: true, text: false, digest: true },
    ])
    const kept = await mapped.$queryRawUnsafe<Array<{ n: number }>>(
      'SELECT count(*)::int AS "n" FROM "pipeline"."pipeline_catalogues" WHERE "catalogue_stages"::text = $1',
      JSON.stringify(stages),
    )
    expect(kept).toEqual([{ n: 1 }])
  })
})
