/**
 * The Express router over a real port, on real PostgreSQL through PrismaStore (set
 * DATABASE_URL; without it the test database helper falls back to embedded PGlite): the shared
 * contract scenarios, the stage-5 / `/complete` race in both orders, and raw-body handling when the
 * app parses JSON itself.
 */
import { once } from 'node:events'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { PrismaPg } from '@prisma/adapter-pg'
import express, { type Express } from 'express'
import { CompleteRunResponse, CreateRunResponse, StageUpdateResponse } from 'pipeline-status-sdk'
import { createExpressRouter } from 'pipeline-status-sdk/express'
import { createPrismaStore, createWebhookSignatureHeaders, HttpProblemError, type PrismaStore, webhookMessageId } from 'pipeline-status-sdk/server'
import { timingSafeEqual } from '../../src/internal/timing-safe-equal.js'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { PrismaClient } from '../../src/generated/prisma/client.js'
import { createTestDatabase, type TestDatabase, usesPostgres } from '../setup/test-database.js'
import { makeCompleteRun, makeStageUpdate } from '../support/fixtures.js'
import { Api, buildRequest, type ContractTarget, expectProblem, SECRET, SIGNING_SECRET, type TargetClient, uniqueRunId } from '../contract/suite/harness.js'
import { describeContract } from '../contract/suite/index.js'
import { expressTarget, httpClient, listen } from '../contract/targets.js'

vi.mock('../../src/internal/timing-safe-equal.ts', { spy: true })

let db: TestDatabase
let store: PrismaStore<PrismaClient>
/** A client whose database does not exist at all: every call fails to connect. */
const unreachable = new PrismaClient({ adapter: new PrismaPg({ connectionString: 'postgresql://postgres@127.0.0.1:1/none' }) })

beforeAll(async () => {
  db = await createTestDatabase({ poolSize: 20 })
  store = createPrismaStore({ prisma: db.prisma, maxWaitMs: 20_000, timeoutMs: 30_000 })
})
afterAll(async () => {
  await unreachable.$disconnect()
  await db?.close()
})

const expressOnDatabase = expressTarget({
  store: () => store,
  // The real thing where it can be real: an unreachable database is a client on a closed port.
  unavailable: () => createPrismaStore({ prisma: unreachable, maxWaitMs: 2_000 }),
})

describeContract(`express router on ${usesPostgres() ? 'PostgreSQL' : 'PGlite (DATABASE_URL unset)'} over a port`, () => expressOnDatabase)

