/**
 * `createNextRouteHandlers(() => options)`: the options made at the first request, once, shared
 * by concurrent first requests, called again after a failure (answered 500 problem+json meanwhile),
 * awaited with `ready()`, typed like the object forms (a property that is not an option is a
 * compile error, as users compile it); and the whole contract through the per-route handlers on
 * options from an async function.
 */
import { fileURLToPath } from 'node:url'
import { RunStatusResponse } from 'pipeline-status-sdk'
import { createNextRouteHandlers, type NextRouteHandlersOptions } from 'pipeline-status-sdk/next'
import type { PgConnections } from 'pipeline-status-sdk/pg'
import { type AuthorizeInput, createPrismaStore, isServerConfigurationError, MemoryStore } from 'pipeline-status-sdk/server'
import type { NextRequest } from 'next/server.js'
import { afterEach, describe, expect, expectTypeOf, it, vi } from 'vitest'
import type { PrismaClient } from '../../src/generated/prisma/client.js'
import { makeCompleteRun, makeStageUpdate } from '../support/fixtures.js'
import { buildRequest, expectProblem, SECRET } from '../contract/suite/harness.js'
import { describeContract } from '../contract/suite/index.js'
import { BASE_URL, nextPerRouteLazyTarget } from '../contract/targets.js'
import { extractCodeBlocks, typeCheckBlocks } from '../docs/code-blocks.js'

/** `liveStats().closedStreams` before any stream was ended for a cause: every cause at 0. */
const NONE_CLOSED = { 'not-admitted': 0, 'update-unavailable': 0, 'credential-expired': 0, deleted: 0, 'membership-failed': 0 }

describeContract('next route per file, options from an async function', () => nextPerRouteLazyTarget)

/** A promise settled from outside. */
function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void; reject: (error: unknown) => void } {
  let resolve!: (value: T) => void
  let reject!: (error: unknown) => void
  const promise = new Promise<T>((res, rej) => {
    resolve = res
    reject = rej
  })
  return { promise, resolve, reject }
}

const createRun = (id: string) => buildRequest(BASE_URL, { path: '/runs', json: { id } })
const status = (id: string) => buildRequest(BASE_URL, { path: `/${id}/status` })
const params = (runId: string) => ({ params: Promise.resolve({ runId }) })

