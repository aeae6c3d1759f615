/**
 * The Web-standard handlers called in memory with `new Request(...)` on a MemoryStore: the
 * shared contract scenarios, plus what only the handlers themselves can show (configuration
 * errors, the constant-time compare, per-route handlers, custom base path and catalogue).
 */
import { defineStages, Problem } from 'pipeline-status-sdk'
import {
  createPipelineStatusHandlers,
  createPrismaStore,
  HttpProblemError,
  isServerConfigurationError,
  MemoryStore,
  type PrismaStoreClient,
  ServerConfigurationError,
} from 'pipeline-status-sdk/server'
import { timingSafeEqual } from '../../src/internal/timing-safe-equal.js'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { makeStageUpdate } from '../support/fixtures.js'
import { Api, buildRequest, expectProblem, SECRET, streamOf, uniqueRunId } from '../contract/suite/harness.js'
import { describeContract } from '../contract/suite/index.js'
import { BASE_URL, failingStore, memoryTarget } from '../contract/targets.js'
import { quiet } from '../support/loggers.js'

// Spy on the real module: the handlers must call this export, not their own comparison.
vi.mock('../../src/internal/timing-safe-equal.ts', { spy: true })


describeContract('web handlers in memory', () => memoryTarget)

describe('web handlers: authentication', () => {
  beforeEach(() => vi.mocked(timingSafeEqual).mockClear())

  it('compares a wrong secret with the constant-time compare and answers 401', async () => {
    const handlers = createPipelineStatusHandlers({ store: new MemoryStore(), secret: SECRET, logger: quiet })
    const response = await handlers.fetch(buildRequest(BASE_URL, { path: '/runs', json: {}, secret: 'wrong-secret' }))
    await expectProblem(response, 401, 'unauthorized')
    expect(timingSafeEqual).toHaveBeenCalledWith('wrong-secret', SECRET)
    expect(vi.mocked(timingSafeEqual).mock.results[0]?.value).toBe(false)
  })

  it('warns on the console by default when a secret is refused, without the secret itself', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {})
    try {
      const handlers = createPipelineStatusHandlers({ store: new MemoryStore(), secret: SECRET })
      await handlers.fetch(buildRequest(BASE_URL, { path: '/runs', json: {}, secret: 'wrong-secret' }))
      expect(warn).toHaveBeenCalledTimes(1)
      const logged = JSON.stringify(warn.mock.calls[0])
      // One line, which says it all.
      expect(warn.mock.calls[0]).toEqual(['pipeline-status: refused POST /api/pipeline/runs: 401 unauthorized: X-Webhook-Secret does not match'])
      expect(logged).toContain('unauthorized')
      expect(logged).not.toContain('wrong-secret')
      expect(logged).not.toContain(SECRET)
    } finally {
      warn.mockRestore()
    }
  })

  it('compares against every configured secret, also after a match', async () => {
    const handlers = createPipelineStatusHandlers({ store: new MemoryStore(), secret: ['first', 'second', 'third'], logger: quiet })
    const response = await handlers.fetch(buildRequest(BASE_URL, { path: '/runs', json: {}, secret: 'first' }))
    expect(response.status).toBe(201)
    expect(vi.mocked(timingSafeEqual).mock.calls).toEqual([
      ['first', 'first'],
      ['first', 'second'],
      ['first', 'third'],
    ])
  })

  it('compares equal and unequal strings of any length correctly', async () => {
    expect(timingSafeEqual('abc', 'abc')).toBe(true)
    expect(timingSafeEqual('abc', 'abd')).toBe(false)
    expect(timingSafeEqual('abc', 'abcd')).toBe(false)
    expect(timingSafeEqual('', '')).toBe(true)
  })

  it('refuses to start without any secret', () => {
    vi.stubEnv('WEBHOOK_SECRET', '')
    try {
      expect(() => createPipelineStatusHandlers({ store: new MemoryStore() })).toThrow(ServerConfigurationError)
      expect(() => createPipelineStatusHandlers({ store: new MemoryStore(), secret: [] })).toThrow(/No webhook secret configured/)
      expect(() => createPipelineStatusHandlers({ store: new MemoryStore(), secret: '' })).toThrow(/WEBHOOK_SECRET/)
      // An authorize hook does not replace the secret: writes always need one.
      expect(() => createPipelineStatusHandlers({ store: new MemoryStore(), authorize: () => true })).toThrow(
        ServerConfigurationError,
      )
    } finally {
      vi.unstubAllEnvs()
    }
  })

  it('reads WEBHOOK_SECRET from the environment, comma-separated for rotation', async () => {
    vi.stubEnv('WEBHOOK_SECRET', ' env-new , env-old ,')
    try {
      const handlers = createPipelineStatusHandlers({ store: new MemoryStore(), logger: quiet })
      for (const secret of ['env-new', 'env-old']) {
        expect((await handlers.fetch(buildRequest(BASE_URL, { path: '/runs', json: {}, secret }))).status).toBe(201)
      }
      await expectProblem(await handlers.fetch(buildRequest(BASE_URL, { path: '/runs', json: {}, secret: 'env-new , env-old' })), 401, 'unauthorized')
    } finally {
      vi.unstubAllEnvs()
    }
  })

  it('refuses other unusable options at creation', () => {
    const store = new MemoryStore()
    const cases: Array<[string, () => unknown]> = [
      ['no store', () => createPipelineStatusHandlers({ secret: 's' } as never)],
      ['store and prisma', () => createPipelineStatusHandlers({ secret: 's', store, prisma: {} } as never)],
      ['empty catalogue', () => createPipelineStatusHandlers({ secret: 's', store, stages: [] })],
      ['gap in catalogue', () => createPipelineStatusHandlers({ secret: 's', store, stages: [{ number: 2, name: 'x' }] })],
      ['zero limit', () => createPipelineStatusHandlers({ secret: 's', store, maxBodyBytes: 0 })],
      ['fractional limit', () => createPipelineStatusHandlers({ secret: 's', store, maxBodyBytes: 1.5 })],
      ['bad whsec', () => createPipelineStatusHandlers({ secret: 's', store, signing: { secret: 'whsec_%%%' } })],
      ['no signing key', () => createPipelineStatusHandlers({ secret: 's', store, signing: { secret: [] } })],
      ['bad tolerance', () => createPipelineStatusHandlers({ secret: 's', store, signing: { secret: 'k', toleranceSeconds: 0 } })],
      ['negative clock-skew tolerance', () => createPipelineStatusHandlers({ secret: 's', store, clockSkewToleranceMs: -1 })],
      ['fractional clock-skew tolerance', () => createPipelineStatusHandlers({ secret: 's', store, clockSkewToleranceMs: 0.5 })],
      ['infinite clock-skew tolerance', () => createPipelineStatusHandlers({ secret: 's', store, clockSkewToleranceMs: Infinity })],
    ]
    for (const [name, create] of cases) {
      let caught: unknown
      try {
        create()
      } catch (error) {
        caught = error
      }
      expect(isServerConfigurationError(caught), name).toBe(true)
    }
  })

  it('an option of the wrong type is refused with its type shown, e.g. a number read from an environment variable as a string', () => {
    const store = new MemoryStore()
    const messageOf = (create: () => unknown): string => {
      try {
        create()
      } catch (error) {
        expect(isServerConfigurationError(error)).toBe(true)
        return (error as Error).message
      }
      throw new Error('expected a ServerConfigurationError')
    }
    const cases: Array<[() => unknown, string]> = [
      [
        () => createPipelineStatusHandlers({ secret: 's', store, clockSkewToleranceMs: '600000' as never }),
        'clockSkewToleranceMs must be a whole number of milliseconds, 0 or more, got "600000" (a string)',
      ],
      [() => createPipelineStatusHandlers({ secret: 's', store, clockSkewToleranceMs: -1 }), 'clockSkewToleranceMs must be a whole number of milliseconds, 0 or more, got -1'],
      [() => createPipelineStatusHandlers({ secret: 's', store, maxBodyBytes: '1048576' as never }), 'maxBodyBytes must be a positive whole number, got "1048576" (a string)'],
      [() => createPipelineStatusHandlers({ secret: 's', store, maxBodyBytes: true as never }), 'maxBodyBytes must be a positive whole number, got true (a boolean)'],
      [
        () => createPipelineStatusHandlers({ secret: 's', store, signing: { secret: 'k', toleranceSeconds: '300' as never } }),
        'signing.toleranceSeconds must be a positive number of seconds, got "300" (a string)',
      ],
    ]
    expect(cases.map(([create]) => messageOf(create))).toEqual(cases.map(([, message]) => message))
  })

  it('a secret in the wrong header does not count', async () => {
    const handlers = createPipelineStatusHandlers({ store: new MemoryStore(), secret: SECRET, logger: quiet })
    const request = buildRequest(BASE_URL, { path: '/runs', json: {}, secret: null, headers: { Authorization: `Bearer ${SECRET}` } })
    await expectProblem(await handlers.fetch(request), 401, 'unauthorized')
  })
})

