/**
 * The handlers' behaviour from the outside, as requests and responses, registered against any
 * target: the Web handlers in memory, the Next.js route handlers, the Express router on a real
 * port over PostgreSQL. Every target runs the same scenarios, so they cannot drift apart.
 */
import {
  CompleteRunResponse,
  CreateRunResponse,
  PROBLEM_CONTENT_TYPE,
  Problem,
  RunStatusResponse,
  StageUpdateResponse,
} from 'pipeline-status-sdk'
import { createWebhookSignatureHeaders, type RunState, type WebhookSigningOptions } from 'pipeline-status-sdk/server'
import { describe, expect, it } from 'vitest'
import { makeCompleteRun, makeStageUpdate, PYTHON_RUNNER_PAYLOADS } from '../support/fixtures.js'

/** The secret every default client is configured with. */
export const SECRET = 'test-secret-7f3a9c2e'
/** A second secret, for rotation. */
export const OLD_SECRET = 'test-secret-old-41d8'
/** A Standard Webhooks signing secret. */
export const SIGNING_SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'

/** One completion the app's hook saw. */
export interface Completion {
  runId: string
  status: string
  payload: Record<string, unknown>
}

/** Options a scenario may start handlers with. */
export interface TargetOptions {
  secret?: string | string[]
  signing?: WebhookSigningOptions
  authorize?: (request: Request, runId: string) => boolean | Promise<boolean>
  onRunCompleted?: (tx: unknown, run: RunState, payload: Record<string, unknown>) => Promise<void> | void
  maxBodyBytes?: number
  /** A store that cannot reach its database (503), or one that fails with a secret-bearing error (500). */
  store?: 'unavailable' | 'throwing'
  logger?: { warn: (...args: unknown[]) => void; error: (...args: unknown[]) => void }
}

/** A request, relative to the base path. */
export interface RequestSpec {
  method?: string
  /** Relative to the base path, e.g. `/runs`. */
  path: string
  /** Serialized with `JSON.stringify`. */
  json?: unknown
  body?: string | Uint8Array | ReadableStream<Uint8Array>
  /** `null` sends none. @default SECRET */
  secret?: string | null
  /** `null` sends none. @default 'application/json' when there is a body */
  contentType?: string | null
  headers?: Record<string, string>
}

/** Handlers started on a target. */
export interface TargetClient {
  send(spec: RequestSpec): Promise<Response>
  close(): Promise<void>
}

/** Where the scenarios run. */
export interface ContractTarget {
  start(options: TargetOptions): Promise<TargetClient>
}

let counter = 0
/** A run id no other test uses. */
export function uniqueRunId(prefix = 'run'): string {
  counter += 1
  return `${prefix}-${counter}-${crypto.randomUUID().slice(0, 8)}`
}

/** Builds the `Request` of a spec against a base URL ending in the base path. */
export function buildRequest(base: string, spec: RequestSpec): Request {
  const headers = new Headers(spec.headers)
  const secret = spec.secret === undefined ? SECRET : spec.secret
  if (secret !== null) headers.set('X-Webhook-Secret', secret)
  const body = spec.json !== undefined ? JSON.stringify(spec.json) : spec.body
  const contentType = spec.contentType === undefined ? (body === undefined ? null : 'application/json') : spec.contentType
  if (contentType !== null) headers.set('Content-Type', contentType)
  const init: RequestInit & { duplex?: 'half' } = { method: spec.method ?? (body === undefined ? 'GET' : 'POST'), headers }
  if (body !== undefined) {
    init.body = body as BodyInit
    if (body instanceof ReadableStream) init.duplex = 'half'
  }
  return new Request(`${base}${spec.path}`, init)
}

/** Reads a problem response and checks its shape. */
export async function expectProblem(response: Response, status: number, code: string): Promise<Problem> {
  const text = await response.text()
  expect({ status: response.status, text }).toMatchObject({ status })
  expect(response.headers.get('content-type')).toBe(PROBLEM_CONTENT_TYPE)
  const problem = Problem.parse(JSON.parse(text))
  expect(problem).toMatchObject({ status, code })
  expect(text).not.toMatch(/\bat .+:\d+:\d+/) // no stack frames
  return problem
}

/** A streamed body of `size` bytes in 16 KiB chunks, with no length known in advance. */
export function streamOf(size: number, fill = 0x20): ReadableStream<Uint8Array> {
  let sent = 0
  return new ReadableStream({
    pull(controller) {
      if (sent >= size) return controller.close()
      const chunk = new Uint8Array(Math.min(16 * 1024, size - sent)).fill(fill)
      sent += chunk.length
      controller.enqueue(chunk)
    },
  })
}