describe('next route handlers with options from a function', () => {
  afterEach(() => {
    vi.restoreAllMocks()
  })

  it('calls the function at the first request, not at creation, and never again', async () => {
    let calls = 0
    const store = new MemoryStore()
    const next = createNextRouteHandlers(() => {
      calls++
      return { store, secret: SECRET }
    })
    // Creating them, and what reads no handlers, call nothing (as `next build` loading the module).
    expect(calls).toBe(0)
    expect(next.liveStats()).toEqual({ openStreams: 0, slowStreamsClosed: 0, closedStreams: NONE_CLOSED })
    await next.close()
    expect(calls).toBe(0)

    expect((await next.createRun(createRun('lazy-1'))).status).toBe(201)
    expect(calls).toBe(1)
    expect((await next.stageUpdate(buildRequest(BASE_URL, { path: '/lazy-1/stage-update', json: makeStageUpdate() }), params('lazy-1'))).status).toBe(200)
    expect(RunStatusResponse.parse(await (await next.GET(status('lazy-1'))).json()).stages).toMatchObject([{ stageNumber: 1, status: 'PROCESSING' }])
    expect(next.handlers).toBe(next.handlers)
    expect(calls).toBe(1)
    // The handlers were made on the function's store.
    expect((await store.getRun('lazy-1'))?.run.status).toBe('PROCESSING')
  })

  it('shares one call among concurrent first requests, and the handlers created from it', async () => {
    let calls = 0
    const options = deferred<NextRouteHandlersOptions>()
    const next = createNextRouteHandlers(() => {
      calls++
      return options.promise
    })
    const first = [
      next.POST(createRun('c-1')),
      next.createRun(createRun('c-2')),
      next.status(status('c-1'), params('c-1')),
      next.GET(status('c-2')),
    ]
    // The handlers getter does not wait: while the call is pending it says so.
    expect(() => next.handlers).toThrow(/not created yet: the promise their options function returned has not settled/)
    expect(calls).toBe(1)
    options.resolve({ store: new MemoryStore(), secret: SECRET })
    const answers = await Promise.all(first)
    expect(answers.map((answer) => answer.status)).toEqual([201, 201, expect.any(Number), expect.any(Number)])
    // Both runs exist on the one store: every request went to the same handlers.
    for (const id of ['c-1', 'c-2']) expect((await next.GET(status(id))).status).toBe(200)
    expect(next.handlers.liveStats()).toEqual(next.liveStats())
    expect(calls).toBe(1)
  })

  it('answers 500 configuration_error naming the failed options function when it throws, logs why, and calls it again at the next request', async () => {
    const logged = vi.spyOn(console, 'error').mockImplementation(() => {})
    let calls = 0
    const next = createNextRouteHandlers(() => {
      calls++
      if (calls === 1) throw new TypeError('DATABASE_URL is not set (postgres://admin:hunter2@db)')
      return { store: new MemoryStore(), secret: SECRET }
    })
    const problem = await expectProblem(await next.createRun(createRun('t-1')), 500, 'configuration_error')
    expect(problem.detail).toBe(
      'The options function of the pipeline-status route handlers failed (TypeError); the server log has its message, and the next request calls it again',
    )
    // The message (which may hold a connection string) goes to the log only.
    expect(JSON.stringify(problem)).not.toContain('hunter2')
    expect(logged).toHaveBeenCalledTimes(1)
    expect(String(logged.mock.calls[0]?.[0])).toContain(
      'the options function of createNextRouteHandlers failed, so the requests waiting for it are answered 500 configuration_error (ready() rejects) and the next request, or ready(), calls it again: DATABASE_URL is not set',
    )
    // Not kept: the next request calls the function again, and is served.
    expect((await next.createRun(createRun('t-1'))).status).toBe(201)
    expect(calls).toBe(2)
    expect((await next.GET(status('t-1'))).status).toBe(200)
    expect(calls).toBe(2)
  })

  it('answers every request waiting for a rejected call with the 500, then calls the function again', async () => {
    const logged = vi.spyOn(console, 'error').mockImplementation(() => {})
    let calls = 0
    const attempts = [deferred<NextRouteHandlersOptions>(), deferred<NextRouteHandlersOptions>()]
    const next = createNextRouteHandlers(() => attempts[calls++]!.promise)
    const waiting = [next.createRun(createRun('r-1')), next.status(status('r-1'), params('r-1')), next.GET(status('r-1'))]
    attempts[0]!.reject('secret store unreachable')
    for (const answer of await Promise.all(waiting)) {
      // A thrown non-Error has no name to give.
      const problem = await expectProblem(answer, 500, 'configuration_error')
      expect(problem.detail).toBe(
        'The options function of the pipeline-status route handlers failed; the server log has its message, and the next request calls it again',
      )
    }
    expect(calls).toBe(1)
    expect(logged).toHaveBeenCalledTimes(1)
    expect(String(logged.mock.calls[0]?.[0])).toMatch(/calls it again: secret store unreachable$/)
    // Reading the handlers now starts the next call, and says it has not settled.
    expect(() => next.handlers).toThrow(/not created yet/)
    expect(calls).toBe(2)
    const retried = next.createRun(createRun('r-1'))
    attempts[1]!.resolve({ store: new MemoryStore(), secret: SECRET })
    expect((await retried).status).toBe(201)
    expect(calls).toBe(2)
    expect(next.handlers).toBeDefined()
  })

  it('keeps options that cannot work and answers them like the object form: logged once through their logger, every request 500', async () => {
    const saved = process.env['WEBHOOK_SECRET']
    delete process.env['WEBHOOK_SECRET']
    try {
      const lines: string[] = []
      let calls = 0
      const next = createNextRouteHandlers(() => {
        calls++
        return { store: new MemoryStore(), logger: { warn: () => {}, error: (message: string) => void lines.push(message) } }
      })
      for (let i = 0; i < 2; i++) {
        const problem = await expectProblem(await next.createRun(createRun('cfg-1')), 500, 'configuration_error')
        expect(problem.detail).toBe('The pipeline-status route handlers are not configured; the server log says what is missing')
      }
      expect(calls).toBe(1)
      expect(lines).toHaveLength(1)
      expect(lines[0]).toContain('WEBHOOK_SECRET')
      expect(() => next.handlers).toThrow(/WEBHOOK_SECRET/)
    } finally {
      if (saved !== undefined) process.env['WEBHOOK_SECRET'] = saved
    }
  })

  it('a function that returns no object is answered as a failed call', async () => {
    const logged = vi.spyOn(console, 'error').mockImplementation(() => {})
    const next = createNextRouteHandlers((() => undefined) as unknown as () => NextRouteHandlersOptions)
    const problem = await expectProblem(await next.GET(status('x')), 500, 'configuration_error')
    expect(problem.detail).toContain('failed (TypeError)')
    expect(String(logged.mock.calls[0]?.[0])).toContain('it returned undefined, not an options object')
  })

  it('end to end: an async function with a custom segment and hooks, through the per-route and catch-all handlers', async () => {
    const completed: Array<{ tx: MemoryStore; runId: string; payload: unknown }> = []
    const store = new MemoryStore()
    const next = createNextRouteHandlers(async () => {
      // What an app does here: read its settings, open its clients.
      await new Promise((resolve) => setImmediate(resolve))
      return {
        store,
        secret: SECRET,
        runIdParam: 'id',
        onRunCompleted: async (tx, run, payload) => {
          expectTypeOf(tx).toEqualTypeOf<MemoryStore>()
          completed.push({ tx, runId: run.id, payload })
        },
      }
    })
    const id = 'e2e-1'
    expect((await next.createRun(createRun(id))).status).toBe(201)
    const segment = { params: Promise.resolve({ id }) }
    for (const stageNumber of [1, 2, 3, 4, 5]) {
      const update = buildRequest(BASE_URL, { path: `/${id}/stage-update`, json: makeStageUpdate({ stageNumber, status: 'COMPLETED', output: `out ${stageNumber}` }) })
      expect((await next.stageUpdate(update, segment)).status).toBe(200)
    }
    const beat = await next.heartbeat(buildRequest(BASE_URL, { path: `/${id}/heartbeat`, json: { stageNumber: 5 } }), segment)
    expect(await beat.json()).toMatchObject({ outcome: 'stale', stage: { output: 'out 5' }, run: { status: 'COMPLETED' } })
    const complete = await next.POST(buildRequest(BASE_URL, { path: `/${id}/complete`, json: makeCompleteRun({ fullReportMarkdown: '# done' } as never) }))
    expect(await complete.json()).toMatchObject({ outcome: 'applied', run: { status: 'COMPLETED' } })
    expect(completed).toEqual([{ tx: store, runId: id, payload: expect.objectContaining({ fullReportMarkdown: '# done' }) }])
    const read = RunStatusResponse.parse(await (await next.status(status(id), segment)).json())
    expect(read.run.status).toBe('COMPLETED')
    expect(read.stages.map((stage) => stage.output)).toEqual(['out 1', 'out 2', 'out 3', 'out 4', 'out 5'])
    // Without a secret the routes still refuse: the function's options are the ones in force.
    await expectProblem(await next.GET(buildRequest(BASE_URL, { path: `/${id}/status`, secret: null })), 401, 'unauthorized')
    await next.close()
  })
})