describe('web handlers: never throw', () => {
  it('answers 500 when the authorize hook throws, and when the logger throws too', async () => {
    const throwingLogger = {
      warn: () => {
        throw new Error('logger down')
      },
      error: () => {
        throw new Error('logger down')
      },
    }
    const handlers = createPipelineStatusHandlers({
      store: failingStore('throwing'),
      secret: SECRET,
      logger: throwingLogger,
      authorize: () => {
        throw new Error('session store down')
      },
    })
    await expectProblem(await handlers.fetch(buildRequest(BASE_URL, { path: '/r/status', secret: null })), 500, 'internal_error')
    await expectProblem(await handlers.fetch(buildRequest(BASE_URL, { path: '/runs', json: {} })), 500, 'internal_error')
    await expectProblem(await handlers.fetch(buildRequest(BASE_URL, { path: '/runs', json: {}, secret: 'x' })), 401, 'unauthorized')
  })

  it('refuses a stage number outside the rule with 400 even when the database is down (never a 503 a runner would retry)', async () => {
    // A refused number's message reads the run for its N; that read failing must not turn the
    // caller's mistake into "try again later". Stage updates, heartbeats and the output route alike.
    const handlers = createPipelineStatusHandlers({ store: failingStore('unavailable'), secret: SECRET, logger: quiet })
    const rule = [{ field: 'stageNumber', message: 'stageNumber must be a whole number from 1 to 2147483647' }]
    const update = await expectProblem(await handlers.fetch(buildRequest(BASE_URL, { path: '/r/stage-update', json: makeStageUpdate({ stageNumber: 0 }) })), 400, 'validation_failed')
    expect(update.errors).toEqual(rule)
    const beat = await expectProblem(await handlers.fetch(buildRequest(BASE_URL, { path: '/r/heartbeat', json: { stageNumber: 1.5 } })), 400, 'validation_failed')
    expect(beat.errors).toEqual(rule)
    const chunk = buildRequest(BASE_URL, { path: '/r/stages/0/output', json: { attempt: 1, offset: 0, text: 'x' } })
    expect((await expectProblem(await handlers.fetch(chunk), 400, 'validation_failed')).errors).toEqual(rule)
  })

  it('answers the problem an authorize hook throws; its 401 is authentication_required, not the webhook secret', async () => {
    const handlers = createPipelineStatusHandlers({
      store: new MemoryStore(),
      secret: SECRET,
      authorize: ({ request }) => {
        if (request.headers.has('cookie')) throw new HttpProblemError('run_not_found', { detail: 'Hidden' })
        throw new HttpProblemError('unauthorized', { detail: 'Sign in first' })
      },
    })
    const problem = await expectProblem(await handlers.fetch(buildRequest(BASE_URL, { path: '/r/status', secret: null })), 401, 'authentication_required')
    expect(problem).toMatchObject({ detail: 'Sign in first', title: 'Authentication required' })
    const hidden = buildRequest(BASE_URL, { path: '/r/status', secret: null, headers: { Cookie: 'session=x' } })
    expect((await expectProblem(await handlers.fetch(hidden), 404, 'run_not_found')).detail).toBe('Hidden')
  })

  it('hands authorize the request itself as native, or what an adapter passes', async () => {
    const seen: unknown[] = []
    const handlers = createPipelineStatusHandlers({
      store: new MemoryStore(),
      secret: SECRET,
      authorize: ({ native, action, runId }) => {
        seen.push({ native, action, runId })
        return false
      },
    })
    const request = buildRequest(BASE_URL, { path: '/run%3A1/status', secret: null })
    await expectProblem(await handlers.fetch(request), 403, 'forbidden')
    const frameworkRequest = { session: { user: 'alice' } }
    await expectProblem(await handlers.status(buildRequest(BASE_URL, { path: '/r/status', secret: null }), 'r', frameworkRequest), 403, 'forbidden')
    expect(seen).toEqual([
      { native: request, action: 'read', runId: 'run:1' },
      { native: frameworkRequest, action: 'read', runId: 'r' },
    ])
  })

  it('a Request whose body was already read answers 500 body_already_consumed and logs the fix once', async () => {
    const errors: unknown[][] = []
    const handlers = createPipelineStatusHandlers({ store: new MemoryStore(), secret: SECRET, logger: { warn: () => {}, error: (...args) => void errors.push(args) } })
    for (const body of ['{"id":"a"}', '{"id":"caf\u00e9","n":5.0}']) {
      const request = buildRequest(BASE_URL, { path: '/runs', body })
      await request.text()
      await expectProblem(await handlers.fetch(request), 500, 'body_already_consumed')
    }
    expect(errors).toHaveLength(1)
    expect(String(errors[0]?.[0])).toMatch(/before the pipeline-status handlers/)
  })

  it('logs refused credentials as warnings without the secret', async () => {
    const warn = vi.fn()
    const handlers = createPipelineStatusHandlers({ store: new MemoryStore(), secret: SECRET, logger: { warn, error: () => {} } })
    await handlers.fetch(buildRequest(BASE_URL, { path: '/runs', json: {}, secret: 'typo-secret' }))
    expect(warn).toHaveBeenCalledTimes(1)
    expect(JSON.stringify(warn.mock.calls)).not.toContain('typo-secret')
    expect(JSON.stringify(warn.mock.calls)).not.toContain(SECRET)
  })
})