/** A client with helpers for the routes. */
export class Api {
  constructor(readonly client: TargetClient) {}

  send(spec: RequestSpec): Promise<Response> {
    return this.client.send(spec)
  }

  async createRun(id = uniqueRunId()): Promise<string> {
    const response = await this.send({ path: '/runs', json: { id } })
    expect(response.status).toBe(201)
    return CreateRunResponse.parse(await response.json()).run.id
  }

  stage(runId: string, body: unknown, spec: Partial<RequestSpec> = {}): Promise<Response> {
    return this.send({ path: `/${encodeURIComponent(runId)}/stage-update`, json: body, ...spec })
  }

  async stageOk(runId: string, body: unknown): Promise<StageUpdateResponse> {
    const response = await this.stage(runId, body)
    const text = await response.text()
    expect({ status: response.status, text }).toMatchObject({ status: 200 })
    return StageUpdateResponse.parse(JSON.parse(text))
  }

  complete(runId: string, body: unknown, spec: Partial<RequestSpec> = {}): Promise<Response> {
    return this.send({ path: `/${encodeURIComponent(runId)}/complete`, json: body, ...spec })
  }

  async completeOk(runId: string, body: unknown): Promise<CompleteRunResponse> {
    const response = await this.complete(runId, body)
    const text = await response.text()
    expect({ status: response.status, text }).toMatchObject({ status: 200 })
    return CompleteRunResponse.parse(JSON.parse(text))
  }

  getStatus(runId: string, spec: Partial<RequestSpec> = {}): Promise<Response> {
    return this.send({ path: `/${encodeURIComponent(runId)}/status`, ...spec })
  }

  async status(runId: string): Promise<RunStatusResponse> {
    const response = await this.getStatus(runId)
    expect(response.status).toBe(200)
    return RunStatusResponse.parse(await response.json())
  }
}

const ALL_STAGES_TO_4 = [1, 2, 3, 4].map((n) => makeStageUpdate({ stageNumber: n, status: 'COMPLETED', output: `out ${n}` }))

/**
 * Registers the contract scenarios for a target. `setup` runs in `beforeAll` of the caller;
 * clients started here are closed by each scenario.
 */