describe('next route handlers: ready()', () => {
  afterEach(() => {
    vi.restoreAllMocks()
  })

  it('resolves at once with options given as an object', async () => {
    const next = createNextRouteHandlers({ store: new MemoryStore(), secret: SECRET })
    await expect(next.ready()).resolves.toBeUndefined()
    expect(next.handlers).toBeDefined()
  })

  it('with a function: makes its call if no request has, shares it with the requests, and resolves once its options are made', async () => {
    let calls = 0
    const options = deferred<NextRouteHandlersOptions>()
    const next = createNextRouteHandlers(() => {
      calls++
      return options.promise
    })
    expect(calls).toBe(0)
    let settled = false
    const ready = next.ready().then(() => {
      settled = true
    })
    expect(calls).toBe(1)
    const request = next.createRun(createRun('ready-1'))
    // A turn of the event loop: nothing settles it but the options, which are still pending.
    await new Promise((resolve) => setImmediate(resolve))
    expect(settled).toBe(false)
    expect(() => next.handlers).toThrow('has not settled (they are created at the first request); `await ready()` waits for them')
    options.resolve({ store: new MemoryStore(), secret: SECRET })
    await ready
    expect(settled).toBe(true)
    expect(next.handlers.liveStats()).toEqual({ openStreams: 0, slowStreamsClosed: 0, closedStreams: NONE_CLOSED })
    expect((await request).status).toBe(201)
    // Once made, the options are kept: ready() settles without calling the function again.
    await expect(next.ready()).resolves.toBeUndefined()
    expect(calls).toBe(1)
  })

  it('rejects with the ServerConfigurationError of options that cannot work, the one the requests are answered 500 for, every time', async () => {
    const quiet = { warn: () => {}, error: () => {} }
    const objectForm = createNextRouteHandlers({ store: new MemoryStore(), secret: [], logger: quiet })
    const objectError: unknown = await objectForm.ready().catch((error: unknown) => error)
    expect(isServerConfigurationError(objectError)).toBe(true)
    expect((objectError as Error).message).toMatch(/^No webhook secret configured/)

    let calls = 0
    const next = createNextRouteHandlers(async () => {
      calls++
      return { store: new MemoryStore(), secret: [], logger: quiet }
    })
    const error: unknown = await next.ready().catch((rejected: unknown) => rejected)
    expect(isServerConfigurationError(error)).toBe(true)
    expect((error as Error).message).toMatch(/^No webhook secret configured/)
    const problem = await expectProblem(await next.createRun(createRun('cfg-1')), 500, 'configuration_error')
    expect(problem.detail).toBe('The pipeline-status route handlers are not configured; the server log says what is missing')
    // Kept: the same error again, and the function is not called again.
    await expect(next.ready()).rejects.toBe(error)
    expect(() => next.handlers).toThrow(error as Error)
    expect(calls).toBe(1)
  })

  it('rejects when the function rejects, with what it rejected with as cause, as the waiting requests are answered; the next ready() calls it again', async () => {
    const logged = vi.spyOn(console, 'error').mockImplementation(() => {})
    let calls = 0
    const attempts = [deferred<NextRouteHandlersOptions>(), deferred<NextRouteHandlersOptions>()]
    const next = createNextRouteHandlers(() => attempts[calls++]!.promise)
    const ready = next.ready().catch((error: unknown) => error)
    const waiting = next.createRun(createRun('rr-1'))
    const failure = new TypeError('DATABASE_URL is not set')
    attempts[0]!.reject(failure)
    const error = await ready
    expect(isServerConfigurationError(error)).toBe(true)
    expect((error as Error).message).toBe(
      'The options function of createNextRouteHandlers failed, and the next request (or ready()) calls it again: DATABASE_URL is not set',
    )
    expect((error as Error).cause).toBe(failure)
    const problem = await expectProblem(await waiting, 500, 'configuration_error')
    expect(problem.detail).toContain('The options function of the pipeline-status route handlers failed (TypeError)')
    expect(calls).toBe(1)
    expect(logged).toHaveBeenCalledTimes(1)

    // Not kept: the next ready() calls the function again, as the next request would.
    const retried = next.ready()
    expect(calls).toBe(2)
    attempts[1]!.resolve({ store: new MemoryStore(), secret: SECRET })
    await expect(retried).resolves.toBeUndefined()
    expect((await next.createRun(createRun('rr-1'))).status).toBe(201)
    expect(calls).toBe(2)
  })

  it('rejects when the function throws, and resolves once a later call succeeds', async () => {
    vi.spyOn(console, 'error').mockImplementation(() => {})
    let calls = 0
    const next = createNextRouteHandlers(() => {
      calls++
      if (calls === 1) throw new Error('secret store unreachable')
      return { store: new MemoryStore(), secret: SECRET }
    })
    const error: unknown = await next.ready().catch((thrown: unknown) => thrown)
    expect(isServerConfigurationError(error)).toBe(true)
    expect((error as Error).message).toMatch(/calls it again: secret store unreachable$/)
    await expect(next.ready()).resolves.toBeUndefined()
    expect(calls).toBe(2)
  })
})