describe('web handlers: bodies', () => {
  it('stops reading a streamed body without Content-Length as soon as it passes the limit', async () => {
    let pulled = 0
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        pulled += 4096
        controller.enqueue(new Uint8Array(4096).fill(0x20))
      },
    })
    const handlers = createPipelineStatusHandlers({ store: new MemoryStore(), secret: SECRET, maxBodyBytes: 10_000 })
    const request = buildRequest(BASE_URL, { path: '/r/stage-update', body })
    expect(request.headers.get('content-length')).toBeNull()
    await expectProblem(await handlers.fetch(request), 413, 'payload_too_large')
    // An endless body: the handlers read just past the limit and cancelled the rest.
    expect(pulled).toBeLessThanOrEqual(10_000 + 3 * 4096)
  })

  it('refuses a declared Content-Length over the limit before reading anything', async () => {
    let pulled = 0
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        pulled += 1
        controller.enqueue(new Uint8Array(10))
      },
    })
    const handlers = createPipelineStatusHandlers({ store: new MemoryStore(), secret: SECRET, maxBodyBytes: 100 })
    const request = buildRequest(BASE_URL, { path: '/r/stage-update', body, headers: { 'Content-Length': '1000000' } })
    await expectProblem(await handlers.fetch(request), 413, 'payload_too_large')
    expect(pulled).toBeLessThanOrEqual(1) // at most the stream's own initial pull
  })

  it('answers a body that breaks off with 400, not 500', async () => {
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('{"stageNumber":'))
        controller.error(new Error('socket hang up'))
      },
    })
    const handlers = createPipelineStatusHandlers({ store: new MemoryStore(), secret: SECRET })
    await expectProblem(await handlers.fetch(buildRequest(BASE_URL, { path: '/r/stage-update', body })), 400, 'invalid_json')
  })

  it('accepts the default 1 MiB and refuses one byte more', async () => {
    const handlers = createPipelineStatusHandlers({ store: new MemoryStore(), secret: SECRET })
    const api = new Api({ send: (spec) => handlers.fetch(buildRequest(BASE_URL, spec)), close: async () => {} })
    const id = await api.createRun()
    const json = JSON.stringify(makeStageUpdate({ output: 'x' }))
    const exact = json + ' '.repeat(1024 * 1024 - json.length)
    expect((await api.stage(id, undefined, { body: exact })).status).toBe(200)
    await expectProblem(await api.stage(id, undefined, { body: streamOf(1024 * 1024 + 1) }), 413, 'payload_too_large')
  })
})