describe('express router: races on PostgreSQL', () => {
  // Each race is played in a fixed interleaving instead of hoping that 100 concurrent pairs
  // overlap (they mostly did not: stage 5 came first in 99 of 100, and on a loaded machine the
  // 700 requests took over a minute). Half the races: /complete holds its transaction open, inside
  // onRunCompleted, until stage 5 has reached the router. The other half: stage 5 has completed
  // the run before /complete comes.
  const RACES = 20
  it(`runs onRunCompleted exactly once when stage 5 and /complete race: stage 5 arrives while /complete holds the run, or has completed it before, ${RACES} times`, async () => {
    const calls = new Map<string, number>()
    /** Per run in the race phase: the hook was entered; the second request has arrived. */
    const gates = new Map<string, { entered: () => void; hookEntered: Promise<void>; arrived: () => void; secondArrived: Promise<void>; arrivals: number }>()
    const gateFor = (id: string) => {
      let entered!: () => void
      let arrived!: () => void
      const hookEntered = new Promise<void>((resolve) => (entered = resolve))
      const secondArrived = new Promise<void>((resolve) => (arrived = resolve))
      const gate = { entered, hookEntered, arrived, secondArrived, arrivals: 0 }
      gates.set(id, gate)
      return gate
    }
    const app = express()
    app.use('/api/pipeline', (req, _res, next) => {
      const [, id, action] = req.path.split('/')
      const gate = gates.get(decodeURIComponent(id ?? ''))
      if (gate && (action === 'stage-update' || action === 'complete')) {
        gate.arrivals += 1
        if (gate.arrivals === 2) gate.arrived()
      }
      next()
    })
    app.use(
      '/api/pipeline',
      createExpressRouter({
        prisma: db.prisma,
        secret: SECRET,
        onRunCompleted: async (tx, run) => {
          // The hook gets the app's own transaction client: it sees the run as this transaction does.
          const stored = await tx.pipelineRun.findUnique({ where: { id: run.id }, select: { status: true } })
          expect(stored?.status).toBe('COMPLETED')
          calls.set(run.id, (calls.get(run.id) ?? 0) + 1)
          const gate = gates.get(run.id)
          if (gate) {
            gate.entered()
            await gate.secondArrived
          }
        },
      }),
    )
    const server = await listen(app)
    const api = new Api(httpClient(`${server.url}/api/pipeline`, server.close))
    try {
      const ids = await Promise.all(Array.from({ length: RACES }, () => api.createRun(uniqueRunId('race'))))
      await Promise.all(
        ids.map(async (id) => {
          for (const n of [1, 2, 3, 4]) await api.stageOk(id, makeStageUpdate({ stageNumber: n, status: 'COMPLETED' }))
        }),
      )
      const results = []
      // One race at a time: a transaction held open never waits for another run's connection.
      for (const [index, id] of ids.entries()) {
        const stageFirst = index % 2 === 0
        const sendStage = () => api.stage(id, makeStageUpdate({ stageNumber: 5, status: 'COMPLETED', output: 'final' }))
        const sendComplete = () => api.complete(id, makeCompleteRun({ fullReportMarkdown: '# Done' }))
        let stage: Response
        let complete: Response
        if (stageFirst) {
          // Stage 5 has already completed the run when /complete comes: the hook still runs once.
          stage = await sendStage()
          complete = await sendComplete()
        } else {
          // /complete holds the run's lock (its hook runs inside the transaction) while stage 5
          // arrives: stage 5's write meets a run being completed and must not undo or repeat it.
          const gate = gateFor(id)
          const completing = sendComplete()
          await gate.hookEntered
          stage = await sendStage()
          complete = await completing
        }
        results.push({
          id,
          stageFirst,
          stage: { status: stage.status, body: StageUpdateResponse.parse(await stage.json()) },
          complete: { status: complete.status, body: CompleteRunResponse.parse(await complete.json()) },
        })
      }
      for (const result of results) {
        expect(result.stage.status).toBe(200)
        expect(result.complete.status).toBe(200)
        expect(result.complete.body.outcome).toBe('applied')
        expect(calls.get(result.id)).toBe(1)
        // Stage 5 finishing the run first leaves the completion to the later /complete.
        expect(result.stage.body.run.completionReceivedAt === null).toBe(result.stageFirst)
        expect(result.stage.body.run.status).toBe('COMPLETED')
      }
      const stored = await db.prisma.pipelineRun.findMany({ where: { id: { in: ids } }, include: { stages: true } })
      expect(stored).toHaveLength(RACES)
      for (const run of stored) {
        expect(run.status).toBe('COMPLETED')
        expect(run.completionReceivedAt).not.toBeNull()
        expect(run.stages.find((s) => s.stageNumber === 5)).toMatchObject({ status: 'COMPLETED', output: 'final' })
      }
      // A later /complete is a duplicate and the hook stays at one call.
      const again = await api.completeOk(ids[0] as string, makeCompleteRun())
      expect(again.outcome).toBe('duplicate')
      expect([...calls.values()].every((count) => count === 1)).toBe(true)
      expect(calls.size).toBe(RACES)
    } finally {
      await server.close()
    }
  })
})

