/**
 * The handlers' behaviour from the outside, as requests and responses, registered against any
 * target: the Web handlers in memory, the Next.js route handlers, the Express router on a real
 * port over PostgreSQL. Every target runs the same scenarios, so they cannot drift apart.
 */
import { Validator } from '@seriousme/openapi-schema-validator'
import { createParser, type EventSourceMessage } from 'eventsource-parser'
import {
  CancelRunResponse,
  CompleteRunResponse,
  createOpenApiDocument,
  RunEndEvent,
  RunSnapshotEvent,
  RunUpdateEvent,
  CreateRunResponse,
  DEFAULT_STAGES,
  HeartbeatResponse,
  MAX_PROGRESS_MESSAGE_LENGTH,
  PROBLEM_CONTENT_TYPE,
  Problem,
  RunStatusResponse,
  StageUpdateResponse,
} from 'pipeline-status-sdk'
import {
  type AuthorizeInput,
  createRunReadToken,
  type RunEndedInput,
  createWebhookSignatureHeaders,
  HttpProblemError,
  type RunState,
  webhookMessageId,
  type WebhookSigningOptions,
} from 'pipeline-status-sdk/server'
import { Agent, request as httpRequest, type IncomingHttpHeaders } from 'node:http'
import { connect } from 'node:net'
import { deflateSync, gzipSync } from 'node:zlib'
import { describe, expect, it } from 'vitest'
import { makeCompleteRun, makeStageUpdate, PYTHON_RUNNER_PAYLOADS } from '../support/fixtures.js'
import { OpenApiAnswerValidator } from './openapi-answers.js'

/** The secret every default client is configured with. */
export const SECRET = 'test-secret-7f3a9c2e'
/** A second secret, for rotation. */
export const OLD_SECRET = 'test-secret-old-41d8'
/** The run-read-token secret of the read-token scenarios (its own, never the webhook secret). */
export const READ_TOKEN_SECRET = 'read-token-secret-0123456789abcdef'
/** A retired read-token secret, for rotation. */
export const OLD_READ_TOKEN_SECRET = 'read-token-secret-old-fedcba9876543'
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
  authorize?: (input: AuthorizeInput<unknown>) => boolean | Promise<boolean>
  onRunCompleted?: (tx: unknown, run: RunState, payload: Record<string, unknown>) => Promise<void> | void
  onRunEnded?: (input: RunEndedInput<unknown>) => Promise<void> | void
  maxBodyBytes?: number
  readTokens?: { secret: string | readonly string[] }
  /** Live stream settings (keep-alive interval, stream cap). */
  live?: { keepAliveMs?: number; maxStreams?: number; retryMs?: number }
  /** Cross-origin reads. */
  cors?: { origins: string[] }
  /** A store that cannot reach its database (503), or one that fails with a secret-bearing error (500). */
  store?: 'unavailable' | 'throwing'
  /** The handlers' clock (the run's creation and every server-side instant). */
  clock?: () => Date
  /** How far ahead of the server's clock a runner-sent instant may be, in milliseconds. */
  clockSkewToleranceMs?: number
  logger?: { warn: (...args: unknown[]) => void; error: (...args: unknown[]) => void }
  /**
   * Express targets only: `express.json()` mounted before the router, plain or keeping the raw
   * bytes in `req.rawBody` with its `verify` hook.
   */
  bodyParser?: 'json' | 'json-keeping-raw'
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
  /** On a socket target: the URL of the base path on the real port, for raw `node:http` requests. */
  readonly baseUrl?: string
}

/** Where the scenarios run. */
export interface ContractTarget {
  start(options: TargetOptions): Promise<TargetClient>
  /** An Express app over a socket, which can mount a body parser before the router. */
  readonly expressApp?: boolean
  /**
   * How requests reach the handlers: `'fetch'` hands any `Request` to them; `'next'` is a
   * Next.js route, where Next.js itself answers methods the route file does not export; `'socket'`
   * is a real port (keep-alive, methods Fetch cannot carry, Node's own limits).
   * @default 'fetch'
   */
  readonly transport?: 'fetch' | 'next' | 'socket'
}

let counter = 0
/** A run id no other test uses. */
export function uniqueRunId(prefix = 'run'): string {
  counter += 1
  return `${prefix}-${counter}-${crypto.randomUUID().slice(0, 8)}`
}

/** The method a spec is sent with: its own, else `POST` with a body and `GET` without. */
export function methodOf(spec: RequestSpec): string {
  return spec.method ?? (spec.json === undefined && spec.body === undefined ? 'GET' : 'POST')
}

/** One validator for every answer of every target of this test module (see openapi-answers.ts). */
const answers = new OpenApiAnswerValidator()

/** A client whose answers are checked against the OpenAPI document before the scenario sees them. */
export function checkingAnswers(client: TargetClient): TargetClient {
  return {
    ...client,
    close: () => client.close(),
    send: async (spec) => answers.check({ method: methodOf(spec), url: `http://validator.invalid/api/pipeline${spec.path}` }, await client.send(spec)),
  }
}

/** Builds the `Request` of a spec against a base URL ending in the base path. */
export function buildRequest(base: string, spec: RequestSpec): Request {
  const headers = new Headers(spec.headers)
  const secret = spec.secret === undefined ? SECRET : spec.secret
  if (secret !== null) headers.set('X-Webhook-Secret', secret)
  const body = spec.json !== undefined ? JSON.stringify(spec.json) : spec.body
  const contentType = spec.contentType === undefined ? (body === undefined ? null : 'application/json') : spec.contentType
  if (contentType !== null) headers.set('Content-Type', contentType)
  const init: RequestInit & { duplex?: 'half' } = { method: methodOf(spec), headers }
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

/** What {@link rawRequest} sends: a method Fetch may refuse, chunks written one by one (chunked without a length). */
export interface RawRequestSpec {
  method?: string
  headers?: Record<string, string>
  body?: Uint8Array
  chunks?: Uint8Array[]
  agent?: Agent
  /** The request target sent as it is (like curl --path-as-is), instead of `url`'s normalized path. */
  path?: string
}

/**
 * A request over `node:http`, for what `fetch` cannot send (TRACE) or hides (the connection):
 * resolves the status, headers and body text once the response has ended.
 */
export function rawRequest(url: string, spec: RawRequestSpec = {}): Promise<{ status: number; headers: IncomingHttpHeaders; text: string }> {
  return new Promise((resolve, reject) => {
    const options = { method: spec.method ?? 'GET', headers: spec.headers, agent: spec.agent ?? false, ...(spec.path === undefined ? {} : { path: spec.path }) }
    const request = httpRequest(url, options, (response) => {
      const chunks: Buffer[] = []
      response.on('data', (chunk: Buffer) => chunks.push(chunk))
      response.once('end', () =>
        resolve({ status: response.statusCode ?? 0, headers: response.headers, text: Buffer.concat(chunks).toString('utf8') }),
      )
      response.once('error', reject)
    })
    // The server may answer (and close) before the upload is written: that is what is tested.
    request.on('error', (error: NodeJS.ErrnoException) => (error.code === 'EPIPE' ? undefined : reject(error)))
    for (const chunk of spec.chunks ?? []) request.write(chunk)
    request.end(spec.body)
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

  heartbeat(runId: string, body?: unknown, spec: Partial<RequestSpec> = {}): Promise<Response> {
    const path = `/${encodeURIComponent(runId)}/heartbeat`
    return this.send(body === undefined ? { path, method: 'POST', contentType: null, ...spec } : { path, json: body, ...spec })
  }

  async heartbeatOk(runId: string, body?: unknown): Promise<HeartbeatResponse> {
    const response = await this.heartbeat(runId, body)
    const text = await response.text()
    expect({ status: response.status, text }).toMatchObject({ status: 200 })
    return HeartbeatResponse.parse(JSON.parse(text))
  }

  cancel(runId: string, body: unknown = {}, spec: Partial<RequestSpec> = {}): Promise<Response> {
    return this.send({ path: `/${encodeURIComponent(runId)}/cancel`, json: body, ...spec })
  }

  async cancelOk(runId: string, body: unknown = {}, spec: Partial<RequestSpec> = {}): Promise<CancelRunResponse> {
    const response = await this.cancel(runId, body, spec)
    const text = await response.text()
    expect({ status: response.status, text }).toMatchObject({ status: 200 })
    return CancelRunResponse.parse(JSON.parse(text))
  }
}

/** A live status stream being read: events arrive in `events`; `next()` waits for the next one. */
export interface EventReader {
  response: Response
  events: EventSourceMessage[]
  comments: string[]
  retries: number[]
  /** The next event not yet returned by `next`; rejects when the stream ends first or after 5 s. */
  next(): Promise<EventSourceMessage>
  /** Resolves when the server closed the stream. */
  closed: Promise<void>
  /** Stops reading (the client goes away). */
  cancel(): Promise<void>
}

/** Reads a `text/event-stream` response in the background. */
export function readEvents(response: Response): EventReader {
  const events: EventSourceMessage[] = []
  const comments: string[] = []
  const retries: number[] = []
  let wake: (() => void) | undefined
  let done = false
  let taken = 0
  const parser = createParser({
    onEvent: (event) => void (events.push(event), wake?.()),
    onComment: (comment) => void (comments.push(comment), wake?.()),
    onRetry: (retry) => void retries.push(retry),
  })
  const reader = response.body?.getReader()
  const closed = (async () => {
    const decoder = new TextDecoder()
    try {
      for (;;) {
        const chunk = await reader?.read()
        if (!chunk || chunk.done) break
        parser.feed(decoder.decode(chunk.value, { stream: true }))
      }
    } catch {
      // Cancelled by the test.
    } finally {
      done = true
      wake?.()
    }
  })()
  return {
    response,
    events,
    comments,
    retries,
    closed,
    cancel: async () => {
      await reader?.cancel().catch(() => undefined)
      await closed
    },
    next: () =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`No event within 5 s; got ${events.map((e) => e.event).join(', ')}`)), 5_000)
        const check = () => {
          const event = events[taken]
          if (event) {
            taken += 1
            clearTimeout(timer)
            wake = undefined
            resolve(event)
          } else if (done) {
            clearTimeout(timer)
            reject(new Error(`The stream ended; got ${events.map((e) => e.event).join(', ')}`))
          } else {
            wake = check
          }
        }
        check()
      }),
  }
}

/**
 * The server's clock while the Python runner payloads' run happened: created at 14:00 on
 * 2025-10-25, their `completedAt` instants (14:03 to 14:10) inside its window.
 */
const PYTHON_RUN_CLOCK: TargetOptions = { clock: () => new Date('2025-10-25T14:00:00.000Z'), clockSkewToleranceMs: 15 * 60_000 }