describe('web handlers: routing options', () => {
  it('per-route handlers take the run id as an argument or from the path', async () => {
    const handlers = createPipelineStatusHandlers({ store: new MemoryStore(), secret: SECRET })
    const created = await handlers.createRun(buildRequest(BASE_URL, { path: '/runs', json: { id: 'direct-1' } }))
    expect(created.status).toBe(201)
    // Any URL: the id comes from the argument.
    const update = buildRequest('http://app.test/anything', { path: '', json: makeStageUpdate() })
    expect((await handlers.stageUpdate(update, 'direct-1')).status).toBe(200)
    const fromPath = buildRequest(BASE_URL, { path: '/direct-1/status' })
    expect((await handlers.status(fromPath)).status).toBe(200)
    await expectProblem(await handlers.status(buildRequest('http://app.test/elsewhere', { path: '' })), 404, 'route_not_found')
    await expectProblem(await handlers.complete(buildRequest(BASE_URL, { path: '/direct-1/complete', method: 'PUT', json: {} }), 'direct-1'), 405, 'method_not_allowed')
  })

  it('serves a custom base path and stage catalogue', async () => {
    const handlers = createPipelineStatusHandlers({
      store: new MemoryStore(),
      secret: SECRET,
      basePath: 'hooks/pipeline/',
      stages: defineStages(['Fetch', 'Transform', 'Load']),
    })
    expect(handlers.basePath).toBe('/hooks/pipeline')
    const base = 'http://app.test/hooks/pipeline'
    const api = new Api({ send: (spec) => handlers.fetch(buildRequest(base, spec)), close: async () => {} })
    const id = await api.createRun(uniqueRunId())
    const problem = await expectProblem(await api.stage(id, { stageNumber: 4, stageName: 'Extra', status: 'PROCESSING' }), 400, 'validation_failed')
    expect(problem.errors).toEqual([{ field: 'stageNumber', message: 'stageNumber must be a whole number from 1 to 3' }])
    const done = await api.stageOk(id, { stageNumber: 3, stageName: 'Load', status: 'COMPLETED' })
    expect(done.run.status).toBe('COMPLETED')
    await expectProblem(await handlers.fetch(buildRequest(BASE_URL, { path: '/runs', json: {} })), 404, 'route_not_found')
  })

  it('marks every response as not cacheable and every problem with its type URI', async () => {
    const handlers = createPipelineStatusHandlers({ store: new MemoryStore(), secret: SECRET })
    const ok = await handlers.fetch(buildRequest(BASE_URL, { path: '/runs', json: {} }))
    expect(ok.headers.get('cache-control')).toBe('no-store')
    const problem = await handlers.fetch(buildRequest(BASE_URL, { path: '/nope/status' }))
    expect(problem.headers.get('cache-control')).toBe('no-store')
    expect(Problem.parse(await problem.json()).type).toBe('urn:pipeline-status-sdk:problem:run-not-found')
  })
})