describe('express router: raw bodies and mounting', () => {
  const signedSpec = async (body: string, path = '/runs') => ({
    path,
    body,
    secret: null,
    headers: (await createWebhookSignatureHeaders({
      secret: SIGNING_SECRET,
      body,
      // Route-bound, as docs/security.md specifies: the path after the mount point.
      id: webhookMessageId({ method: 'POST', route: path.slice(1), unique: crypto.randomUUID() }),
    })) as unknown as Record<string, string>,
  })
  const withApp = async (setup: (app: Express) => void, mount: string, fn: (api: Api) => Promise<void>) => {
    const app = express()
    setup(app)
    const server = await listen(app)
    try {
      await fn(new Api(httpClient(`${server.url}${mount}`, server.close)))
    } finally {
      await server.close()
    }
  }
  const router = () => createExpressRouter({ store, secret: SECRET, signing: { secret: SIGNING_SECRET } })

  it('with express.json() mounted globally before the router, signed requests are a configuration error whatever their bytes', async () => {
    await withApp(
      (app) => {
        app.use(express.json())
        app.use('/api/pipeline', router())
      },
      '/api/pipeline',
      async (api) => {
        const id = await api.createRun(uniqueRunId('json'))
        // Compact ASCII JSON would survive re-serialization and pretty JSON would not: neither is checked.
        const compact = JSON.stringify({ ...makeStageUpdate({ status: 'COMPLETED' }), output: '{"a": [1, 2.5]}' })
        await expectProblem(await api.send(await signedSpec(compact, `/${id}/stage-update`)), 500, 'body_already_consumed')
        const pretty = JSON.stringify(makeStageUpdate({ stageNumber: 3 }), null, 2)
        await expectProblem(await api.send(await signedSpec(pretty, `/${id}/stage-update`)), 500, 'body_already_consumed')
        // The shared secret does not depend on the bytes at all.
        const response = await api.stage(id, makeStageUpdate({ stageNumber: 2, status: 'COMPLETED', output: '{"a": [1, 2.5, "é"]}' }))
        expect(StageUpdateResponse.parse(await response.json()).stage?.output).toBe('{"a": [1, 2.5, "é"]}')
      },
    )
  })

  it('uses req.rawBody kept by express.json({ verify }) so any JSON formatting verifies', async () => {
    await withApp(
      (app) => {
        app.use(
          express.json({
            verify: (req, _res, buf) => {
              ;(req as typeof req & { rawBody?: Buffer }).rawBody = buf
            },
          }),
        )
        app.use('/api/pipeline', router())
      },
      '/api/pipeline',
      async (api) => {
        const id = await api.createRun(uniqueRunId('raw'))
        // Python's json.dumps default separators.
        const pythonStyle = '{"stageNumber": 1, "stageName": "Input Processing", "status": "PROCESSING", "output": ""}'
        const response = await api.send(await signedSpec(pythonStyle, `/${id}/stage-update`))
        expect(response.status).toBe(200)
      },
    )
  })

  it('works mounted under any path, with the app parsing JSON after it', async () => {
    await withApp(
      (app) => {
        app.use('/hooks/v2', router())
        app.use(express.json())
        app.post('/other', (req, res) => void res.json({ echoed: req.body as unknown }))
      },
      '/hooks/v2',
      async (api) => {
        const id = await api.createRun(uniqueRunId('mount'))
        const pretty = JSON.stringify(makeStageUpdate(), null, 2)
        expect((await api.send(await signedSpec(pretty, `/${id}/stage-update`))).status).toBe(200)
        expect((await api.status(id)).run.status).toBe('PROCESSING')
        await expectProblem(await api.send({ path: '/nope', method: 'GET' }), 404, 'route_not_found')
      },
    )
  })

  it("hands authorize Express's own req as native, with what the session middleware set", async () => {
    const app = express()
    app.use((req, _res, next) => {
      const user = req.get('x-test-user')
      if (user) (req as typeof req & { user?: { id: string } }).user = { id: user }
      next()
    })
    app.use(
      '/api/pipeline',
      createExpressRouter({
        store,
        secret: SECRET,
        authorize: ({ runId, action, native }) => {
          const user = (native as typeof native & { user?: { id: string } }).user
          if (!user) throw new HttpProblemError('authentication_required', { detail: 'Sign in first' })
          return action === 'read' && native.originalUrl === `/api/pipeline/${runId}/status` && runId.startsWith(`${user.id}-`)
        },
      }),
    )
    const server = await listen(app)
    try {
      const api = new Api(httpClient(`${server.url}/api/pipeline`, server.close))
      const id = await api.createRun(uniqueRunId('alice'))
      expect((await api.getStatus(id, { secret: null, headers: { 'x-test-user': 'alice' } })).status).toBe(200)
      await expectProblem(await api.getStatus(id, { secret: null, headers: { 'x-test-user': 'bob' } }), 403, 'forbidden')
      await expectProblem(await api.getStatus(id, { secret: null }), 401, 'authentication_required')
    } finally {
      await server.close()
    }
  })

  it('passes unmatched paths on to the app when asked', async () => {
    const app = express()
    app.use('/api/pipeline', createExpressRouter({ store, secret: SECRET, passUnmatched: true }))
    app.get('/api/pipeline/health', (_req, res) => void res.json({ ok: true }))
    app.use('/v2/pipeline', createExpressRouter({ store, secret: SECRET }))
    const server = await listen(app)
    try {
      expect(await (await fetch(`${server.url}/api/pipeline/health`)).json()).toEqual({ ok: true })
      const api = new Api(httpClient(`${server.url}/api/pipeline`, server.close))
      const id = await api.createRun()
      expect((await api.status(id)).run.id).toBe(id)
      // The OpenAPI document is the router's too, with its mount point as the server URL.
      for (const mount of ['/api/pipeline', '/v2/pipeline']) {
        const document = (await (await fetch(`${server.url}${mount}/openapi.json`)).json()) as { servers: { url: string }[] }
        expect(document.servers[0]?.url).toBe(mount)
      }
    } finally {
      await server.close()
    }
  })

  it('compares a wrong secret with the constant-time compare', async () => {
    vi.mocked(timingSafeEqual).mockClear()
    const app = express()
    app.use('/api/pipeline', createExpressRouter({ store, secret: SECRET }))
    const server = await listen(app)
    try {
      const response = await fetch(buildRequest(`${server.url}/api/pipeline`, { path: '/runs', json: {}, secret: 'guess' }))
      await expectProblem(response, 401, 'unauthorized')
      expect(timingSafeEqual).toHaveBeenCalledWith('guess', SECRET)
    } finally {
      await server.close()
    }
  })

  it('refuses a body larger than the limit while it streams in, and the server keeps serving', async () => {
    const app = express()
    app.use('/api/pipeline', createExpressRouter({ store, secret: SECRET, maxBodyBytes: 64 * 1024 }))
    const server = await listen(app)
    try {
      let sent = 0
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (sent >= 20 * 1024 * 1024) return controller.close()
          sent += 64 * 1024
          controller.enqueue(new Uint8Array(64 * 1024).fill(0x20))
        },
      })
      const api = new Api(httpClient(`${server.url}/api/pipeline`, server.close))
      await expectProblem(await api.send({ path: '/runs', body }), 413, 'payload_too_large')
      const id = await api.createRun()
      expect((await api.status(id)).run.id).toBe(id)
    } finally {
      await server.close()
    }
  })
})