describe('next route handlers with options from a function: types', () => {
  it('infer like the object forms (checked by tsc; nothing is called)', () => {
    const prisma = {} as PrismaClient
    const typed = () => {
      // `prisma`: tx is the client's own transaction client, sync or async.
      createNextRouteHandlers(() => ({
        prisma,
        onRunCompleted: async (tx) => {
          expectTypeOf(tx.pipelineRun.findMany).toBeFunction()
          expectTypeOf(tx).toHaveProperty('$executeRaw')
        },
      }))
      createNextRouteHandlers(async () => ({
        prisma,
        onRunEnded: async ({ tx }) => {
          expectTypeOf(tx).toHaveProperty('stageOutput')
        },
      }))
      // `store`: tx is the store's transaction type.
      createNextRouteHandlers(() => ({
        store: createPrismaStore({ prisma }),
        onRunCompleted: async (tx) => {
          expectTypeOf(tx).toHaveProperty('pipelineRun')
        },
      }))
      createNextRouteHandlers(async () => ({
        store: new MemoryStore(),
        onRunCompleted: async (tx) => {
          expectTypeOf(tx).toEqualTypeOf<MemoryStore>()
        },
      }))
      // authorize's native: Request, or NextRequest when annotated.
      createNextRouteHandlers(() => ({ store: new MemoryStore(), authorize: ({ native }) => (expectTypeOf(native).toEqualTypeOf<Request>(), true) }))
      createNextRouteHandlers(() => ({
        store: new MemoryStore(),
        authorize: ({ native }: AuthorizeInput<NextRequest>) => (expectTypeOf(native).toEqualTypeOf<NextRequest>(), true),
      }))
      // Options typed as either form.
      const either: NextRouteHandlersOptions = { store: new MemoryStore() }
      createNextRouteHandlers(() => either)
      createNextRouteHandlers(async () => either)
      // The object forms, after the function forms in the overload list, infer as before.
      createNextRouteHandlers({
        prisma,
        onRunCompleted: async (tx) => {
          expectTypeOf(tx).toHaveProperty('$executeRaw')
        },
      })
      createNextRouteHandlers({
        store: new MemoryStore(),
        onRunCompleted: async (tx) => {
          expectTypeOf(tx).toEqualTypeOf<MemoryStore>()
        },
      })
      // What a Next.js app spreads in: the store and live options of its pg connections.
      const db = {} as PgConnections
      createNextRouteHandlers(() => ({ ...db.handlerOptions({ prisma }), secret: SECRET, runIdParam: 'id' }))
      createNextRouteHandlers(async () => {
        const store = new MemoryStore()
        return { store, secret: SECRET }
      })
      // A property that is not an option is an error in what the function returns, as in an
      // object literal passed directly (TypeScript alone checks no excess property there):
      // sync, async, with callbacks, spread over options typed as either form.
      // @ts-expect-error 'secert' is not an option
      createNextRouteHandlers(() => ({ store: new MemoryStore(), secert: SECRET }))
      // @ts-expect-error 'secert' is not an option
      createNextRouteHandlers(async () => ({ store: new MemoryStore(), secert: SECRET }))
      // @ts-expect-error 'secert' is not an option
      createNextRouteHandlers(async () => ({
        prisma,
        secert: SECRET,
        onRunCompleted: async (tx) => {
          expectTypeOf(tx).toHaveProperty('$executeRaw')
        },
      }))
      // @ts-expect-error 'runIdParm' is not an option
      createNextRouteHandlers(() => {
        const store = new MemoryStore()
        return { store, runIdParm: 'id' }
      })
      // @ts-expect-error 'secert' is not an option
      createNextRouteHandlers(async () => ({ ...either, secert: SECRET }))
      // @ts-expect-error neither `store` nor `prisma`
      createNextRouteHandlers(() => ({ secret: SECRET }))
      // @ts-expect-error both `store` and `prisma`
      createNextRouteHandlers(() => ({ store: new MemoryStore(), prisma }))
      // @ts-expect-error a wrongly typed option
      createNextRouteHandlers(async () => ({ store: new MemoryStore(), runIdParam: 1 }))
    }
    expect(typed).toBeTypeOf('function')
  })

  it('says which property is not an option, in what a sync or async function returns, against the built package', async () => {
    // As a user's project compiles it (the built declarations, the docs' compiler options);
    // the valid call, the same but spelt right, compiles.
    const code = [
      "import { createNextRouteHandlers } from 'pipeline-status-sdk/next'",
      "import { MemoryStore } from 'pipeline-status-sdk/server'",
      "import { getPrisma } from '@/lib/prisma'",
      '',
      "export const a = createNextRouteHandlers(() => ({ store: new MemoryStore(), secert: process.env.PIPELINE_WEBHOOK_SECRET }))",
      'export const b = createNextRouteHandlers(async () => ({',
      '  prisma: getPrisma(),',
      "  secert: 'x',",
      '  onRunCompleted: async (tx) => {',
      '    await tx.$executeRaw`SELECT 1`',
      '  },',
      '}))',
      'export const c = createNextRouteHandlers(async () => ({',
      '  prisma: getPrisma(),',
      "  secret: 'x',",
      '  onRunCompleted: async (tx) => {',
      '    await tx.$executeRaw`SELECT 1`',
      '  },',
      '}))',
    ].join('\n')
    const blocks = extractCodeBlocks(['```ts', code, '```'].join('\n'), 'misspelt-option.md')
    const { diagnostics } = await typeCheckBlocks(fileURLToPath(new URL('../..', import.meta.url)), blocks)
    // Each error's last line: what the reader needs.
    expect(diagnostics.map(({ line, message }) => ({ line, last: message.split('\n').at(-1)?.trim() }))).toEqual([
      { line: 6, last: `Type 'undefined' is not assignable to type '"'secert' is not an option of createNextRouteHandlers"'.` },
      { line: 7, last: `Type 'string' is not assignable to type '"'secert' is not an option of createNextRouteHandlers"'.` },
    ])
  })
})