afterEach(() => vi.unstubAllEnvs())

describe('web handlers: the conflict warning', () => {
  it("a runner's CANCELLED with an output after the app's cancel is a conflict, logged without blaming two runners", async () => {
    const warnings: string[] = []
    const handlers = createPipelineStatusHandlers({
      store: new MemoryStore(),
      secret: SECRET,
      logger: { warn: (message) => void warnings.push(message), error: () => {} },
    })
    const send = async (path: string, json: unknown) => {
      const response = await handlers.fetch(buildRequest(BASE_URL, { path, json }))
      expect(response.status).toBe(path === '/runs' ? 201 : 200)
      return (await response.json()) as Record<string, unknown>
    }
    await send('/runs', { id: 'cancelled_by_app' })
    await send('/cancelled_by_app/stage-update', makeStageUpdate({ stageNumber: 1, status: 'PROCESSING' }))
    await send('/cancelled_by_app/cancel', { reason: 'the user pressed stop' })
    const answer = await send('/cancelled_by_app/stage-update', makeStageUpdate({ stageNumber: 1, status: 'CANCELLED', output: 'stopped at row 12' }))
    expect(answer).toMatchObject({ outcome: 'conflict', stage: { stageNumber: 1, status: 'CANCELLED', output: null } })
    expect(warnings).toEqual([
      'pipeline-status: run cancelled_by_app: stage 1 is already CANCELLED with another output; the stored output stays and the ' +
        'update was answered 200 outcome "conflict" (logged once per run). Cause: the stage was already final with another output, ' +
        "set earlier by a cancel (the app's POST /cancel stores unfinished stages CANCELLED without output), by another runner on " +
        'the same run id, or by a run of this stage again. Fix: nothing after a cancel; otherwise give each execution its own run id',
    ])
  })
})