/** A server whose runs are created at the first instant of year 1 and take any instant up to year 9999 as sent. */
const WHOLE_RANGE_CLOCK: TargetOptions = {
  clock: () => new Date('0001-01-01T00:00:00.000Z'),
  clockSkewToleranceMs: Date.parse('9999-12-31T23:59:59.999Z') - Date.parse('0001-01-01T00:00:00.000Z'),
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
    const client = checkingAnswers(await target().start({ onRunCompleted: recorder, ...options }))
    try {
      return await fn(new Api(client))
    } finally {
      await client.close()
    }
  }
  const scenario = (title: string, fn: (api: Api) => Promise<void>, options: TargetOptions = {}) =>
    it(title, () => withApi(options, fn))

  describe(`${name}: routes`, () => {
    scenario('GET /openapi.json serves the OpenAPI 3.1 document without a secret; HEAD too; other methods 405', async (api) => {
      const response = await api.send({ path: '/openapi.json', secret: null })
      expect(response.status).toBe(200)
      expect(response.headers.get('content-type')).toMatch(/^application\/json/)
      const document = (await response.json()) as Record<string, unknown>
      const validator = new Validator()
      expect(await validator.validate(document)).toEqual({ valid: true })
      expect(validator.version).toBe('3.1')
      // The server URL is the base path the document was read under.
      expect(document).toEqual(createOpenApiDocument({ basePath: '/api/pipeline' }))
      expect(document['servers']).toEqual([expect.objectContaining({ url: '/api/pipeline' })])

      const head = await api.send({ path: '/openapi.json', method: 'HEAD', secret: null })
      expect(head.status).toBe(200)
      expect(await head.text()).toBe('')
      const post = await api.send({ path: '/openapi.json', json: {} })
      expect(post.headers.get('allow')).toBe('GET, HEAD')
      await expectProblem(post, 405, 'method_not_allowed')
    })

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
    }, PYTHON_RUN_CLOCK)

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
      expect(wrongPost.headers.get('allow')).toBe('GET, HEAD')
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
      'reads a comma-separated secret string as a list, as WEBHOOK_SECRET is read',
      async (api) => {
        const id = await api.createRun()
        expect((await api.stage(id, makeStageUpdate(), { secret: OLD_SECRET })).status).toBe(200)
        expect((await api.getStatus(id, { secret: SECRET })).status).toBe(200)
        await expectProblem(await api.getStatus(id, { secret: `${SECRET}, ${OLD_SECRET}` }), 401, 'unauthorized')
      },
      { secret: `${SECRET}, ${OLD_SECRET}` },
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
        authorize: ({ request, runId, action }) =>
          action === 'read' && request.headers.get('cookie') === 'session=alice' && runId.endsWith('-mine'),
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
        // The problem states the limit, so a client can cut what it sends to fit.
        expect(await expectProblem(await api.stage(id, undefined, { body: padded(1025) }), 413, 'payload_too_large')).toMatchObject({ maxBytes: 1024 })
        expect(await expectProblem(await api.stage(id, undefined, { body: streamOf(5 * 1024 * 1024) }), 413, 'payload_too_large')).toMatchObject({ maxBytes: 1024 })
        expect(await expectProblem(await api.complete(id, undefined, { body: streamOf(64 * 1024) }), 413, 'payload_too_large')).toMatchObject({ maxBytes: 1024 })
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

  const transport = target().transport ?? 'fetch'
  /** A scenario that needs a real port; registered on the socket targets only. */
  const socketScenario = (title: string, fn: (api: Api, baseUrl: string) => Promise<void>, options: TargetOptions = {}) => {
    if (transport !== 'socket') return
    scenario(title, (api) => fn(api, api.client.baseUrl ?? expect.unreachable('a socket target has a baseUrl')), options)
  }

  describe(`${name}: input rules`, () => {
    // [sent, what the contract stores: the instant it names, to the millisecond, in UTC]
    const ACCEPTED_TIMESTAMPS: Array<[string, string]> = [
      ['2025-10-25T14:03:11', '2025-10-25T14:03:11.000Z'], // Python's isoformat() of a naive datetime: UTC
      ['2025-10-25T14:03:11.123456', '2025-10-25T14:03:11.123Z'],
      ['2025-10-25T14:03:11.987654321+05:30', '2025-10-25T08:33:11.987Z'], // cut, never rounded
      ['2025-10-25T14:03:11.5-08:00', '2025-10-25T22:03:11.500Z'],
      ['2024-02-29T23:59:59Z', '2024-02-29T23:59:59.000Z'],
      ['0099-06-15T12:00:00Z', '0099-06-15T12:00:00.000Z'], // not read as 1999
      ['0001-01-01T00:00:00Z', '0001-01-01T00:00:00.000Z'],
      ['0001-01-01T05:00:00+05:00', '0001-01-01T00:00:00.000Z'],
      ['0000-12-31T23:00:00-01:00', '0001-01-01T00:00:00.000Z'],
      ['9999-12-31T23:59:59.9999999Z', '9999-12-31T23:59:59.999Z'],
      ['9999-12-31T23:59:59+01:00', '9999-12-31T22:59:59.000Z'],
    ]
    const REFUSED_TIMESTAMPS = [
      '0001-01-01T00:00:00+01:00', // 0000-12-31T23:00Z, before year 1
      '9999-12-31T23:59:59-01:00', // a runner west of UTC: year 10000 in UTC
      '2025-10-25T14:03', // minutes only, with or without an offset
      '2025-10-25T14:03Z',
      '2025-10-25T14:03+02:00',
      '2025-10-25',
      '2025-10-25T14:03:11.Z',
      '2025-10-25T14:03:11.1234567890Z', // ten fraction digits
      '2025-10-25 14:03:11Z',
      '2025-10-25t14:03:11z',
      '2025-10-25T14:03:11+0200',
      '2025-10-25T14:03:11+02',
      '2025-10-25T14:03:11+24:00',
      '2025-02-29T00:00:00Z',
      '2025-04-31T00:00:00Z',
      '2025-13-01T00:00:00Z',
      '2025-10-25T24:00:00Z',
      '2016-12-31T23:59:60Z',
      '+010000-01-01T00:00:00Z',
      '-000001-01-01T00:00:00Z',
      '20251025T140311Z',
      ' 2025-10-25T14:03:11Z',
      'yesterday',
      '',
    ]

    scenario('a completedAt outside the grammar or years 1-9999 answers 400 naming completedAt, for stages and /complete', async (api) => {
      const id = await api.createRun()
      for (const completedAt of REFUSED_TIMESTAMPS) {
        const stage = await expectProblem(await api.stage(id, makeStageUpdate({ status: 'COMPLETED', completedAt })), 400, 'validation_failed')
        expect(stage.errors?.map((e) => e.field), completedAt).toEqual(['completedAt'])
        const complete = await expectProblem(await api.complete(id, makeCompleteRun({ completedAt })), 400, 'validation_failed')
        expect(complete.errors?.map((e) => e.field), completedAt).toEqual(['completedAt'])
      }
      // Nothing was stored, and the run still answers.
      expect(await api.status(id)).toMatchObject({ run: { status: 'PENDING', completedAt: null }, stages: [] })
    })

    scenario('every accepted completedAt is stored and read back as the millisecond instant it names', async (api) => {
      for (const [completedAt, stored] of ACCEPTED_TIMESTAMPS) {
        const staged = await api.createRun()
        const update = await api.stageOk(staged, makeStageUpdate({ status: 'COMPLETED', completedAt }))
        expect(update.stage?.completedAt, completedAt).toBe(stored)
        expect((await api.status(staged)).stages[0]?.completedAt, completedAt).toBe(stored)

        const completed = await api.createRun()
        expect((await api.completeOk(completed, makeCompleteRun({ status: 'FAILED', completedAt }))).run.completedAt, completedAt).toBe(stored)
        expect((await api.status(completed)).run.completedAt, completedAt).toBe(stored)
      }
    }, WHOLE_RANGE_CLOCK)

    scenario('run ids follow one rule: POST /runs refuses others with 400 naming id, other routes answer 404', async (api) => {
      const refused = ['.', '..', '...', 'a b', 'a/b', 'a?b', 'a#b', 'a%41', 'é', 'tab\t', 'x'.repeat(129), '']
      for (const id of refused) {
        const problem = await expectProblem(await api.send({ path: '/runs', json: { id } }), 400, 'validation_failed')
        expect(problem.errors?.map((e) => e.field), id).toEqual(['id'])
      }
      for (const id of [`${uniqueRunId()}.a`, `.${uniqueRunId()}`, `..${uniqueRunId()}`, `A-Z_0.9~:${uniqueRunId()}`, 'x'.repeat(121) + uniqueRunId().slice(-7)]) {
        expect(await api.createRun(id)).toBe(id)
        expect((await api.status(id)).run.id).toBe(id)
      }
      // Elsewhere an id outside the rule is simply an unknown run.
      for (const id of ['a b', 'é', 'a%41', 'x'.repeat(129), 'tab\t']) {
        await expectProblem(await api.stage(id, makeStageUpdate()), 404, 'run_not_found')
        await expectProblem(await api.complete(id, makeCompleteRun()), 404, 'run_not_found')
        await expectProblem(await api.getStatus(id), 404, 'run_not_found')
      }
      // A dot segment never carries an id: URL normalization removes it, and no route is left.
      for (const segment of ['.', '%2E']) await expectProblem(await api.send({ path: `/${segment}/status` }), 404, 'route_not_found')
    })

    socketScenario('a dot segment sent as it is (curl --path-as-is) gets 404: run_not_found from Express, route_not_found where the URL is normalized', async (api, baseUrl) => {
      // Express routes on the raw path, so `..` arrives as a run id; the mock server (and Next.js)
      // normalize the URL first, so no route is left. Either way nothing is found or stored.
      const code = target().expressApp ? 'run_not_found' : 'route_not_found'
      const seen: string[] = []
      for (const segment of ['.', '..']) {
        for (const route of ['status', 'stage-update', 'complete']) {
          const response = await rawRequest(baseUrl, {
            path: `${new URL(baseUrl).pathname}/${segment}/${route}`,
            method: route === 'status' ? 'GET' : 'POST',
            headers: { 'X-Webhook-Secret': SECRET, 'Content-Type': 'application/json' },
            ...(route === 'status' ? {} : { body: Buffer.from(JSON.stringify(route === 'complete' ? makeCompleteRun() : makeStageUpdate())) }),
          })
          seen.push(`${segment}/${route} ${response.status} ${(JSON.parse(response.text) as { code?: string }).code}`)
        }
      }
      expect(seen).toEqual(['./status', './stage-update', './complete', '../status', '../stage-update', '../complete'].map((sent) => `${sent} 404 ${code}`))
    })

    scenario('a URL whose path and query pass 8 KiB answers 414; one of exactly 8 KiB is served', async (api) => {
      const id = await api.createRun()
      // Every target serves the routes under /api/pipeline.
      const padded = (length: number, route = 'status') => {
        const prefix = `/${id}/${route}?pad=`
        return prefix + 'x'.repeat(length - '/api/pipeline'.length - prefix.length)
      }
      expect((await api.send({ path: padded(8192) })).status).toBe(200)
      const long = await expectProblem(await api.send({ path: padded(8193) }), 414, 'uri_too_long')
      expect(long.detail).toContain('8192')
      await expectProblem(await api.send({ path: padded(8193, 'stage-update'), json: makeStageUpdate() }), 414, 'uri_too_long')
      await expectProblem(await api.send({ path: `/${'r'.repeat(9000)}/complete`, json: makeCompleteRun() }), 414, 'uri_too_long')
      await expectProblem(await api.send({ path: `/${'r'.repeat(9000)}/nope` }), 414, 'uri_too_long')
      expect((await api.status(id)).stages).toEqual([])
    })

    socketScenario('over a socket, a URL past Node\'s header limit gets Node\'s 431 or the contract\'s 414, never a dropped connection', async (api, baseUrl) => {
      const id = await api.createRun()
      const response = await rawRequest(`${baseUrl}/${id}/status?pad=${'x'.repeat(20 * 1024)}`, { headers: { 'X-Webhook-Secret': SECRET } })
      expect([414, 431]).toContain(response.status)
      const near = await rawRequest(`${baseUrl}/${id}/status?pad=${'x'.repeat(9 * 1024)}`, { headers: { 'X-Webhook-Secret': SECRET } })
      expect(near.status).toBe(414)
      expect(near.headers['content-type']).toBe(PROBLEM_CONTENT_TYPE)
      expect(Problem.parse(JSON.parse(near.text)).code).toBe('uri_too_long')
    })
  })

  describe(`${name}: HTTP semantics`, () => {
    scenario('HEAD on the status route answers like GET without a body; Allow names GET, HEAD', async (api) => {
      const id = await api.createRun()
      await api.stageOk(id, makeStageUpdate())
      const get = await api.getStatus(id)
      const head = await api.send({ path: `/${id}/status`, method: 'HEAD' })
      expect(head.status).toBe(200)
      expect(head.headers.get('content-type')).toBe(get.headers.get('content-type'))
      // The same validators and caching as the GET it stands for (RFC 9110 §9.3.2).
      expect(head.headers.get('cache-control')).toBe('private, no-cache')
      expect(head.headers.get('etag')).toBe(get.headers.get('etag'))
      expect(head.headers.get('etag')).toMatch(/^"\d+"$/)
      // What docs/contract.md says: every header of the GET except Content-Length.
      expect(head.headers.get('content-length')).toBeNull()
      expect(await head.text()).toBe('')
      await get.text()

      for (const [spec, status] of [
        [{ path: `/${uniqueRunId('missing')}/status`, method: 'HEAD' }, 404],
        [{ path: `/${id}/status`, method: 'HEAD', secret: 'wrong' }, 401],
        [{ path: `/${id}/nope`, method: 'HEAD' }, 404],
      ] as const) {
        const response = await api.send(spec)
        expect(response.status, spec.path).toBe(status)
        expect(response.headers.get('content-type')).toBe(PROBLEM_CONTENT_TYPE)
        expect(await response.text()).toBe('')
      }
      const headWrite = await api.send({ path: `/${id}/stage-update`, method: 'HEAD' })
      expect([headWrite.status, headWrite.headers.get('allow'), await headWrite.text()]).toEqual([405, 'POST', ''])
      const postRead = await api.send({ path: `/${id}/status`, json: {} })
      expect(postRead.headers.get('allow')).toBe('GET, HEAD')
      await expectProblem(postRead, 405, 'method_not_allowed')
    })

    if (transport !== 'next') {
      // A Next.js route answers the methods its file does not export itself.
      scenario('other methods answer 405 with Allow on every route', async (api) => {
        const id = await api.createRun()
        for (const method of ['OPTIONS', 'PROPFIND', 'PURGE']) {
          for (const [path, allow] of [
            [`/${id}/status`, 'GET, HEAD'],
            [`/${id}/stage-update`, 'POST'],
            [`/${id}/complete`, 'POST'],
            ['/runs', 'POST'],
          ] as const) {
            const response = await api.send({ path, method })
            expect(response.headers.get('allow'), `${method} ${path}`).toBe(allow)
            await expectProblem(response, 405, 'method_not_allowed')
          }
        }
      })
    }

    socketScenario('TRACE answers 405 with Allow (or 404 off the routes), as problem+json', async (api, baseUrl) => {
      const id = await api.createRun()
      for (const [path, status, allow] of [
        [`/${id}/status`, 405, 'GET, HEAD'],
        [`/${id}/stage-update`, 405, 'POST'],
        ['/runs', 405, 'POST'],
        [`/${id}/nope`, 404, undefined],
      ] as const) {
        const response = await rawRequest(`${baseUrl}${path}`, { method: 'TRACE', headers: { 'X-Webhook-Secret': SECRET } })
        expect([response.status, response.headers['allow']], path).toEqual([status, allow])
        expect(response.headers['content-type']).toBe(PROBLEM_CONTENT_TYPE)
        expect(Problem.parse(JSON.parse(response.text)).status).toBe(status)
      }
      expect((await api.status(id)).run.status).toBe('PENDING')
    })

    scenario('gzip and deflate bodies are inflated; any other Content-Encoding answers 415', async (api) => {
      const id = await api.createRun()
      const body = (n: number, output: string) => JSON.stringify(makeStageUpdate({ stageNumber: n, status: 'COMPLETED', output }))
      const encoded: Array<[string, Uint8Array | string, number, string]> = [
        ['gzip', gzipSync(body(1, 'gzip')), 1, 'gzip'],
        ['deflate', deflateSync(body(2, 'deflate')), 2, 'deflate'],
        ['X-GZIP', gzipSync(body(3, 'x-gzip')), 3, 'x-gzip'],
        ['deflate, gzip', gzipSync(deflateSync(body(4, 'twice'))), 4, 'twice'],
        ['identity', body(5, 'identity'), 5, 'identity'],
      ]
      for (const [coding, bytes, stageNumber, output] of encoded) {
        const response = await api.stage(id, undefined, { body: bytes, headers: { 'Content-Encoding': coding } })
        const text = await response.text()
        expect({ coding, status: response.status, text }).toMatchObject({ status: 200 })
        expect(StageUpdateResponse.parse(JSON.parse(text)).stage).toMatchObject({ stageNumber, output })
      }
      const completion = await api.complete(id, undefined, { body: gzipSync(JSON.stringify(makeCompleteRun())), headers: { 'Content-Encoding': 'gzip' } })
      expect(completion.status).toBe(200)
      await completion.text()

      const other = await api.createRun()
      const plain = body(1, 'labelled')
      for (const coding of ['br', 'compress', 'zstd', 'made-up', 'gzip, br']) {
        const response = await api.stage(other, undefined, { body: coding === 'gzip, br' ? gzipSync(plain) : plain, headers: { 'Content-Encoding': coding } })
        expect(response.headers.get('accept-encoding'), coding).toBe('gzip, deflate')
        const problem = await expectProblem(response, 415, 'unsupported_media_type')
        expect(problem.detail).toContain(coding.split(', ').at(-1))
      }
      await expectProblem(await api.send({ path: '/runs', json: {}, headers: { 'Content-Encoding': 'br' } }), 415, 'unsupported_media_type')
      await expectProblem(await api.stage(other, undefined, { body: plain, headers: { 'Content-Encoding': 'gzip' } }), 400, 'invalid_json')
      await expectProblem(await api.stage(other, undefined, { body: gzipSync(plain).subarray(0, 20), headers: { 'Content-Encoding': 'gzip' } }), 400, 'invalid_json')
      expect((await api.status(other)).stages).toEqual([])
    })

    scenario(
      'maxBodyBytes counts the inflated bytes: a gzip bomb answers 413',
      async (api) => {
        const id = await api.createRun()
        const padded = (size: number) => {
          const json = JSON.stringify(makeStageUpdate())
          return json + ' '.repeat(size - json.length)
        }
        const fits = await api.stage(id, undefined, { body: gzipSync(padded(4096)), headers: { 'Content-Encoding': 'gzip' } })
        expect(fits.status).toBe(200)
        await fits.text()
        const over = gzipSync(padded(4097))
        expect(over.byteLength).toBeLessThan(4096)
        await expectProblem(await api.stage(id, undefined, { body: over, headers: { 'Content-Encoding': 'gzip' } }), 413, 'payload_too_large')
        const bomb = gzipSync(JSON.stringify(makeStageUpdate({ output: ' '.repeat(2 * 1024 * 1024) })))
        expect(bomb.byteLength).toBeLessThan(4096)
        const problem = await expectProblem(await api.stage(id, undefined, { body: bomb, headers: { 'Content-Encoding': 'gzip' } }), 413, 'payload_too_large')
        expect(problem['maxBytes']).toBe(4096)
        await expectProblem(await api.stage(id, undefined, { body: deflateSync(padded(64 * 1024)), headers: { 'Content-Encoding': 'deflate' } }), 413, 'payload_too_large')
      },
      { maxBodyBytes: 4096 },
    )

    socketScenario(
      'after an early 413 the server closes the connection, so the next request on a keep-alive connection is answered; a small refused body keeps it',
      async (api, baseUrl) => {
        const id = await api.createRun()
        const agent = new Agent({ keepAlive: true, maxSockets: 1 })
        const write = { 'X-Webhook-Secret': SECRET, 'Content-Type': 'application/json' }
        const read = () => rawRequest(`${baseUrl}/${id}/status`, { headers: { 'X-Webhook-Secret': SECRET }, agent })
        try {
          const kept = await rawRequest(`${baseUrl}/${id}/stage-update`, { method: 'POST', headers: write, body: Buffer.from(JSON.stringify(makeStageUpdate())), agent })
          expect([kept.status, kept.headers['connection']]).toEqual([200, 'keep-alive'])

          // Refused by its Content-Length, before the body is read.
          const declared = await rawRequest(`${baseUrl}/${id}/stage-update`, { method: 'POST', headers: write, body: new Uint8Array(256 * 1024).fill(0x20), agent })
          expect([declared.status, declared.headers['connection']]).toEqual([413, 'close'])
          expect((await read()).status).toBe(200)

          // Chunked, with no length: refused once the count passes the limit.
          const chunks = Array.from({ length: 16 }, () => new Uint8Array(16 * 1024).fill(0x20))
          const streamed = await rawRequest(`${baseUrl}/${id}/stage-update`, { method: 'POST', headers: write, chunks, agent })
          expect([streamed.status, streamed.headers['connection']]).toEqual([413, 'close'])
          expect((await read()).status).toBe(200)

          // Refused before the body is read at all.
          const unread = await rawRequest(`${baseUrl}/${id}/stage-update`, { method: 'POST', headers: { ...write, 'X-Webhook-Secret': 'wrong' }, chunks, agent })
          expect(unread.status).toBe(401)
          expect((await read()).status).toBe(200)

          // A body that declares a small length is read whole before the handlers run, so a
          // refused one leaves nothing unread and the connection stays open.
          const small = await rawRequest(`${baseUrl}/${id}/stage-update`, {
            method: 'POST',
            headers: { ...write, 'X-Webhook-Secret': 'wrong' },
            body: Buffer.from(JSON.stringify(makeStageUpdate())),
            agent,
          })
          expect([small.status, small.headers['connection']]).toEqual([401, 'keep-alive'])
          expect((await read()).status).toBe(200)
        } finally {
          agent.destroy()
        }
      },
      { maxBodyBytes: 1024 },
    )
  })

  // Only a real port has connections to close; other targets get no such block (an empty one fails).
  if (transport === 'socket') describe(`${name}: HTTP semantics, socket`, () => {
    socketScenario(
      'a client that writes its whole upload before reading (as Python requests does) reads the 413, then a clean close',
      async (api, baseUrl) => {
        const id = await api.createRun()
        const url = new URL(`${baseUrl}/${id}/stage-update`)
        const body = Buffer.alloc(16 * 1024 * 1024, 0x20)
        const { text, error } = await new Promise<{ text: string; error: string | undefined }>((resolve) => {
          const socket = connect(Number(url.port), url.hostname)
          let text = ''
          socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')))
          socket.on('end', () => socket.end())
          socket.once('error', (error: NodeJS.ErrnoException) => resolve({ text, error: error.code }))
          socket.once('close', () => resolve({ text, error: undefined }))
          socket.write(
            `POST ${url.pathname} HTTP/1.1\r\nHost: ${url.host}\r\nX-Webhook-Secret: ${SECRET}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`,
          )
          socket.write(body)
        })
        expect(error).toBeUndefined()
        expect(text).toMatch(/^HTTP\/1\.1 413 /)
        expect(text).toMatch(/\r\nconnection: close\r\n/i)
        expect(text).toContain('"code":"payload_too_large"')
        expect((await api.status(id)).stages).toEqual([])
      },
      { maxBodyBytes: 1024 },
    )
  })

  describe(`${name}: Standard Webhooks signatures`, () => {
    /** Signs `body` with a route-bound webhook-id: `<METHOD> <route> <unique>` (docs/security.md). */
    const signed = async (
      body: string,
      target: { route: string; method?: string; unique?: string; id?: string | undefined; timestamp?: number; secret?: string },
    ) =>
      createWebhookSignatureHeaders({
        secret: target.secret ?? SIGNING_SECRET,
        body,
        id: target.id ?? webhookMessageId({ method: target.method ?? 'POST', route: target.route, unique: target.unique ?? crypto.randomUUID() }),
        timestamp: target.timestamp,
      }) as unknown as Promise<Record<string, string>>
    const now = () => Math.floor(Date.now() / 1000)

    scenario(
      'accepts a valid signature without the shared secret, refuses wrong, expired and tampered ones',
      async (api) => {
        const id = await api.createRun()
        const route = `${id}/stage-update`
        const body = JSON.stringify(makeStageUpdate())
        const headers = await signed(body, { route })
        expect((await api.stage(id, undefined, { body, secret: null, headers })).status).toBe(200)

        const wrong = await signed(body, { route, secret: 'whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' })
        await expectProblem(await api.stage(id, undefined, { body, secret: null, headers: wrong }), 401, 'invalid_signature')
        const tampered = await signed(body, { route })
        const other = JSON.stringify(makeStageUpdate({ status: 'FAILED' }))
        await expectProblem(await api.stage(id, undefined, { body: other, secret: null, headers: tampered }), 401, 'invalid_signature')
        const expired = await signed(body, { route, timestamp: now() - 301 })
        await expectProblem(await api.stage(id, undefined, { body, secret: null, headers: expired }), 401, 'invalid_signature')
        const future = await signed(body, { route, timestamp: now() + 301 })
        await expectProblem(await api.stage(id, undefined, { body, secret: null, headers: future }), 401, 'invalid_signature')
        // A present signature is always checked, even beside the right shared secret.
        await expectProblem(await api.stage(id, undefined, { body, headers: wrong }), 401, 'invalid_signature')
        expect((await api.status(id)).stages[0]?.status).toBe('PROCESSING')
      },
      { signing: { secret: SIGNING_SECRET } },
    )

    scenario(
      'an exact resend of an applied signed request answers like any duplicate; the same id with another body is refused',
      async (api) => {
        const id = await api.createRun()
        const route = `${id}/stage-update`
        const body = JSON.stringify(makeStageUpdate({ status: 'COMPLETED', output: 'first' }))
        const headers = await signed(body, { route })
        expect(StageUpdateResponse.parse(await (await api.stage(id, undefined, { body, secret: null, headers })).json()).outcome).toBe('applied')

        // The answer was lost; the very same request (same id, timestamp and signature) comes again.
        const resent = await api.stage(id, undefined, { body, secret: null, headers })
        expect(resent.status).toBe(200)
        expect(StageUpdateResponse.parse(await resent.json()).outcome).toBe('duplicate')
        // A retry signed again (same id, fresh timestamp) is the same message too.
        const resigned = await signed(body, { route, id: headers['webhook-id'], timestamp: now() + 1 })
        expect(StageUpdateResponse.parse(await (await api.stage(id, undefined, { body, secret: null, headers: resigned })).json()).outcome).toBe('duplicate')

        const other = JSON.stringify(makeStageUpdate({ status: 'COMPLETED', output: 'second' }))
        const reused = await signed(other, { route, id: headers['webhook-id'] })
        const refused = await expectProblem(await api.stage(id, undefined, { body: other, secret: null, headers: reused }), 401, 'invalid_signature')
        expect(refused.detail).toMatch(/another body/)
        expect((await api.status(id)).stages[0]).toMatchObject({ status: 'COMPLETED', output: 'first' })
      },
      { signing: { secret: SIGNING_SECRET } },
    )

    scenario(
      'what is signed binds the method, the run and the route, with and without a body',
      async (api) => {
        const runA = await api.createRun()
        const runB = await api.createRun()
        const body = JSON.stringify(makeStageUpdate({ status: 'FAILED', output: 'for A only' }))
        const forA = await signed(body, { route: `${runA}/stage-update` })
        for (const response of [
          await api.stage(runB, undefined, { body, secret: null, headers: forA }),
          await api.complete(runA, undefined, { body, secret: null, headers: forA }),
          await api.stage(runA, undefined, { body, secret: null, headers: await signed(body, { route: `${runA}/stage-update`, method: 'PUT' }) }),
          await api.stage(runA, undefined, { body, secret: null, headers: await signed(body, { route: '', id: `msg_${crypto.randomUUID()}` }) }),
          // The method and route alone, with nothing unique after them, name no message.
          await api.stage(runA, undefined, { body, secret: null, headers: await signed(body, { route: '', id: `POST ${runA}/stage-update` }) }),
        ]) {
          expect((await expectProblem(response, 401, 'invalid_signature')).detail).toMatch(/webhook-id/)
        }
        expect((await api.status(runA)).run.status).toBe('PENDING')
        expect((await api.status(runB)).run.status).toBe('PENDING')

        // A status read has no body: it signs the empty body, bound to its run.
        const readA = await signed('', { method: 'GET', route: `${runA}/status` })
        expect((await api.getStatus(runA, { secret: null, headers: readA })).status).toBe(200)
        await expectProblem(await api.getStatus(runB, { secret: null, headers: readA }), 401, 'invalid_signature')
        const postRead = await signed('', { method: 'POST', route: `${runA}/status` })
        await expectProblem(await api.getStatus(runA, { secret: null, headers: postRead }), 401, 'invalid_signature')

        // The route carries the run id as it is, whatever percent-encoding the URL used.
        const colon = await api.createRun(uniqueRunId('run:colon'))
        const update = JSON.stringify(makeStageUpdate())
        const colonHeaders = await signed(update, { route: `${colon}/stage-update` })
        expect((await api.stage(colon, undefined, { body: update, secret: null, headers: colonHeaders })).status).toBe(200)
        const created = JSON.stringify({ id: uniqueRunId() })
        expect((await api.send({ path: '/runs', body: created, secret: null, headers: await signed(created, { route: 'runs' }) })).status).toBe(201)
        const misrouted = JSON.stringify({ id: uniqueRunId() })
        await expectProblem(
          await api.send({ path: '/runs', body: misrouted, secret: null, headers: await signed(misrouted, { route: `${runA}/runs` }) }),
          401,
          'invalid_signature',
        )
      },
      { signing: { secret: SIGNING_SECRET } },
    )

    scenario(
      'with required signatures, the shared secret alone is refused',
      async (api) => {
        await expectProblem(await api.send({ path: '/runs', json: {} }), 401, 'invalid_signature')
        const body = JSON.stringify({ id: uniqueRunId() })
        const created = await api.send({ path: '/runs', body, headers: await signed(body, { route: 'runs' }) })
        expect(created.status).toBe(201)
        const runId = CreateRunResponse.parse(await created.json()).run.id
        await expectProblem(await api.stage(runId, makeStageUpdate()), 401, 'invalid_signature')
        const update = JSON.stringify(makeStageUpdate())
        expect((await api.stage(runId, undefined, { body: update, headers: await signed(update, { route: `${runId}/stage-update` }) })).status).toBe(200)
        // Reads still accept the shared secret.
        expect((await api.getStatus(runId)).status).toBe(200)
      },
      { signing: { secret: SIGNING_SECRET, required: true } },
    )

    scenario(
      'with only a signing secret, signed writes and signed reads work and rotation accepts both keys',
      async (api) => {
        const body = JSON.stringify({ id: uniqueRunId() })
        const created = await api.send({ path: '/runs', body, secret: null, headers: await signed(body, { route: 'runs', secret: 'raw-old-key' }) })
        expect(created.status).toBe(201)
        const runId = CreateRunResponse.parse(await created.json()).run.id
        await expectProblem(await api.getStatus(runId, { secret: null }), 401, 'unauthorized')
        const read = await api.getStatus(runId, { secret: null, headers: await signed('', { method: 'GET', route: `${runId}/status` }) })
        expect(read.status).toBe(200)
        expect(RunStatusResponse.parse(await read.json()).run.id).toBe(runId)
        await expectProblem(await api.stage(runId, makeStageUpdate(), { secret: 'anything' }), 401, 'invalid_signature')
      },
      { secret: [], signing: { secret: [SIGNING_SECRET, 'raw-old-key'] } },
    )

    scenario(
      'a signed request answered 5xx can be sent again as it was',
      async (api) => {
        const body = JSON.stringify({})
        const headers = await signed(body, { route: 'runs' })
        await expectProblem(await api.send({ path: '/runs', body, secret: null, headers }), 503, 'database_unavailable')
        await expectProblem(await api.send({ path: '/runs', body, secret: null, headers }), 503, 'database_unavailable')
      },
      { store: 'unavailable', signing: { secret: SIGNING_SECRET } },
    )

    if (target().expressApp) {
      // Python's json.dumps(..., separators=(',', ':'), ensure_ascii=False): compact, but not
      // what JSON.stringify writes once there is an é or a number written 5.0.
      const pythonStage = (runId: string) => ({
        path: `/${runId}/stage-update`,
        body: '{"stageNumber":1,"stageName":"Input Processing","status":"COMPLETED","output":"Gen Z wants éclairs"}',
      })
      const pythonComplete = (runId: string) => ({ path: `/${runId}/complete`, body: '{"status":"COMPLETED","duration":5.0}' })
      const asciiStage = (runId: string) => ({ path: `/${runId}/stage-update`, body: JSON.stringify(makeStageUpdate()) })
      const logged = () => {
        const errors: unknown[][] = []
        return { errors, logger: { warn: () => {}, error: (...args: unknown[]) => void errors.push(args) } }
      }

      it('express.json() mounted first, signatures required: 500 body_already_consumed whatever the content, fix logged once', async () => {
        const { errors, logger } = logged()
        await withApi({ signing: { secret: SIGNING_SECRET, required: true }, bodyParser: 'json', logger }, async (api) => {
          const created = JSON.stringify({ id: uniqueRunId() })
          const createdResponse = await api.send({ path: '/runs', body: created, headers: await signed(created, { route: 'runs' }) })
          await expectProblem(createdResponse, 500, 'body_already_consumed')
          const runId = uniqueRunId()
          for (const request of [asciiStage(runId), pythonStage(runId), pythonComplete(runId)]) {
            const route = request.path.slice(1)
            const response = await api.send({ ...request, headers: await signed(request.body, { route }) })
            await expectProblem(response, 500, 'body_already_consumed')
          }
        })
        expect(errors).toHaveLength(1)
        expect(String(errors[0]?.[0])).toMatch(/express\.json\(\).*before the router[\s\S]*req\.rawBody = buf/)
      })

      scenario(
        'express.json({ verify }) keeping req.rawBody: Python-style signed bodies verify over the bytes sent',
        async (api) => {
          const runId = uniqueRunId()
          const created = JSON.stringify({ id: runId })
          expect((await api.send({ path: '/runs', body: created, headers: await signed(created, { route: 'runs' }) })).status).toBe(201)
          for (const request of [pythonStage(runId), pythonComplete(runId)]) {
            const response = await api.send({ ...request, secret: null, headers: await signed(request.body, { route: request.path.slice(1) }) })
            expect({ status: response.status, text: await response.text() }).toMatchObject({ status: 200 })
          }
          expect((await api.status(runId)).stages[0]).toMatchObject({ status: 'COMPLETED', output: 'Gen Z wants éclairs' })
        },
        { signing: { secret: SIGNING_SECRET, required: true }, bodyParser: 'json-keeping-raw' },
      )

      scenario(
        'express.json() mounted first without signatures: Python-style bodies are applied as sent',
        async (api) => {
          const runId = await api.createRun()
          for (const request of [pythonStage(runId), pythonComplete(runId)]) expect((await api.send(request)).status).toBe(200)
          expect((await api.status(runId)).stages[0]).toMatchObject({ status: 'COMPLETED', output: 'Gen Z wants éclairs' })
        },
        { bodyParser: 'json' },
      )
    }
  })

  describe(`${name}: live status`, () => {
    const eventsPath = (runId: string) => `/${encodeURIComponent(runId)}/events`
    const open = async (api: Api, runId: string, spec: Partial<RequestSpec> = {}) => {
      const response = await api.send({ path: eventsPath(runId), ...spec })
      expect(response.status).toBe(200)
      expect(response.headers.get('content-type')).toBe('text/event-stream; charset=utf-8')
      expect(response.headers.get('cache-control')).toBe('no-cache, no-transform')
      return readEvents(response)
    }

    scenario('streams a snapshot, then each change as an update, then end, and closes', async (api) => {
      const id = await api.createRun()
      const stream = await open(api, id)
      const snapshot = await stream.next()
      expect(snapshot.event).toBe('snapshot')
      expect(snapshot.id).toBe('0')
      expect(RunSnapshotEvent.parse(JSON.parse(snapshot.data))).toEqual(await api.status(id))
      expect(stream.retries).toEqual([2000])

      const first = await api.stageOk(id, makeStageUpdate({ stageNumber: 1, status: 'PROCESSING', output: '' }))
      const update = await stream.next()
      expect({ event: update.event, id: update.id }).toEqual({ event: 'update', id: '1' })
      expect(RunUpdateEvent.parse(JSON.parse(update.data))).toEqual({ run: first.run, stages: [first.stage] })

      const done = await api.stageOk(id, makeStageUpdate({ stageNumber: 1, status: 'COMPLETED', output: 'one' }))
      const second = await stream.next()
      expect(second.id).toBe('2')
      expect(RunUpdateEvent.parse(JSON.parse(second.data))).toEqual({ run: done.run, stages: [done.stage] })

      for (const update of ALL_STAGES_TO_4.slice(1)) await api.stageOk(id, update)
      const last = await api.stageOk(id, makeStageUpdate({ stageNumber: 5, status: 'COMPLETED', output: 'five' }))
      expect(last.run.status).toBe('COMPLETED')
      // Changes a few milliseconds apart may share an event; the final state always arrives, then end.
      let event = await stream.next()
      const ids = [Number(second.id)]
      while (event.event === 'update') {
        ids.push(Number(event.id))
        event = await stream.next()
      }
      expect(event.event).toBe('end')
      expect(event.id).toBe('6')
      expect(RunEndEvent.parse(JSON.parse(event.data))).toEqual({ run: last.run })
      for (let i = 1; i < ids.length; i++) expect(ids[i]).toBeGreaterThan(ids[i - 1] as number)
      expect(ids.at(-1)).toBe(6)
      await stream.closed
      const merged = stream.events
        .filter((e) => e.event === 'update')
        .flatMap((e) => RunUpdateEvent.parse(JSON.parse(e.data)).stages)
        .filter((stage) => stage.stageNumber === 5)
      expect(merged.at(-1)?.status).toBe('COMPLETED')
    })

    scenario('a reconnect with Last-Event-ID gets a fresh snapshot of the current state', async (api) => {
      const id = await api.createRun()
      const stream = await open(api, id)
      await stream.next()
      await api.stageOk(id, makeStageUpdate({ stageNumber: 1, status: 'COMPLETED', output: 'one' }))
      const seen = await stream.next()
      await stream.cancel()
      await api.stageOk(id, makeStageUpdate({ stageNumber: 2, status: 'COMPLETED', output: 'two' }))
      const resumed = await open(api, id, { headers: { 'Last-Event-ID': String(seen.id) } })
      const snapshot = await resumed.next()
      expect({ event: snapshot.event, id: snapshot.id }).toEqual({ event: 'snapshot', id: '2' })
      expect(RunSnapshotEvent.parse(JSON.parse(snapshot.data))).toEqual(await api.status(id))
      await resumed.cancel()
    })

    scenario('a finished run gets its final state and end at once, and the stream closes', async (api) => {
      const id = await api.createRun()
      for (const update of ALL_STAGES_TO_4) await api.stageOk(id, update)
      await api.stageOk(id, makeStageUpdate({ stageNumber: 5, status: 'COMPLETED', output: 'five' }))
      const stream = await open(api, id)
      await stream.closed
      expect(stream.events.map((event) => [event.event, event.id])).toEqual([
        ['snapshot', '5'],
        ['end', '5'],
      ])
      const status = await api.status(id)
      expect(RunSnapshotEvent.parse(JSON.parse(stream.events[0]?.data ?? ''))).toEqual(status)
      expect(RunEndEvent.parse(JSON.parse(stream.events[1]?.data ?? ''))).toEqual({ run: status.run })
    })

    scenario(
      'sends a keep-alive comment while idle',
      async (api) => {
        const id = await api.createRun()
        const stream = await open(api, id)
        await stream.next()
        const deadline = Date.now() + 5_000
        // The first comment announces the interval (`keep-alive-ms 20`); keep-alives follow.
        while (stream.comments.length < 2 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10))
        expect(stream.comments.slice(0, 2)).toEqual(['keep-alive-ms 20', 'keep-alive'])
        await stream.cancel()
      },
      { live: { keepAliveMs: 20 } },
    )

    scenario('an unknown run is 404 and a missing or wrong secret 401', async (api) => {
      await expectProblem(await api.send({ path: eventsPath(uniqueRunId('absent')) }), 404, 'run_not_found')
      const id = await api.createRun()
      await expectProblem(await api.send({ path: eventsPath(id), secret: null }), 401, 'unauthorized')
      await expectProblem(await api.send({ path: eventsPath(id), secret: 'wrong' }), 401, 'unauthorized')
      await expectProblem(await api.send({ path: eventsPath(id), method: 'POST', json: {} }), 405, 'method_not_allowed')
    })

    scenario(
      "a run read token streams its own run only",
      async (api) => {
        const mine = await api.createRun()
        const other = await api.createRun()
        const token = await createRunReadToken({ runId: mine, secret: READ_TOKEN_SECRET, expiresInSeconds: 600 })
        const headers = { Authorization: `Bearer ${token}` }
        const stream = await open(api, mine, { secret: null, headers })
        expect((await stream.next()).event).toBe('snapshot')
        await stream.cancel()
        await expectProblem(await api.send({ path: eventsPath(other), secret: null, headers }), 401, 'invalid_read_token')
      },
      { readTokens: { secret: READ_TOKEN_SECRET } },
    )

    {
      const asked: AuthorizeInput<unknown>[] = []
      scenario(
        "the authorize hook is asked with action 'stream' and its false is 403",
        async (api) => {
          const allowed = await api.createRun('stream-allowed-' + crypto.randomUUID().slice(0, 8))
          const refused = await api.createRun()
          const stream = await open(api, allowed, { secret: null })
          expect((await stream.next()).event).toBe('snapshot')
          await stream.cancel()
          await expectProblem(await api.send({ path: eventsPath(refused), secret: null }), 403, 'forbidden')
          expect(asked.map((input) => [input.runId, input.action])).toEqual([
            [allowed, 'stream'],
            [refused, 'stream'],
          ])
        },
        {
          authorize: (input) => {
            asked.push(input)
            return input.runId.startsWith('stream-allowed-')
          },
        },
      )
    }

    scenario('sends no CORS headers by default (same-origin only)', async (api) => {
      const id = await api.createRun()
      const stream = await open(api, id, { headers: { Origin: 'https://elsewhere.example' } })
      expect(stream.response.headers.get('access-control-allow-origin')).toBeNull()
      await stream.cancel()
      const status = await api.getStatus(id, { headers: { Origin: 'https://elsewhere.example' } })
      expect(status.headers.get('access-control-allow-origin')).toBeNull()
    })

    scenario(
      'with cors, an allowed origin gets the preflight and the grant on status and events; others get none',
      async (api) => {
        const id = await api.createRun()
        const origin = 'https://dashboard.example'
        for (const path of [eventsPath(id), `/${encodeURIComponent(id)}/status`]) {
          const preflight = await api.send({
            path,
            method: 'OPTIONS',
            secret: null,
            headers: { Origin: origin, 'Access-Control-Request-Method': 'GET', 'Access-Control-Request-Headers': 'authorization, last-event-id' },
          })
          expect(preflight.status).toBe(204)
          expect(preflight.headers.get('access-control-allow-origin')).toBe(origin)
          expect(preflight.headers.get('access-control-allow-methods')).toBe('GET, HEAD')
          expect(preflight.headers.get('access-control-allow-headers')).toBe('Authorization, Last-Event-ID, If-None-Match, Cache-Control')
          expect(preflight.headers.get('vary')).toContain('Origin')
          const stranger = await api.send({ path, method: 'OPTIONS', secret: null, headers: { Origin: 'https://evil.example' } })
          expect(stranger.status).toBe(204)
          expect(stranger.headers.get('access-control-allow-origin')).toBeNull()
        }
        const stream = await open(api, id, { headers: { Origin: origin } })
        expect(stream.response.headers.get('access-control-allow-origin')).toBe(origin)
        await stream.cancel()
        const status = await api.getStatus(id, { headers: { Origin: origin } })
        expect(status.headers.get('access-control-allow-origin')).toBe(origin)
        expect(status.headers.get('access-control-expose-headers')).toBe('ETag, Retry-After')
        const write = await api.stage(id, makeStageUpdate({ stageNumber: 1 }), { headers: { Origin: origin } })
        expect(write.status).toBe(200)
        expect(write.headers.get('access-control-allow-origin')).toBeNull()
      },
      { cors: { origins: ['https://dashboard.example'] } },
    )

    scenario(
      'past the cap of open streams, 503 too_many_streams with Retry-After; a closed stream frees its place',
      async (api) => {
        const id = await api.createRun()
        const first = await open(api, id)
        await first.next()
        const refused = await api.send({ path: eventsPath(id) })
        await expectProblem(refused, 503, 'too_many_streams')
        expect(refused.headers.get('retry-after')).toBe('5')
        await first.cancel()
        const deadline = Date.now() + 5_000
        let again = await api.send({ path: eventsPath(id) })
        while (again.status === 503 && Date.now() < deadline) {
          await again.body?.cancel()
          await new Promise((resolve) => setTimeout(resolve, 20))
          again = await api.send({ path: eventsPath(id) })
        }
        expect(again.status).toBe(200)
        await again.body?.cancel()
      },
      { live: { maxStreams: 1 } },
    )
  })

  describe(`${name}: read tokens`, () => {
    const bearer = (token: string) => ({ secret: null, headers: { Authorization: `Bearer ${token}` } })
    const readTokens = { secret: [READ_TOKEN_SECRET, OLD_READ_TOKEN_SECRET] }

    scenario(
      "a run's token reads that run, and nothing else: not another run, not a write",
      async (api) => {
        const mine = await api.createRun()
        const other = await api.createRun()
        await api.stageOk(mine, makeStageUpdate({ stageNumber: 1, status: 'COMPLETED', output: 'one' }))
        const token = await createRunReadToken({ runId: mine, secret: READ_TOKEN_SECRET, expiresInSeconds: 600 })

        const before = await api.status(mine)
        expect(before.stages.map((stage) => [stage.stageNumber, stage.status])).toEqual([[1, 'COMPLETED']])
        const read = await api.getStatus(mine, bearer(token))
        expect(read.status).toBe(200)
        expect(RunStatusResponse.parse(await read.json())).toEqual(before)

        const problem = await expectProblem(await api.getStatus(other, bearer(token)), 401, 'invalid_read_token')
        expect(problem.detail).toBe('The read token is not valid for this run')
        await expectProblem(await api.stage(mine, makeStageUpdate({ stageNumber: 2 }), bearer(token)), 401, 'unauthorized')
        await expectProblem(await api.complete(mine, makeCompleteRun(), bearer(token)), 401, 'unauthorized')
        await expectProblem(await api.send({ path: '/runs', json: {}, ...bearer(token) }), 401, 'unauthorized')
        // Nothing the refused writes carried was stored.
        expect(await api.status(mine)).toEqual(before)
      },
      { readTokens },
    )

    scenario(
      'expired, forged, malformed and unknown-secret tokens answer 401 invalid_read_token saying why',
      async (api) => {
        const id = await api.createRun()
        const issued = new Date(Date.now() - 2 * 60 * 60 * 1000)
        const expired = await createRunReadToken({ runId: id, secret: READ_TOKEN_SECRET, expiresInSeconds: 60, now: issued })
        const problem = await expectProblem(await api.getStatus(id, bearer(expired)), 401, 'invalid_read_token')
        const expiresAt = new Date((Math.floor(issued.getTime() / 1000) + 60) * 1000).toISOString()
        expect(problem.detail).toBe(`The read token expired on ${expiresAt}; get a new one`)

        const foreign = await createRunReadToken({ runId: id, secret: 'another-apps-read-token-secret-000000', expiresInSeconds: 600 })
        const forged = await createRunReadToken({ runId: id, secret: READ_TOKEN_SECRET, expiresInSeconds: 600 })
        // The same signature with a later expiry: the expiry is signed.
        const [prefix, expires, signature] = forged.split('.')
        const extended = `${prefix}.${Number(expires) + 86_400}.${signature}`
        for (const token of [foreign, extended]) {
          const refused = await expectProblem(await api.getStatus(id, bearer(token)), 401, 'invalid_read_token')
          expect(refused.detail).toBe('The read token is not valid for this run')
        }
        const malformed = await expectProblem(await api.getStatus(id, bearer('psrt1.not-a-token')), 401, 'invalid_read_token')
        expect(malformed.detail).toBe('The read token is malformed')
        // The webhook secret still reads; so does a token signed with the retired secret.
        expect((await api.getStatus(id)).status).toBe(200)
        const old = await createRunReadToken({ runId: id, secret: OLD_READ_TOKEN_SECRET, expiresInSeconds: 600 })
        expect((await api.getStatus(id, bearer(old))).status).toBe(200)
      },
      { readTokens },
    )

    scenario(
      "other bearer credentials go on to the app's authorize hook",
      async (api) => {
        const id = await api.createRun()
        expect((await api.getStatus(id, bearer('app-session-alice'))).status).toBe(200)
        await expectProblem(await api.getStatus(id, bearer('app-session-bob')), 403, 'forbidden')
      },
      {
        readTokens,
        authorize: ({ request, action }) => action === 'read' && request.headers.get('authorization') === 'Bearer app-session-alice',
      },
    )

    scenario('without readTokens, a valid token reads nothing', async (api) => {
      const id = await api.createRun()
      const token = await createRunReadToken({ runId: id, secret: READ_TOKEN_SECRET, expiresInSeconds: 600 })
      const problem = await expectProblem(await api.getStatus(id, bearer(token)), 401, 'unauthorized')
      expect(problem.detail).toBe('Authorization: Bearer is not accepted here; send X-Webhook-Secret or a signature')
    })

    scenario(
      'another bearer credential without an authorize hook: the 401 names what was sent and what is accepted',
      async (api) => {
        const id = await api.createRun()
        const read = await expectProblem(await api.getStatus(id, bearer('app-session-alice')), 401, 'unauthorized')
        expect(read.detail).toBe(
          'Authorization: Bearer is not a run read token (psrt1.…); send X-Webhook-Secret, a signature or a run read token',
        )
        // Writes never take a read token.
        const write = await expectProblem(await api.stage(id, makeStageUpdate(), bearer('app-session-alice')), 401, 'unauthorized')
        expect(write.detail).toBe('Authorization: Bearer is not accepted here; send X-Webhook-Secret or a signature')
        // Without any credential the detail still names the secret.
        const none = await expectProblem(await api.getStatus(id, { secret: null }), 401, 'unauthorized')
        expect(none.detail).toBe('X-Webhook-Secret is missing')
      },
      { readTokens },
    )
  })

  describe(`${name}: authentication`, () => {
    const capture = () => {
      const warned: [string, Record<string, unknown>][] = []
      const errors: unknown[][] = []
      const logger = {
        warn: (message: unknown, details: unknown) => void warned.push([String(message), details as Record<string, unknown>]),
        error: (...args: unknown[]) => void errors.push(args),
      }
      return { warned, errors, logger }
    }

    it('logs one line per refused request with method, path, run id, status and reason', async () => {
      const { warned, errors, logger } = capture()
      await withApi({ logger }, async (api) => {
        const id = await api.createRun()
        expect(warned).toEqual([])
        await expectProblem(await api.stage(id, makeStageUpdate(), { secret: 'wrong' }), 401, 'unauthorized')
        await expectProblem(await api.stage('no-such-run', makeStageUpdate()), 404, 'run_not_found')
        await expectProblem(await api.send({ path: '/nowhere/at/all', json: {} }), 404, 'route_not_found')
        await expectProblem(await api.stage('two\nlines', makeStageUpdate()), 404, 'run_not_found')
        expect(warned.map(([line]) => line)).toEqual([
          `pipeline-status: refused POST /api/pipeline/${id}/stage-update (run ${id}): 401 unauthorized: X-Webhook-Secret does not match`,
          'pipeline-status: refused POST /api/pipeline/no-such-run/stage-update (run no-such-run): 404 run_not_found: No pipeline run has this id',
          'pipeline-status: refused POST /api/pipeline/nowhere/at/all: 404 route_not_found: No pipeline-status route at this path',
          'pipeline-status: refused POST /api/pipeline/two%0Alines/stage-update (run two\\x0alines): 404 run_not_found: No pipeline run has this id',
        ])
        expect(warned[0]?.[1]).toMatchObject({ method: 'POST', path: `/api/pipeline/${id}/stage-update`, runId: id, status: 401, code: 'unauthorized' })
      })
      expect(errors).toEqual([])
    })

    it('a 503 logs one line with its cause, not a stack', async () => {
      const { warned, errors, logger } = capture()
      await withApi({ logger, store: 'unavailable' }, async (api) => {
        await expectProblem(await api.stage('r', makeStageUpdate()), 503, 'database_unavailable')
      })
      expect(errors).toEqual([])
      expect(warned).toHaveLength(1)
      const [line, details] = warned[0] as [string, Record<string, unknown>]
      expect(line).toMatch(/^pipeline-status: POST \/api\/pipeline\/r\/stage-update \(run r\): 503 database_unavailable: \S/)
      expect(line).not.toContain('\n')
      expect(Object.values(details).some((value) => value instanceof Error)).toBe(false)
      expect(details).toMatchObject({ status: 503, code: 'database_unavailable', cause: expect.any(String) })
    })

    scenario(
      "authorize gets one object; its 401 is the app's own problem, not the webhook secret's",
      async (api) => {
        const id = await api.createRun(`${uniqueRunId()}-mine`)
        const response = await api.getStatus(id, { secret: null })
        const problem = await expectProblem(response, 401, 'authentication_required')
        expect(problem).toMatchObject({ title: 'Authentication required', detail: 'Sign in first' })
        const ok = await api.getStatus(id, { secret: null, headers: { Cookie: 'session=alice' } })
        expect(ok.status).toBe(200)
        await expectProblem(await api.getStatus(`${id}-other`, { secret: null, headers: { Cookie: 'session=alice' } }), 403, 'forbidden')
      },
      {
        authorize: ({ request, runId, action, native }) => {
          expect(action).toBe('read')
          expect(native).toBeDefined()
          if (request.headers.get('cookie') !== 'session=alice') throw new HttpProblemError('unauthorized', { detail: 'Sign in first' })
          return runId.endsWith('-mine')
        },
      },
    )
  })

  describe(`${name}: runner control`, () => {
    const CATALOGUE = DEFAULT_STAGES.map((stage) => ({ stageNumber: stage.number, stageName: stage.name }))
    const etagOf = async (api: Api, id: string) => (await api.getStatus(id)).headers.get('etag')

    scenario('a heartbeat records activity only: no status change, no new version; unknown run 404, no secret 401', async (api) => {
      const id = await api.createRun()
      await api.stageOk(id, makeStageUpdate())
      const before = await api.status(id)
      const etag = await etagOf(api, id)

      const bare = await api.heartbeatOk(id)
      expect(bare).toMatchObject({ outcome: 'recorded', stage: null, run: { id, status: 'PROCESSING', error: null } })
      expect(bare.run.lastActivityAt).not.toBeNull()
      const named = await api.heartbeatOk(id, { stageNumber: 1, intervalMs: 10_000 })
      expect(named).toMatchObject({ outcome: 'recorded', stage: { stageNumber: 1, status: 'PROCESSING' }, run: { heartbeatIntervalMs: 10_000 } })
      expect((await api.heartbeatOk(id, {})).run.heartbeatIntervalMs).toBe(10_000)

      const after = await api.status(id)
      expect(after.run).toMatchObject({ status: 'PROCESSING', updatedAt: before.run.updatedAt, heartbeatIntervalMs: 10_000 })
      expect(after.stages).toEqual(before.stages)
      expect(await etagOf(api, id)).toBe(etag)

      await expectProblem(await api.heartbeat('no-such-run'), 404, 'run_not_found')
      await expectProblem(await api.heartbeat(id, {}, { secret: null }), 401, 'unauthorized')
      await expectProblem(await api.heartbeat(id, { intervalMs: 10 }), 400, 'validation_failed')
    })

    scenario('progress is stored on the stage; the highest seq wins, not the last to arrive; a final status keeps it', async (api) => {
      const id = await api.createRun()
      await api.stageOk(id, makeStageUpdate())
      const etag = await etagOf(api, id)

      const stored = await api.heartbeatOk(id, { stageNumber: 1, progress: { seq: 2, current: 20, total: 80, message: 'batch 2' } })
      expect(stored).toMatchObject({ outcome: 'applied', stage: { progress: { seq: 2, current: 20, total: 80, message: 'batch 2' } } })
      expect(await etagOf(api, id)).not.toBe(etag)
      expect((await api.status(id)).stages[0]?.progress).toEqual({ seq: 2, current: 20, total: 80, message: 'batch 2' })

      const older = await api.heartbeatOk(id, { stageNumber: 1, progress: { seq: 1, percent: 10 } })
      expect(older).toMatchObject({ outcome: 'stale', stage: { progress: { seq: 2 } } })
      expect((await api.heartbeatOk(id, { stageNumber: 1, progress: { seq: 2, percent: 99 } })).outcome).toBe('duplicate')

      // A PROCESSING update that only changes the progress is applied, not a duplicate.
      const viaUpdate = await api.stageOk(id, makeStageUpdate({ progress: { seq: 3, percent: 75 } }))
      expect(viaUpdate).toMatchObject({ outcome: 'applied', stage: { status: 'PROCESSING', progress: { seq: 3, percent: 75 } } })
      // One rule on both routes: older progress (a lower seq) is stale, the same seq again a duplicate.
      const late = await api.stageOk(id, makeStageUpdate({ progress: { seq: 1, percent: 5 } }))
      expect(late).toMatchObject({ outcome: 'stale', stage: { progress: { seq: 3, percent: 75 } } })
      const again = await api.stageOk(id, makeStageUpdate({ progress: { seq: 3, percent: 75 } }))
      expect(again).toMatchObject({ outcome: 'duplicate', stage: { progress: { seq: 3, percent: 75 } } })
      const lateBeat = await api.heartbeatOk(id, { stageNumber: 1, progress: { seq: 2, percent: 50 } })
      expect(lateBeat).toMatchObject({ outcome: 'stale', stage: { progress: { seq: 3, percent: 75 } } })

      const done = await api.stageOk(id, makeStageUpdate({ status: 'COMPLETED', output: 'ok' }))
      expect(done.stage?.progress).toEqual({ seq: 3, percent: 75 })
      expect((await api.heartbeatOk(id, { stageNumber: 1, progress: { seq: 9, percent: 100 } })).outcome).toBe('stale')
      expect((await api.status(id)).stages[0]?.progress).toEqual({ seq: 3, percent: 75 })
    })

    scenario('refuses invalid progress with 400 naming the field, and stores nothing', async (api) => {
      const id = await api.createRun()
      await api.stageOk(id, makeStageUpdate())
      const before = await api.status(id)
      const cases: Array<[unknown, string]> = [
        [{ stageNumber: 1, progress: { seq: 1, percent: 150 } }, 'progress.percent'],
        [{ stageNumber: 1, progress: { seq: -1 } }, 'progress.seq'],
        [{ stageNumber: 1, progress: { percent: 5 } }, 'progress.seq'],
        [{ stageNumber: 1, progress: { seq: 1, current: 5, total: 4 } }, 'progress.current'],
        [{ stageNumber: 1, progress: { seq: 1, message: 'x'.repeat(MAX_PROGRESS_MESSAGE_LENGTH + 1) } }, 'progress.message'],
        [{ stageNumber: 1, progress: { seq: 1, message: 'nul \u0000' } }, 'progress.message'],
        [{ progress: { seq: 1 } }, 'stageNumber'],
        [{ stageNumber: 6 }, 'stageNumber'],
      ]
      for (const [body, field] of cases) {
        const problem = await expectProblem(await api.heartbeat(id, body), 400, 'validation_failed')
        expect(problem.errors?.map((error) => error.field)).toContain(field)
      }
      const onFinal = await expectProblem(
        await api.stage(id, makeStageUpdate({ status: 'COMPLETED', progress: { seq: 1 } })),
        400,
        'validation_failed',
      )
      expect(onFinal.errors?.map((error) => error.field)).toEqual(['progress'])
      expect(await api.status(id)).toEqual(before)
    })

    scenario('cancels a running run and its PROCESSING stage in one write; a second cancel is a duplicate', async (api) => {
      const id = await api.createRun()
      await api.stageOk(id, makeStageUpdate({ status: 'COMPLETED' }))
      await api.stageOk(id, makeStageUpdate({ stageNumber: 2, output: 'working' }))
      const cancelled = await api.cancelOk(id, { reason: 'stopped by the user' })
      expect(cancelled).toMatchObject({ outcome: 'applied', run: { id, status: 'CANCELLED', error: 'stopped by the user' } })
      expect(cancelled.run.completedAt).not.toBeNull()
      const status = await api.status(id)
      expect(status.run).toEqual(cancelled.run)
      expect(status.stages.map((stage) => [stage.stageNumber, stage.status, stage.output])).toEqual([
        [1, 'COMPLETED', null],
        [2, 'CANCELLED', 'working'],
      ])

      const again = await api.cancelOk(id, { reason: 'twice' })
      expect(again).toMatchObject({ outcome: 'duplicate', run: { status: 'CANCELLED', error: 'stopped by the user' } })
      // The runner learns at its next report: every answer carries the run's status and reason.
      const heartbeat = await api.heartbeatOk(id, { stageNumber: 2 })
      expect(heartbeat.run).toMatchObject({ status: 'CANCELLED', error: 'stopped by the user' })
      const beforeBeat = await api.status(id)
      // A finished run never changes: a late heartbeat writes nothing and answers stale with the run as stored.
      const lateBeat = await api.heartbeatOk(id, { stageNumber: 2, intervalMs: 1000 })
      expect(lateBeat).toEqual({ outcome: 'stale', run: beforeBeat.run, stage: beforeBeat.stages[1] })
      expect(lateBeat.run.heartbeatIntervalMs ?? null).toBeNull()
      expect(await api.status(id)).toEqual(beforeBeat)
      const update = await api.stageOk(id, makeStageUpdate({ stageNumber: 3 }))
      expect(update).toMatchObject({ outcome: 'stale', run: { status: 'CANCELLED', error: 'stopped by the user' } })
      // The cancelled stage keeps CANCELLED; a stage without a row is stored as reported when it
      // agrees with the cancel (COMPLETED or CANCELLED), and the run stays CANCELLED.
      await expectProblem(await api.stage(id, makeStageUpdate({ stageNumber: 2, status: 'COMPLETED' })), 409, 'stage_finished')
      expect((await api.stageOk(id, makeStageUpdate({ stageNumber: 2, status: 'CANCELLED' }))).outcome).toBe('duplicate')
      const late = await api.stageOk(id, makeStageUpdate({ stageNumber: 3, status: 'COMPLETED', output: 'late' }))
      expect(late).toMatchObject({ outcome: 'applied', stage: { stageNumber: 3, status: 'COMPLETED', output: 'late' }, run: { status: 'CANCELLED' } })
      await expectProblem(await api.stage(id, makeStageUpdate({ stageNumber: 4, status: 'FAILED' })), 409, 'run_finished')
      expect((await api.status(id)).stages.map((stage) => [stage.stageNumber, stage.status])).toEqual([
        [1, 'COMPLETED'],
        [2, 'CANCELLED'],
        [3, 'COMPLETED'],
      ])
    })

    scenario('refuses to cancel a COMPLETED or FAILED run (409, nothing changes) and an unknown run (404)', async (api) => {
      const completed = await api.createRun()
      for (const update of ALL_STAGES_TO_4) await api.stageOk(completed, update)
      await api.stageOk(completed, makeStageUpdate({ stageNumber: 5, status: 'COMPLETED' }))
      const failed = await api.createRun()
      await api.stageOk(failed, makeStageUpdate({ status: 'FAILED', output: 'boom' }))
      for (const id of [completed, failed]) {
        const before = await api.status(id)
        await expectProblem(await api.cancel(id, { reason: 'too late' }), 409, 'run_finished')
        expect(await api.status(id)).toEqual(before)
      }
      await expectProblem(await api.cancel('no-such-run'), 404, 'run_not_found')
    })

    scenario('a cancel is JSON only (415 otherwise), needs the secret without authorize (401), and validates its reason', async (api) => {
      const id = await api.createRun()
      await api.stageOk(id, makeStageUpdate())
      await expectProblem(
        await api.send({ path: `/${id}/cancel`, body: 'reason=forged', contentType: 'application/x-www-form-urlencoded' }),
        415,
        'unsupported_media_type',
      )
      await expectProblem(await api.send({ path: `/${id}/cancel`, body: '{}', contentType: 'text/plain' }), 415, 'unsupported_media_type')
      await expectProblem(await api.send({ path: `/${id}/cancel`, method: 'POST', contentType: null }), 415, 'unsupported_media_type')
      await expectProblem(await api.cancel(id, {}, { secret: null }), 401, 'unauthorized')
      const problem = await expectProblem(await api.cancel(id, { reason: 42 }), 400, 'validation_failed')
      expect(problem.errors?.map((error) => error.field)).toEqual(['reason'])
      expect((await api.status(id)).run.status).toBe('PROCESSING')
      const allowed = await api.send({ path: `/${id}/cancel`, method: 'GET' })
      expect(allowed.status).toBe(405)
    })

    const authorized: AuthorizeInput<unknown>[] = []
    scenario(
      "a cancel from the web app is authorized by authorize with action 'cancel'; a form post never reaches it",
      async (api) => {
        authorized.length = 0
        const mine = await api.createRun(`${uniqueRunId()}-mine`)
        await api.stageOk(mine, makeStageUpdate())
        const session = { secret: null, headers: { Cookie: 'session=alice' } }
        await expectProblem(
          await api.send({ path: `/${mine}/cancel`, body: 'reason=x', contentType: 'application/x-www-form-urlencoded', ...session }),
          415,
          'unsupported_media_type',
        )
        expect(authorized).toEqual([])
        const cancelled = await api.cancelOk(mine, { reason: 'from the page' }, session)
        expect(cancelled.run).toMatchObject({ status: 'CANCELLED', error: 'from the page' })
        expect(authorized.map((input) => [input.runId, input.action])).toEqual([[mine, 'cancel']])

        const other = await api.createRun(`${uniqueRunId()}-theirs`)
        await expectProblem(await api.cancel(other, {}, session), 403, 'forbidden')
        await expectProblem(await api.cancel(other, {}, { secret: null }), 401, 'authentication_required')
        expect((await api.status(other)).run.status).toBe('PENDING')
        // The webhook secret still works without asking the hook.
        authorized.length = 0
        expect((await api.cancelOk(other)).outcome).toBe('applied')
        expect(authorized).toEqual([])
      },
      {
        authorize: (input) => {
          authorized.push(input)
          if (input.request.headers.get('cookie') !== 'session=alice') throw new HttpProblemError('unauthorized', { detail: 'Sign in first' })
          return input.action === 'cancel' && input.runId.endsWith('-mine')
        },
      },
    )

    scenario('the create-run and status answers carry the stage catalogue', async (api) => {
      const created = await api.send({ path: '/runs', json: { id: uniqueRunId() } })
      const body = CreateRunResponse.parse(await created.json())
      expect(body.catalogue).toEqual(CATALOGUE)
      expect((await api.status(body.run.id)).catalogue).toEqual(CATALOGUE)
    })

    const ended: Array<{ runId: string; how: string; status: string }> = []
    const endedOf = (runId: string) => ended.filter((entry) => entry.runId === runId).map((entry) => [entry.how, entry.status])
    scenario(
      'onRunEnded runs once per run, however it ended: last stage, a failed stage, cancel, /complete',
      async (api) => {
        const last = await api.createRun()
        for (const update of ALL_STAGES_TO_4) await api.stageOk(last, update)
        await api.stageOk(last, makeStageUpdate({ stageNumber: 5, status: 'COMPLETED' }))
        await api.stageOk(last, makeStageUpdate({ stageNumber: 5, status: 'COMPLETED' }))
        await api.completeOk(last, makeCompleteRun())
        expect(endedOf(last)).toEqual([['last_stage_completed', 'COMPLETED']])

        const failed = await api.createRun()
        await api.stageOk(failed, makeStageUpdate({ status: 'FAILED', output: 'boom' }))
        await api.completeOk(failed, makeCompleteRun({ status: 'FAILED' }))
        expect(endedOf(failed)).toEqual([['stage_failed', 'FAILED']])

        const cancelled = await api.createRun()
        await api.stageOk(cancelled, makeStageUpdate())
        await api.cancelOk(cancelled)
        await api.cancelOk(cancelled)
        expect(endedOf(cancelled)).toEqual([['cancelled', 'CANCELLED']])

        const explicit = await api.createRun()
        await api.stageOk(explicit, makeStageUpdate())
        await api.completeOk(explicit, makeCompleteRun({ status: 'FAILED', error: 'gave up' }))
        await api.stageOk(explicit, makeStageUpdate({ status: 'FAILED' }))
        expect(endedOf(explicit)).toEqual([['completed_explicitly', 'FAILED']])
      },
      { onRunEnded: ({ run, how }) => void ended.push({ runId: run.id, how, status: run.status }) },
    )
  })

  describe(`${name}: runner clocks and conflicting repeats`, () => {
    const HOUR = 3_600_000
    const TOLERANCE = 5 * 60_000
    const warnings: Array<{ message: string; details: Record<string, unknown> | undefined }> = []
    const logger = {
      warn: (message: unknown, details?: unknown) => void warnings.push({ message: String(message), details: details as Record<string, unknown> | undefined }),
      error: () => {},
    }
    const warningsOf = (runId: string, about: string) => warnings.filter((w) => w.details?.['runId'] === runId && w.message.includes(about))
    const ms = (iso: string | null | undefined) => Date.parse(iso ?? 'missing')

    scenario(
      'a runner clock 9 h ahead and a naive time before the run was created are stored clamped, never refused; one warning per run',
      async (api) => {
        const id = await api.createRun()
        const createdAt = (await api.status(id)).run.createdAt
        await api.stageOk(id, makeStageUpdate())

        // Stage 1 from a runner whose clock is 9 h ahead: stored at the server's now + 5 min.
        const sentAt = Date.now()
        const ahead = await api.stageOk(id, makeStageUpdate({ status: 'COMPLETED', output: 'one', completedAt: new Date(sentAt + 9 * HOUR).toISOString() }))
        const answeredAt = Date.now()
        expect(ahead.outcome).toBe('applied')
        expect(ms(ahead.stage?.completedAt)).toBeGreaterThanOrEqual(sentAt + TOLERANCE)
        expect(ms(ahead.stage?.completedAt)).toBeLessThanOrEqual(answeredAt + TOLERANCE)

        // Stage 2 from a runner in UTC+9 that sent a naive local time, read as UTC: 9 h before the
        // run was created. Stored as the run's creation.
        const naive = new Date(ms(createdAt) - 9 * HOUR).toISOString().slice(0, -1)
        const before = await api.stageOk(id, makeStageUpdate({ stageNumber: 2, status: 'COMPLETED', output: 'two', completedAt: naive }))
        expect(before).toMatchObject({ outcome: 'applied', stage: { completedAt: createdAt } })

        // Read back as stored.
        const status = await api.status(id)
        expect(status.stages.map((stage) => [stage.stageNumber, stage.completedAt])).toEqual([
          [1, ahead.stage?.completedAt],
          [2, createdAt],
        ])

        // /complete the same way: 9 h ahead is clamped to now + 5 min, the run's completedAt too.
        const completedSentAt = Date.now()
        const completed = await api.completeOk(id, makeCompleteRun({ status: 'FAILED', error: 'stage 3 gave up', completedAt: new Date(completedSentAt + 9 * HOUR).toISOString() }))
        expect(completed.outcome).toBe('applied')
        expect(ms(completed.run.completedAt)).toBeGreaterThanOrEqual(completedSentAt + TOLERANCE)
        expect(ms(completed.run.completedAt)).toBeLessThanOrEqual(Date.now() + TOLERANCE)
        expect((await api.status(id)).run).toMatchObject({ status: 'FAILED', completedAt: completed.run.completedAt })

        // Three clamped instants, one warning for the run, naming the skew and the fix.
        const logged = warningsOf(id, 'completedAt')
        expect(logged).toHaveLength(1)
        expect(logged[0]?.message).toMatch(/the runner sent completedAt \S+, 9 hours ahead of the server's clock \(tolerance 5 minutes\); stored clamped to /)
        expect(logged[0]?.message).toContain('sync it (NTP)')
        expect(logged[0]?.details).toMatchObject({ runId: id, bound: 'ahead', toleranceMs: TOLERANCE, stored: ahead.stage?.completedAt })
        expect(logged[0]?.details?.['skewMs']).toBeGreaterThanOrEqual(9 * HOUR - (answeredAt - sentAt))

        // Another run gets its own warning: here, the naive time first.
        const other = await api.createRun()
        const otherCreated = (await api.status(other)).run.createdAt
        const otherNaive = new Date(ms(otherCreated) - 9 * HOUR).toISOString().slice(0, -1)
        expect((await api.completeOk(other, makeCompleteRun({ completedAt: otherNaive }))).run.completedAt).toBe(otherCreated)
        const otherLogged = warningsOf(other, 'completedAt')
        expect(otherLogged).toHaveLength(1)
        expect(otherLogged[0]?.message).toContain('9 hours before the run was created')
        expect(otherLogged[0]?.message).toContain("send UTC instants with 'Z'")
      },
      { logger },
    )

    const CREATED = new Date('2026-03-01T12:00:00.000Z')
    scenario(
      'clockSkewToleranceMs sets the window: 1 minute ahead is stored as sent, 2 minutes ahead as now + 1 minute',
      async (api) => {
        const id = await api.createRun()
        expect((await api.status(id)).run.createdAt).toBe(CREATED.toISOString())
        const inside = await api.stageOk(id, makeStageUpdate({ status: 'COMPLETED', completedAt: '2026-03-01T12:01:00.000Z' }))
        expect(inside.stage?.completedAt).toBe('2026-03-01T12:01:00.000Z')
        const outside = await api.stageOk(id, makeStageUpdate({ stageNumber: 2, status: 'COMPLETED', completedAt: '2026-03-01T12:02:00.000Z' }))
        expect(outside.stage?.completedAt).toBe('2026-03-01T12:01:00.000Z')
        expect(warningsOf(id, 'completedAt').map((w) => w.details?.['skewMs'])).toEqual([120_000])
      },
      { clock: () => CREATED, clockSkewToleranceMs: 60_000, logger },
    )

    scenario(
      'a final status again with a different output answers 200 conflict and changes nothing; identical or output-less repeats are duplicate; one warning per run',
      async (api) => {
        const id = await api.createRun()
        const first = await api.stageOk(id, makeStageUpdate({ status: 'COMPLETED', output: 'first' }))
        expect(first.outcome).toBe('applied')
        const before = await api.status(id)
        const etag = (await api.getStatus(id)).headers.get('etag')

        const conflict = await api.stageOk(id, makeStageUpdate({ status: 'COMPLETED', output: 'second' }))
        expect(conflict).toEqual({ ...first, outcome: 'conflict' })
        expect(await api.stageOk(id, makeStageUpdate({ status: 'COMPLETED', output: 'third' }))).toMatchObject({ outcome: 'conflict', stage: { output: 'first' } })
        expect(await api.stageOk(id, makeStageUpdate({ status: 'COMPLETED', output: 'first' }))).toMatchObject({ outcome: 'duplicate', stage: { output: 'first' } })
        expect(await api.stageOk(id, makeStageUpdate({ status: 'COMPLETED' }))).toMatchObject({ outcome: 'duplicate', stage: { output: 'first' } })
        expect(await api.stageOk(id, makeStageUpdate({ status: 'COMPLETED', output: null }))).toMatchObject({ outcome: 'duplicate' })
        expect(await api.status(id)).toEqual(before)
        expect((await api.getStatus(id)).headers.get('etag')).toBe(etag)

        // A failed stage whose error is sent again, different: the run's error stays the first.
        const failed = await api.stageOk(id, makeStageUpdate({ stageNumber: 2, status: 'FAILED', output: 'boom' }))
        expect(failed.run).toMatchObject({ status: 'FAILED', error: 'boom' })
        const again = await api.stageOk(id, makeStageUpdate({ stageNumber: 2, status: 'FAILED', output: 'other boom' }))
        expect(again).toMatchObject({ outcome: 'conflict', stage: { output: 'boom' }, run: { status: 'FAILED', error: 'boom' } })

        const logged = warningsOf(id, 'another output')
        expect(logged).toHaveLength(1)
        expect(logged[0]?.message).toContain('stage 1 is already COMPLETED with another output; the stored output stays')
        expect(logged[0]?.details).toMatchObject({ runId: id, stageNumber: 1, outcome: 'conflict' })
      },
      { logger },
    )
  })
}
