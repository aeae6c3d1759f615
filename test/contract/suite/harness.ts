/**
 * What every contract scenario stands on: the secrets, the target interfaces, requests built and
 * checked against the OpenAPI document, the {@link Api} helper for the routes, and the shared clocks
 * and stage fixtures. The scenarios themselves live one `describe` block per file beside it.
 */
import {
  CancelRunResponse,
  CompleteRunResponse,
  CreateRunResponse,
  HeartbeatResponse,
  Problem,
  PROBLEM_CONTENT_TYPE,
  RunStatusResponse,
  StageUpdateResponse,
} from 'pipeline-status-sdk'
import type { StageCatalogue } from 'pipeline-status-sdk'
import type { AuthorizeInput, AuthorizeResult, RunEndedInput, RunState, Store, WebhookSigningOptions } from 'pipeline-status-sdk/server'
import { Agent, request as httpRequest, type IncomingHttpHeaders } from 'node:http'
import { expect } from 'vitest'
import { makeStageUpdate } from '../../support/fixtures.js'
import { OpenApiAnswerValidator } from '../openapi-answers.js'

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
  authorize?: (input: AuthorizeInput<unknown>) => AuthorizeResult | Promise<AuthorizeResult>
  onRunCompleted?: (tx: unknown, run: RunState, payload: Record<string, unknown>) => Promise<void> | void
  onRunEnded?: (input: RunEndedInput<unknown>) => Promise<void> | void
  maxBodyBytes?: number
  /** The most UTF-8 bytes of one stage attempt's streamed output. */
  maxStreamedOutputBytes?: number
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
  /**
   * Runs put into the target's store through the server API (`Store.insertRun`) before the
   * handlers start: runs with tags, pipelines, statuses and creation instants of the scenario's
   * choosing, which `POST /runs` cannot create yet.
   */
  runs?: readonly RunState[]
  /** The catalogue of the pipeline `default`. */
  stages?: StageCatalogue
  /** Several named pipelines. */
  pipelines?: Record<string, StageCatalogue>
  /**
   * Handlers started with the same key share their store (their runs), so a scenario can restart
   * the server with another configuration. The database targets always share theirs.
   */
  storeKey?: string
  /** Writes to the target's store before the handlers start, as an app with its own Prisma client would. */
  seed?: (store: Store<unknown>) => Promise<void>
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

/** A stage update's JSON padded with spaces to `size` bytes, for the body-limit scenarios. */
export function paddedStageUpdate(size: number): string {
  const json = JSON.stringify(makeStageUpdate())
  return json + ' '.repeat(size - json.length)
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


/**
 * The server's clock while the Python runner payloads' run happened: created at 14:00 on
 * 2025-10-25, their `completedAt` instants (14:03 to 14:10) inside its window.
 */
export const PYTHON_RUN_CLOCK: TargetOptions = { clock: () => new Date('2025-10-25T14:00:00.000Z'), clockSkewToleranceMs: 15 * 60_000 }

/** A server whose runs are created at the first instant of year 1 and take any instant up to year 9999 as sent. */
export const WHOLE_RANGE_CLOCK: TargetOptions = {
  clock: () => new Date('0001-01-01T00:00:00.000Z'),
  clockSkewToleranceMs: Date.parse('9999-12-31T23:59:59.999Z') - Date.parse('0001-01-01T00:00:00.000Z'),
}

/** Stages 1 to 4 COMPLETED, each with its own output: a run one stage short of finishing. */
export const ALL_STAGES_TO_4 = [1, 2, 3, 4].map((n) => makeStageUpdate({ stageNumber: n, status: 'COMPLETED', output: `out ${n}` }))