describe("web handlers: a PrismaStore without its own logger warns through the handlers' logger", () => {
  /** A pool behind a transaction pooler: every named statement is refused with 26000, unnamed ones answer no rows. */
  const poolerPool = () => ({
    query: async (config: { name?: string; text: string; values: unknown[] }) => {
      if (config.name) throw Object.assign(new Error(`prepared statement "${config.name}" does not exist`), { code: '26000' })
      return { rows: [] }
    },
  })
  const unusedClient = () => {
    const fail = async () => {
      throw new Error('not used: the store reads through its pool')
    }
    const delegates = {
      pipelineRun: { findUnique: fail, findUniqueOrThrow: fail, findMany: fail, createMany: fail, update: fail },
      stageOutput: { findUnique: fail, upsert: fail },
    }
    return { ...delegates, $queryRawUnsafe: fail, $transaction: fail } as unknown as PrismaStoreClient
  }
  const recorder = () => {
    const warnings: string[] = []
    return { warnings, logger: { warn: (message: string) => void warnings.push(message), error: () => {} } }
  }
  const statusOfUnknownRun = (handlers: { fetch: (request: Request) => Promise<Response> }) =>
    handlers.fetch(buildRequest(BASE_URL, { path: '/no_such_run/status' }))

  it('the pool fallback warning of a store passed without a logger goes to the handlers\' logger', async () => {
    const app = recorder()
    const handlers = createPipelineStatusHandlers({ store: createPrismaStore({ prisma: unusedClient(), pool: poolerPool() }), secret: SECRET, logger: app.logger })
    await expectProblem(await statusOfUnknownRun(handlers), 404, 'run_not_found')
    expect(app.warnings.filter((line) => /named prepared statement/.test(line))).toEqual([
      expect.stringMatching(/^pipeline-status: the database refused a named prepared statement \(26000: prepared statement "\S+" does not exist\)/),
    ])
  })

  it('a store with its own logger keeps it', async () => {
    const app = recorder()
    const own = recorder()
    const store = createPrismaStore({ prisma: unusedClient(), pool: poolerPool(), logger: own.logger })
    const handlers = createPipelineStatusHandlers({ store, secret: SECRET, logger: app.logger })
    await expectProblem(await statusOfUnknownRun(handlers), 404, 'run_not_found')
    const named = (lines: string[]) => lines.filter((line) => /named prepared statement/.test(line)).length
    expect({ app: named(app.warnings), own: named(own.warnings) }).toEqual({ app: 0, own: 1 })
  })
})
