/**
 * The PostgreSQL replay store shared by two handler instances, as two web instances behind a
 * load balancer share one database (real PostgreSQL with DATABASE_URL set, else PGlite).
 */
import { StageUpdateResponse } from 'pipeline-status-sdk'
import {
  createPipelineStatusHandlers,
  createPostgresReplayStore,
  createPrismaStore,
  createWebhookSignatureHeaders,
  type PipelineStatusHandlers,
  webhookMessageId,
} from 'pipeline-status-sdk/server'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildRequest, expectProblem, SIGNING_SECRET, uniqueRunId } from '../contract/suite/harness.js'
import { createTestDatabase, type TestDatabase } from '../setup/test-database.js'
import { makeStageUpdate } from '../support/fixtures.js'

const BASE = 'http://app.test/api/pipeline'
let db: TestDatabase
let instances: [PipelineStatusHandlers, PipelineStatusHandlers]

beforeAll(async () => {
  db = await createTestDatabase({ poolSize: 20 })
  // Two instances: each its own handlers, store and replay store object, one database.
  const instance = () =>
    createPipelineStatusHandlers({
      store: createPrismaStore({ prisma: db.prisma }),
      secret: [],
      signing: { secret: SIGNING_SECRET, replayStore: createPostgresReplayStore(db.prisma) },
      logger: { warn: () => {}, error: () => {} },
    })
  instances = [instance(), instance()]
})
afterAll(() => db?.close())

const signedStage = async (runId: string, body: string, id: string) =>
  buildRequest(BASE, {
    path: `/${runId}/stage-update`,
    body,
    secret: null,
    headers: (await createWebhookSignatureHeaders({ secret: SIGNING_SECRET, body, id })) as unknown as Record<string, string>,
  })

async function createRun(handlers: PipelineStatusHandlers): Promise<string> {
  const id = uniqueRunId()
  const body = JSON.stringify({ id })
  const headers = await createWebhookSignatureHeaders({
    secret: SIGNING_SECRET,
    body,
    id: webhookMessageId({ method: 'POST', route: 'runs', unique: crypto.randomUUID() }),
  })
  const response = await handlers.fetch(buildRequest(BASE, { path: '/runs', body, secret: null, headers: headers as unknown as Record<string, string> }))
  expect(response.status).toBe(201)
  return id
}

describe('createPostgresReplayStore across two handler instances', () => {
  it('a resend to the other instance is a duplicate; the same id with another body is refused there', async () => {
    const [first, second] = instances
    const runId = await createRun(first)
    const id = webhookMessageId({ method: 'POST', route: `${runId}/stage-update`, unique: crypto.randomUUID() })
    const body = JSON.stringify(makeStageUpdate({ status: 'COMPLETED', output: 'one' }))
    const applied = await first.fetch(await signedStage(runId, body, id))
    expect(StageUpdateResponse.parse(await applied.json()).outcome).toBe('applied')
    const resent = await second.fetch(await signedStage(runId, body, id))
    expect(StageUpdateResponse.parse(await resent.json()).outcome).toBe('duplicate')

    const other = JSON.stringify(makeStageUpdate({ status: 'COMPLETED', output: 'two' }))
    const refused = await expectProblem(await second.fetch(await signedStage(runId, other, id)), 401, 'invalid_signature')
    expect(refused.detail).toMatch(/another body/)
    const rows = await db.prisma.$queryRawUnsafe<{ id: string }[]>('SELECT "id" FROM "WebhookMessage" WHERE "id" = $1', id)
    expect(rows).toHaveLength(1)
  })

  it('of concurrent messages with one id and different bodies on both instances, exactly one is accepted', async () => {
    const [first, second] = instances
    for (let round = 0; round < 10; round++) {
      const runId = await createRun(first)
      const id = webhookMessageId({ method: 'POST', route: `${runId}/stage-update`, unique: crypto.randomUUID() })
      const bodies = ['a', 'b', 'c', 'd'].map((output) => JSON.stringify(makeStageUpdate({ status: 'COMPLETED', output })))
      const requests = await Promise.all(bodies.map((body) => signedStage(runId, body, id)))
      const statuses = (await Promise.all(requests.map((request, i) => (i % 2 === 0 ? first : second).fetch(request)))).map((r) => r.status)
      expect(statuses.filter((status) => status === 200)).toHaveLength(1)
      expect(statuses.filter((status) => status === 401)).toHaveLength(3)
    }
  })

  it('takes over an expired id and deletes expired rows in the background', async () => {
    let now = Date.parse('2030-01-01T00:00:00Z')
    const store = createPostgresReplayStore(db.prisma, { now: () => now, cleanupIntervalMs: 1_000 })
    const id = `test ${crypto.randomUUID()}`
    expect(await store.claim(id, 'x', now + 500)).toBe(true)
    expect(await store.claim(id, 'y', now + 500)).toBe(false)
    expect(await store.claim(id, 'x', now + 900)).toBe(true)
    now += 901
    expect(await store.claim(id, 'y', now + 500)).toBe(true)
    expect(await store.claim(id, 'x', now + 500)).toBe(false)
    const stale = `test ${crypto.randomUUID()}`
    expect(await store.claim(stale, 'z', now + 10)).toBe(true)
    now += 2_000
    expect(await store.claim(`test ${crypto.randomUUID()}`, 'w', now + 10)).toBe(true)
    await expect
      .poll(async () => (await db.prisma.$queryRawUnsafe<unknown[]>('SELECT 1 FROM "WebhookMessage" WHERE "id" = $1', stale)).length)
      .toBe(0)
  })

  it('on a database without the WebhookMessage table: 503 database_not_migrated naming it and the command, logged once', async () => {
    const older = await createTestDatabase()
    try {
      // The package's schema before the replay migration: only its table is missing here.
      await older.prisma.$executeRawUnsafe('DROP TABLE "WebhookMessage"')
      const errors: string[] = []
      const handlers = createPipelineStatusHandlers({
        store: createPrismaStore({ prisma: older.prisma }),
        secret: [],
        signing: { secret: SIGNING_SECRET, replayStore: createPostgresReplayStore(older.prisma) },
        logger: { warn: () => {}, error: (message) => errors.push(message) },
      })
      for (let round = 0; round < 3; round++) {
        const body = JSON.stringify(makeStageUpdate({ status: 'COMPLETED', output: 'x' }))
        const id = webhookMessageId({ method: 'POST', route: 'run_1/stage-update', unique: crypto.randomUUID() })
        const response = await handlers.fetch(await signedStage('run_1', body, id))
        const problem = await expectProblem(response, 503, 'database_not_migrated')
        expect(response.headers.get('retry-after')).not.toBeNull()
        expect(problem.detail).toMatch(/^The table "WebhookMessage" does not exist in (schema "public"|the schema of the connection's search_path \(normally "public"\)): .*`prisma migrate deploy`/)
      }
      expect(errors).toHaveLength(1)
      expect(errors[0]).toMatch(/table "(public\.)?WebhookMessage" does not exist/)
    } finally {
      await older.close()
    }
  })
})