export function describeContract(name: string, target: () => ContractTarget): void {
  const completions: Completion[] = []
  const recorder: NonNullable<TargetOptions['onRunCompleted']> = (_tx, run, payload) => {
    completions.push({ runId: run.id, status: run.status, payload })
  }
  const completionsOf = (runId: string) => completions.filter((c) => c.runId === runId)

  async function withApi<T>(options: TargetOptions, fn: (api: Api) => Promise<T>): Promise<T> {
    const client = await target().start({ onRunCompleted: recorder, ...options })
    try {
      return await fn(new Api(client))
    } finally {
      await client.close()
    }
  }
  const scenario = (title: string, fn: (api: Api) => Promise<void>, options: TargetOptions = {}) =>
    it(title, () => withApi(options, fn))

  describe(`${name}: routes`, () => {
    scenario('creates runs: 201 new (with or without an id), 200 for an existing id', async (api) => {
      const id = uniqueRunId()
      const created = await api.send({ path: '/runs', json: { id } })
      expect(created.status).toBe(201)
      expect(created.headers.get('content-type')).toMatch(/^application\/json/)
      expect(CreateRunResponse.parse(await created.json())).toMatchObject({ created: true, run: { id, status: 'PENDING' } })

      const again = await api.send({ path: '/runs', json: { id } })
      expect(again.status).toBe(200)
      expect(CreateRunResponse.parse(await again.json())).toMatchObject({ created: false, run: { id } })

      const generated = await api.send({ path: '/runs', json: {} })
      expect(generated.status).toBe(201)
      expect(CreateRunResponse.parse(await generated.json()).run.id).toMatch(/^[0-9a-f-]{36}$/)

      const empty = await api.send({ path: '/runs', method: 'POST', contentType: null })
      expect(empty.status).toBe(201)
      const emptyJson = await api.send({ path: '/runs', method: 'POST', body: '' })
      expect(emptyJson.status).toBe(201)
    })

    scenario('stores the Python runner payloads exactly and completes the run with the last stage', async (api) => {
      const id = await api.createRun()
      const processing = await api.stageOk(id, PYTHON_RUNNER_PAYLOADS.processing)
      expect(processing).toMatchObject({ outcome: 'applied', stage: { stageNumber: 1, status: 'PROCESSING' }, run: { status: 'PROCESSING' } })

      const json = await api.stageOk(id, PYTHON_RUNNER_PAYLOADS.completedJson)
      expect(json.stage).toMatchObject({
        status: 'COMPLETED',
        output: PYTHON_RUNNER_PAYLOADS.completedJson.output,
        completedAt: '2025-10-25T14:03:11.123Z',
      })
      for (const n of [2, 3, 4]) await api.stageOk(id, makeStageUpdate({ stageNumber: n, status: 'COMPLETED', output: `{"n": ${n}}` }))
      const last = await api.stageOk(id, PYTHON_RUNNER_PAYLOADS.completedMarkdown)
      expect(last.stage?.output).toBe(PYTHON_RUNNER_PAYLOADS.completedMarkdown.output)
      expect(last.run).toMatchObject({ status: 'COMPLETED', completedAt: '2025-10-25T14:09:58.000Z' })

      const status = await api.status(id)
      expect(status.run).toMatchObject({ id, status: 'COMPLETED', completionReceivedAt: null })
      expect(status.stages.map((s) => [s.stageNumber, s.stageName, s.status])).toEqual([
        [1, 'Input Processing', 'COMPLETED'],
        [2, 'Signal Amplification', 'COMPLETED'],
        [3, 'General Translation', 'COMPLETED'],
        [4, 'Brand Contextualization', 'COMPLETED'],
        [5, 'Opportunity Generation', 'COMPLETED'],
      ])
      expect(status.stages[0]?.output).toBe(PYTHON_RUNNER_PAYLOADS.completedJson.output)
    })

    scenario('runs onRunCompleted once with the payload when /complete follows the last stage', async (api) => {
      const id = await api.createRun()
      for (const update of ALL_STAGES_TO_4) await api.stageOk(id, update)
      await api.stageOk(id, PYTHON_RUNNER_PAYLOADS.completedMarkdown)
      expect(completionsOf(id)).toEqual([])

      const first = await api.completeOk(id, PYTHON_RUNNER_PAYLOADS.complete)
      expect(first).toMatchObject({ outcome: 'applied', run: { status: 'COMPLETED' } })
      expect(first.run.completionReceivedAt).not.toBeNull()
      const again = await api.completeOk(id, PYTHON_RUNNER_PAYLOADS.complete)
      expect(again.outcome).toBe('duplicate')
      expect(completionsOf(id)).toHaveLength(1)
      expect(completionsOf(id)[0]?.payload).toMatchObject({
        opportunities: [{ title: 'Pastry pop-ups', score: 0.92 }],
        fullReportMarkdown: '# Report\n\nAll good.',
        stageOutputs: { '1': '{"count": 1}' },
      })
    })

    scenario('completes a run explicitly and answers a repeated /complete as a duplicate', async (api) => {
      const id = await api.createRun()
      await api.stageOk(id, makeStageUpdate())
      const done = await api.completeOk(id, makeCompleteRun({ status: 'CANCELLED', error: 'stopped by user' }))
      expect(done.run).toMatchObject({ status: 'CANCELLED', error: 'stopped by user' })
      expect((await api.completeOk(id, makeCompleteRun({ status: 'CANCELLED' }))).outcome).toBe('duplicate')
      expect(completionsOf(id)).toHaveLength(1)
    })

    scenario('reads status of a run with an id that needs URL encoding', async (api) => {
      const id = await api.createRun(`${uniqueRunId()}:a.b~c_d`)
      await api.stageOk(id, makeStageUpdate())
      const status = await api.status(id)
      expect(status.run.id).toBe(id)
      expect(status.stages).toHaveLength(1)
    })
  })

  describe(`${name}: semantics over HTTP`, () => {
    scenario('GET /status sends the run version as ETag; If-None-Match answers 304 until the run changes', async (api) => {
      const id = await api.createRun()
      const statusOf = async (ifNoneMatch?: string, secret?: string | null) => {
        const response = await api.getStatus(id, {
          ...(ifNoneMatch === undefined ? {} : { headers: { 'If-None-Match': ifNoneMatch } }),
          ...(secret === undefined ? {} : { secret }),
        })
        return { status: response.status, etag: response.headers.get('etag'), body: await response.text() }
      }
      const created = await statusOf()
      expect([created.status, created.etag]).toEqual([200, '"0"'])
      expect(await statusOf('"0"')).toEqual({ status: 304, etag: '"0"', body: '' })
      // Authentication comes first: a matching tag without the secret is still refused.
      expect((await statusOf('"0"', null)).status).toBe(401)

      await api.stageOk(id, makeStageUpdate({ stageNumber: 1, status: 'PROCESSING', output: 'working' }))
      const changed = await statusOf('"0"')
      expect([changed.status, changed.etag]).toEqual([200, '"1"'])
      expect(RunStatusResponse.parse(JSON.parse(changed.body)).stages).toHaveLength(1)
      // A duplicate or a refused update changes nothing, so the tag stays.
      await api.stageOk(id, makeStageUpdate({ stageNumber: 1, status: 'PROCESSING', output: 'working' }))
      for (const tag of ['"1"', 'W/"1"', '"7", "1"', '*']) expect(await statusOf(tag)).toEqual({ status: 304, etag: '"1"', body: '' })

      await api.completeOk(id, makeCompleteRun({ status: 'FAILED', error: 'stopped' }))
      expect((await statusOf('"1"')).etag).toBe('"2"')
      expect((await api.stage(id, makeStageUpdate({ stageNumber: 2, status: 'CANCELLED' }))).status).toBe(409)
      expect((await statusOf('"2"')).status).toBe(304)
    })

    scenario('a late PROCESSING never wipes a COMPLETED stage', async (api) => {
      const id = await api.createRun()
      await api.stageOk(id, makeStageUpdate({ status: 'PROCESSING', output: 'working' }))
      await api.stageOk(id, makeStageUpdate({ status: 'COMPLETED', output: '{"result": 1}' }))
      const late = await api.stageOk(id, makeStageUpdate({ status: 'PROCESSING', output: '' }))
      expect(late).toMatchObject({ outcome: 'stale', stage: { status: 'COMPLETED', output: '{"result": 1}' } })
      expect((await api.status(id)).stages[0]).toMatchObject({ status: 'COMPLETED', output: '{"result": 1}' })
    })

    scenario('a CANCELLED stage cancels the run', async (api) => {
      const id = await api.createRun()
      await api.stageOk(id, makeStageUpdate({ stageNumber: 1, status: 'COMPLETED' }))
      const cancelled = await api.stageOk(id, makeStageUpdate({ stageNumber: 2, status: 'CANCELLED' }))
      expect(cancelled).toMatchObject({ outcome: 'applied', run: { status: 'CANCELLED' } })
      expect((await api.status(id)).run.completedAt).not.toBeNull()
    })

    scenario('concurrent updates of one run, each sent twice, serialise: every stage stored, the run finished once', async (api) => {
      const id = await api.createRun()
      const bodies = [1, 2, 3, 4, 5].flatMap((n) => [
        makeStageUpdate({ stageNumber: n, status: 'PROCESSING', output: '' }),
        makeStageUpdate({ stageNumber: n, status: 'COMPLETED', output: `out ${n}` }),
      ])
      const responses = await Promise.all([...bodies, ...bodies].map((body) => api.stage(id, body)))
      expect(responses.map((r) => r.status)).toEqual(responses.map(() => 200))
      const outcomes = await Promise.all(responses.map(async (r) => StageUpdateResponse.parse(await r.json()).outcome))
      // Each stage's COMPLETED is stored exactly once, whatever order the requests ran in.
      expect(outcomes.filter((o) => o === 'applied').length).toBeGreaterThanOrEqual(5)
      const { run, stages } = await api.status(id)
      expect(run.status).toBe('COMPLETED')
      expect(stages.map((s) => [s.stageNumber, s.status, s.output])).toEqual([1, 2, 3, 4, 5].map((n) => [n, 'COMPLETED', `out ${n}`]))
    })

    scenario('duplicates answer 200 with the stored state and change nothing', async (api) => {
      const id = await api.createRun()
      const update = makeStageUpdate({ status: 'COMPLETED', output: 'x', completedAt: '2025-10-25T14:03:11.123456Z' })
      const first = await api.stageOk(id, update)
      const before = await api.status(id)
      const again = await api.stageOk(id, update)
      expect(again.outcome).toBe('duplicate')
      expect(again.stage).toEqual(first.stage)
      expect(await api.status(id)).toEqual(before)
    })

    scenario('FAILED after the run completed answers 409 run_finished and changes nothing', async (api) => {
      const id = await api.createRun()
      for (const update of [...ALL_STAGES_TO_4.slice(0, 3)]) await api.stageOk(id, update)
      await api.stageOk(id, makeStageUpdate({ stageNumber: 5, status: 'COMPLETED', output: 'done' }))
      const before = await api.status(id)
      const problem = await expectProblem(await api.stage(id, makeStageUpdate({ stageNumber: 4, status: 'FAILED' })), 409, 'run_finished')
      expect(problem.detail).toContain('COMPLETED')
      expect(problem.detail).toContain('FAILED')
      expect(await api.status(id)).toEqual(before)
    })

    scenario('a late forward update that agrees with the outcome is stored', async (api) => {
      const id = await api.createRun()
      await api.stageOk(id, makeStageUpdate({ stageNumber: 5, status: 'COMPLETED', output: 'five' }))
      const late = await api.stageOk(id, makeStageUpdate({ stageNumber: 4, status: 'COMPLETED', output: 'four' }))
      expect(late).toMatchObject({ outcome: 'applied', stage: { output: 'four' }, run: { status: 'COMPLETED' } })
    })

    scenario('/complete COMPLETED cannot overwrite FAILED or CANCELLED', async (api) => {
      const failed = await api.createRun()
      await api.stageOk(failed, makeStageUpdate({ stageNumber: 3, status: 'FAILED', output: 'boom' }))
      const failedBefore = await api.status(failed)
      const p1 = await expectProblem(await api.complete(failed, makeCompleteRun()), 409, 'run_finished')
      expect(p1.detail).toMatch(/FAILED.*COMPLETED/)
      expect(await api.status(failed)).toEqual(failedBefore)

      const cancelled = await api.createRun()
      await api.completeOk(cancelled, makeCompleteRun({ status: 'CANCELLED' }))
      const cancelledBefore = await api.status(cancelled)
      await expectProblem(await api.complete(cancelled, makeCompleteRun()), 409, 'run_finished')
      expect(await api.status(cancelled)).toEqual(cancelledBefore)
      expect(completionsOf(failed)).toEqual([])
      expect(completionsOf(cancelled)).toHaveLength(1)
    })

    scenario('a finished stage cannot change its final status: 409 stage_finished', async (api) => {
      const id = await api.createRun()
      await api.stageOk(id, makeStageUpdate({ stageNumber: 2, status: 'COMPLETED' }))
      const problem = await expectProblem(await api.stage(id, makeStageUpdate({ stageNumber: 2, status: 'FAILED' })), 409, 'stage_finished')
      expect(problem.detail).toMatch(/Stage 2 is COMPLETED/)
    })

    scenario('unknown runs answer 404 run_not_found on every run route', async (api) => {
      const id = uniqueRunId('missing')
      await expectProblem(await api.stage(id, makeStageUpdate()), 404, 'run_not_found')
      await expectProblem(await api.complete(id, makeCompleteRun()), 404, 'run_not_found')
      await expectProblem(await api.getStatus(id), 404, 'run_not_found')
      await expectProblem(await api.getStatus('bad\u0000id'), 404, 'run_not_found')
    })
  })

  describe(`${name}: errors`, () => {
    scenario('unknown paths answer 404 route_not_found; wrong methods 405 with Allow', async (api) => {
      const id = await api.createRun()
      await expectProblem(await api.send({ path: `/${id}/nope`, json: {} }), 404, 'route_not_found')
      await expectProblem(await api.send({ path: `/${id}/stage-update/extra`, json: {} }), 404, 'route_not_found')
      await expectProblem(await api.send({ path: '/', method: 'GET' }), 404, 'route_not_found')

      const wrongGet = await api.send({ path: `/${id}/stage-update`, method: 'GET' })
      expect(wrongGet.headers.get('allow')).toBe('POST')
      await expectProblem(wrongGet, 405, 'method_not_allowed')
      const wrongPost = await api.send({ path: `/${id}/status`, json: {} })
      expect(wrongPost.headers.get('allow')).toBe('GET')
      await expectProblem(wrongPost, 405, 'method_not_allowed')
      for (const method of ['PUT', 'DELETE', 'PATCH']) {
        const response = await api.send({ path: '/runs', method, json: {} })
        expect(response.headers.get('allow')).toBe('POST')
        await expectProblem(response, 405, 'method_not_allowed')
      }
      const complete = await api.send({ path: `/${id}/complete`, method: 'GET' })
      expect(complete.headers.get('allow')).toBe('POST')
      await expectProblem(complete, 405, 'method_not_allowed')
    })

    scenario('invalid JSON answers 400 invalid_json without echoing the body', async (api) => {
      const id = await api.createRun()
      for (const body of ['{"stageNumber": 1,', 'not json SECRET-ISH', '', '   ', '{"a":1}{"b":2}']) {
        const problem = await expectProblem(await api.stage(id, undefined, { body }), 400, 'invalid_json')
        expect(problem.detail).not.toContain('SECRET-ISH')
      }
      await expectProblem(await api.complete(id, undefined, { body: new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]) }), 400, 'invalid_json')
      await expectProblem(await api.send({ path: '/runs', body: '{' }), 400, 'invalid_json')
    })

    scenario('validation failures name each field and why', async (api) => {
      const id = await api.createRun()
      const stageCases: Array<[unknown, string]> = [
        [{ stageName: 'x', status: 'PROCESSING' }, 'stageNumber'],
        [makeStageUpdate({ stageNumber: 0 }), 'stageNumber'],
        [makeStageUpdate({ stageNumber: 6 }), 'stageNumber'],
        [makeStageUpdate({ stageNumber: 1.5 }), 'stageNumber'],
        [{ ...makeStageUpdate(), stageNumber: '1' }, 'stageNumber'],
        [{ stageNumber: 1, status: 'PROCESSING' }, 'stageName'],
        [makeStageUpdate({ stageName: '' }), 'stageName'],
        [makeStageUpdate({ stageName: 'x'.repeat(201) }), 'stageName'],
        [{ stageNumber: 1, stageName: 'x' }, 'status'],
        [{ ...makeStageUpdate(), status: 'PENDING' }, 'status'],
        [{ ...makeStageUpdate(), status: 'DONE' }, 'status'],
        [{ ...makeStageUpdate(), output: 42 }, 'output'],
        [{ ...makeStageUpdate(), output: 'nul \u0000 byte' }, 'output'],
        [{ ...makeStageUpdate(), stageName: 'lone \ud800 surrogate' }, 'stageName'],
        [{ ...makeStageUpdate(), completedAt: 'yesterday' }, 'completedAt'],
        [[], ''],
        ['just a string', ''],
        [null, ''],
      ]
      for (const [body, field] of stageCases) {
        const problem = await expectProblem(await api.stage(id, body), 400, 'validation_failed')
        expect(problem.errors?.map((e) => e.field)).toContain(field)
        expect(problem.errors?.every((e) => e.message.length > 0)).toBe(true)
      }
      const stageBound = await expectProblem(await api.stage(id, makeStageUpdate({ stageNumber: 6 })), 400, 'validation_failed')
      expect(stageBound.errors).toEqual([{ field: 'stageNumber', message: 'stageNumber must be between 1 and 5' }])

      const completeCases: Array<[unknown, string]> = [
        [{}, 'status'],
        [{ status: 'PROCESSING' }, 'status'],
        [{ status: 'COMPLETED', duration: -1 }, 'duration'],
        [{ status: 'COMPLETED', completedAt: '25/10/2025' }, 'completedAt'],
        [{ status: 'COMPLETED', error: 5 }, 'error'],
        [{ status: 'FAILED', error: 'nul\u0000' }, 'error'],
      ]
      for (const [body, field] of completeCases) {
        const problem = await expectProblem(await api.complete(id, body), 400, 'validation_failed')
        expect(problem.errors?.map((e) => e.field)).toContain(field)
      }
      await expectProblem(await api.send({ path: '/runs', json: null }), 400, 'validation_failed')
      for (const body of [{ id: 'has space' }, { id: '' }, { id: 'x'.repeat(129) }, { id: 7 }]) {
        const problem = await expectProblem(await api.send({ path: '/runs', json: body }), 400, 'validation_failed')
        expect(problem.errors?.map((e) => e.field)).toContain('id')
      }
      // Nothing of the refused updates was stored.
      expect((await api.status(id)).stages).toEqual([])
    })

    scenario('writes and reads without the right secret answer 401 unauthorized', async (api) => {
      const id = await api.createRun()
      const attempts = (secret: string | null) => [
        api.stage(id, makeStageUpdate(), { secret }),
        api.complete(id, makeCompleteRun(), { secret }),
        api.send({ path: '/runs', json: {}, secret }),
        api.getStatus(id, { secret }),
      ]
      for (const secret of [null, 'wrong', '', SECRET.toUpperCase(), SECRET.slice(0, -1), `${SECRET}x`]) {
        for (const response of await Promise.all(attempts(secret))) await expectProblem(response, 401, 'unauthorized')
      }
      expect((await api.status(id)).run.status).toBe('PENDING')
    })

    scenario(
      'accepts each of several secrets during a rotation',
      async (api) => {
        const id = await api.createRun()
        expect((await api.stage(id, makeStageUpdate(), { secret: OLD_SECRET })).status).toBe(200)
        expect((await api.stage(id, makeStageUpdate({ status: 'COMPLETED' }), { secret: SECRET })).status).toBe(200)
        await expectProblem(await api.stage(id, makeStageUpdate(), { secret: 'retired-secret' }), 401, 'unauthorized')
        expect((await api.getStatus(id, { secret: OLD_SECRET })).status).toBe(200)
      },
      { secret: [SECRET, OLD_SECRET] },
    )

    scenario(
      'reads with the authorize hook: allowed, denied with 403, secret still accepted',
      async (api) => {
        const allowed = await api.createRun(`${uniqueRunId()}-mine`)
        const denied = await api.createRun(`${uniqueRunId()}-theirs`)
        const ok = await api.getStatus(allowed, { secret: null, headers: { Cookie: 'session=alice' } })
        expect(ok.status).toBe(200)
        expect(RunStatusResponse.parse(await ok.json()).run.id).toBe(allowed)
        await expectProblem(await api.getStatus(denied, { secret: null, headers: { Cookie: 'session=alice' } }), 403, 'forbidden')
        await expectProblem(await api.getStatus(allowed, { secret: null }), 403, 'forbidden')
        expect((await api.getStatus(denied)).status).toBe(200)
        // The hook is for reads only: writes still need the secret.
        await expectProblem(await api.stage(allowed, makeStageUpdate(), { secret: null, headers: { Cookie: 'session=alice' } }), 401, 'unauthorized')
      },
      {
        authorize: (request, runId) => request.headers.get('cookie') === 'session=alice' && runId.endsWith('-mine'),
      },
    )

    scenario(
      'bodies over maxBodyBytes answer 413, by Content-Length or while streaming',
      async (api) => {
        const id = await api.createRun()
        const padded = (size: number) => {
          const json = JSON.stringify(makeStageUpdate())
          return json + ' '.repeat(size - json.length)
        }
        expect((await api.stage(id, undefined, { body: padded(1024) })).status).toBe(200)
        await expectProblem(await api.stage(id, undefined, { body: padded(1025) }), 413, 'payload_too_large')
        await expectProblem(await api.stage(id, undefined, { body: streamOf(5 * 1024 * 1024) }), 413, 'payload_too_large')
        await expectProblem(await api.complete(id, undefined, { body: streamOf(64 * 1024) }), 413, 'payload_too_large')
        expect((await api.status(id)).stages[0]?.status).toBe('PROCESSING')
      },
      { maxBodyBytes: 1024 },
    )

    scenario('non-JSON bodies answer 415; charset and +json types are accepted', async (api) => {
      const id = await api.createRun()
      const body = JSON.stringify(makeStageUpdate())
      for (const contentType of ['text/plain', 'application/x-www-form-urlencoded', 'application/jsonx', null]) {
        await expectProblem(await api.stage(id, undefined, { body, contentType }), 415, 'unsupported_media_type')
      }
      await expectProblem(await api.send({ path: '/runs', body: '{}', contentType: null }), 415, 'unsupported_media_type')
      await expectProblem(await api.send({ path: '/runs', body: 'id=1', contentType: 'text/plain' }), 415, 'unsupported_media_type')
      expect((await api.stage(id, undefined, { body, contentType: 'application/json; charset=utf-8' })).status).toBe(200)
      expect((await api.stage(id, undefined, { body, contentType: 'Application/JSON' })).status).toBe(200)
      expect((await api.complete(id, undefined, { body: '{"status":"COMPLETED"}', contentType: 'application/vnd.pipeline+json' })).status).toBe(200)
    })

    scenario(
      'an unreachable database answers 503 with Retry-After',
      async (api) => {
        for (const response of [
          await api.send({ path: '/runs', json: {} }),
          await api.stage('r', makeStageUpdate()),
          await api.complete('r', makeCompleteRun()),
          await api.getStatus('r'),
        ]) {
          expect(response.headers.get('retry-after')).toBe('5')
          await expectProblem(response, 503, 'database_unavailable')
        }
      },
      { store: 'unavailable' },
    )

    it('a 500 shows no internals and is logged', async () => {
      const logged: unknown[] = []
      const logger = { warn: () => {}, error: (...args: unknown[]) => void logged.push(args) }
      await withApi({ store: 'throwing', logger }, async (api) => {
        for (const response of [await api.stage('r', makeStageUpdate()), await api.getStatus('r'), await api.send({ path: '/runs', json: {} })]) {
          const text = await response.clone().text()
          expect(text).not.toContain('hunter2')
          expect(text).not.toContain('postgres://')
          await expectProblem(response, 500, 'internal_error')
        }
      })
      const loggedErrors = logged.map((args) => ((args as unknown[])[1] as { error?: unknown } | undefined)?.error)
      expect(loggedErrors.some((error) => error instanceof Error && error.message.includes('hunter2'))).toBe(true)
    })

    it('a failing onRunCompleted answers 500 and rolls the completion back', async () => {
      let fail = true
      await withApi(
        {
          logger: { warn: () => {}, error: () => {} },
          onRunCompleted: () => {
            if (fail) throw new Error('report table missing: postgres://admin:hunter2@db/app')
          },
        },
        async (api) => {
          const id = await api.createRun()
          const response = await api.complete(id, makeCompleteRun())
          expect(await response.clone().text()).not.toContain('hunter2')
          await expectProblem(response, 500, 'internal_error')
          expect((await api.status(id)).run).toMatchObject({ status: 'PENDING', completionReceivedAt: null })
          fail = false
          expect((await api.completeOk(id, makeCompleteRun())).outcome).toBe('applied')
        },
      )
    })
  })

  describe(`${name}: Standard Webhooks signatures`, () => {
    const signed = async (body: string, overrides: { id?: string | undefined; timestamp?: number | undefined; secret?: string | undefined } = {}) =>
      createWebhookSignatureHeaders({
        secret: overrides.secret ?? SIGNING_SECRET,
        body,
        id: overrides.id ?? `msg_${crypto.randomUUID()}`,
        timestamp: overrides.timestamp,
      }) as unknown as Promise<Record<string, string>>
    const now = () => Math.floor(Date.now() / 1000)

    scenario(
      'accepts a valid signature without the shared secret, refuses wrong, expired and replayed ones',
      async (api) => {
        const id = await api.createRun()
        const body = JSON.stringify(makeStageUpdate())
        const headers = await signed(body)
        expect((await api.stage(id, undefined, { body, secret: null, headers })).status).toBe(200)

        const replay = await api.stage(id, undefined, { body, secret: null, headers })
        expect((await expectProblem(replay, 401, 'invalid_signature')).detail).toMatch(/already received/)

        // A retry signed again (same id, new timestamp) goes through: it is not a replay.
        const resigned = await signed(body, { id: headers['webhook-id'], timestamp: now() + 1 })
        const retried = await api.stage(id, undefined, { body, secret: null, headers: resigned })
        expect(StageUpdateResponse.parse(await retried.json()).outcome).toBe('duplicate')

        const wrong = await signed(body, { secret: 'whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' })
        await expectProblem(await api.stage(id, undefined, { body, secret: null, headers: wrong }), 401, 'invalid_signature')
        const tampered = await signed(body)
        const other = JSON.stringify(makeStageUpdate({ status: 'FAILED' }))
        await expectProblem(await api.stage(id, undefined, { body: other, secret: null, headers: tampered }), 401, 'invalid_signature')
        const expired = await signed(body, { timestamp: now() - 301 })
        await expectProblem(await api.stage(id, undefined, { body, secret: null, headers: expired }), 401, 'invalid_signature')
        const future = await signed(body, { timestamp: now() + 301 })
        await expectProblem(await api.stage(id, undefined, { body, secret: null, headers: future }), 401, 'invalid_signature')
        // A present signature is always checked, even beside the right shared secret.
        await expectProblem(await api.stage(id, undefined, { body, headers: wrong }), 401, 'invalid_signature')
        expect((await api.status(id)).stages[0]?.status).toBe('PROCESSING')
      },
      { signing: { secret: SIGNING_SECRET } },
    )

    scenario(
      'with required signatures, the shared secret alone is refused',
      async (api) => {
        await expectProblem(await api.send({ path: '/runs', json: {} }), 401, 'invalid_signature')
        const body = JSON.stringify({ id: uniqueRunId() })
        const created = await api.send({ path: '/runs', body, headers: await signed(body) })
        expect(created.status).toBe(201)
        const runId = CreateRunResponse.parse(await created.json()).run.id
        await expectProblem(await api.stage(runId, makeStageUpdate()), 401, 'invalid_signature')
        const update = JSON.stringify(makeStageUpdate())
        expect((await api.stage(runId, undefined, { body: update, headers: await signed(update) })).status).toBe(200)
        // Reads still accept the shared secret.
        expect((await api.getStatus(runId)).status).toBe(200)
      },
      { signing: { secret: SIGNING_SECRET, required: true } },
    )

    scenario(
      'with only a signing secret, signed writes and signed reads work and rotation accepts both keys',
      async (api) => {
        const body = JSON.stringify({ id: uniqueRunId() })
        const created = await api.send({ path: '/runs', body, secret: null, headers: await signed(body, { secret: 'raw-old-key' }) })
        expect(created.status).toBe(201)
        const runId = CreateRunResponse.parse(await created.json()).run.id
        await expectProblem(await api.getStatus(runId, { secret: null }), 401, 'unauthorized')
        const read = await api.getStatus(runId, { secret: null, headers: await signed('') })
        expect(read.status).toBe(200)
        await expectProblem(await api.stage(runId, makeStageUpdate(), { secret: 'anything' }), 401, 'invalid_signature')
      },
      { secret: [], signing: { secret: [SIGNING_SECRET, 'raw-old-key'] } },
    )

    scenario(
      'a 5xx answer releases the message id so the same signed retry goes through',
      async (api) => {
        const body = JSON.stringify({})
        const headers = await signed(body)
        await expectProblem(await api.send({ path: '/runs', body, secret: null, headers }), 503, 'database_unavailable')
        await expectProblem(await api.send({ path: '/runs', body, secret: null, headers }), 503, 'database_unavailable')
      },
      { store: 'unavailable', signing: { secret: SIGNING_SECRET } },
    )
  })
}
