/**
 * Fuzzes the handlers on real PostgreSQL (PrismaStore; set DATABASE_URL, else the helper uses
 * PGlite) with generated requests: methods, paths, headers, credentials, signatures, media
 * types and bodies, most of them valid so that runs really progress. A model decides, from the
 * contract alone, what each request must get; only the requests it deems valid are replayed,
 * through the shared operations, on a fresh MemoryStore. The test asserts that no request gets a
 * 5xx, that every status code matches the model's, and that PostgreSQL ends up holding exactly
 * what the model holds.
 *
 * Reproduce a failure with the seed and path fast-check prints:
 *   FUZZ_SEED=<seed> FUZZ_PATH=<path> npx vitest run test/server/fuzz.test.ts
 */
import fc from 'fast-check'
import {
  allowedMethods,
  CancelRun,
  CompleteRun,
  CreateRun,
  Heartbeat,
  DEFAULT_STAGES,
  isRunId,
  MAX_REQUEST_TARGET_LENGTH,
  matchRoute,
  type RouteName,
  stageUpdateSchemaFor,
  StageUpdate,
} from 'pipeline-status-sdk'
import {
  createPipelineStatusHandlers,
  createPrismaStore,
  MemoryStore,
  type PipelineStatusHandlers,
  type PrismaStore,
  type RunSnapshot,
  signWebhook,
  webhookRoute,
} from 'pipeline-status-sdk/server'
import { parseStageNumberParam } from '../../src/contract/output-chunks.js'
import { parseRunListQuery } from '../../src/contract/run-list-query.js'
import { applyStageUpdate, cancelRun, completeRun, createRun, recordHeartbeat } from '../../src/core/operations.js'
import { webhookMessageIdPrefix } from '../../src/signing/webhook-signature.js'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestDatabase, type TestDatabase } from '../setup/test-database.js'

const SEED = Number(process.env['FUZZ_SEED'] ?? 20251025)
const PATH = process.env['FUZZ_PATH']
const NUM_RUNS = Number(process.env['FUZZ_RUNS'] ?? 60)
const REQUESTS_PER_RUN = 100
const MAX_BODY_BYTES = 4096
const NOW = new Date('2026-01-01T00:00:00.000Z')
const NOW_SECONDS = NOW.getTime() / 1000
const SECRET = 'fuzz-secret-51c0'
const SIGNING_SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'
const BASE = '/api/pipeline'
const POOL = 4

let db: TestDatabase
let handlers: PipelineStatusHandlers
let store: PrismaStore

beforeAll(async () => {
  db = await createTestDatabase()
  store = createPrismaStore({ prisma: db.prisma })
  handlers = createPipelineStatusHandlers({
    store,
    secret: SECRET,
    signing: { secret: SIGNING_SECRET },
    maxBodyBytes: MAX_BODY_BYTES,
    clock: () => NOW,
    logger: { warn: () => {}, error: (message, details) => console.error(message, details) },
  })
})
afterAll(() => db?.close())

// ---- what is generated ------------------------------------------------------------------

type Target = { kind: 'pool'; index: number } | { kind: 'unknown' } | { kind: 'raw'; path: string }
type Route = 'stage-update' | 'status' | 'complete' | 'runs' | 'heartbeat' | 'cancel'
type Auth = 'secret' | 'wrong' | 'none' | 'signed' | 'badSignature' | 'staleSignature'
type Body =
  | { kind: 'none' }
  | { kind: 'json'; value: unknown }
  | { kind: 'text'; text: string }
  | { kind: 'bytes'; bytes: number[] }
  | { kind: 'big'; size: number }

interface FuzzRequest {
  method: string
  target: Target
  route: Route
  auth: Auth
  contentType: string | null
  contentLength: 'auto' | 'huge' | 'garbage'
  body: Body
  extraHeaders: Record<string, string>
}

const weighted = <T>(...pairs: Array<[number, fc.Arbitrary<T>]>) =>
  fc.oneof(...pairs.map(([weight, arbitrary]) => ({ weight, arbitrary })))

const nasty = fc.constantFrom('', 'x'.repeat(201), 'nul\u0000byte', 'lone\ud800', 'low\udc00', '😀 ok', ' ', 'Input Processing')
const text = weighted<string>([8, fc.string({ unit: 'binary', maxLength: 40 })], [1, nasty])
const timestamp = weighted<unknown>(
  [16, fc.date({ min: new Date('2000-01-01'), max: new Date('2030-01-01'), noInvalidDate: true }).map((d) => d.toISOString())],
  [
    2,
    fc.constantFrom(
      '2025-10-25T14:03:11.123456Z',
      '2025-10-25T14:03:11',
      '2025-10-25T14:03:11+02:00',
      '2025-10-25T14:03:11.123456789-08:00',
      '0001-01-01T00:00:00Z',
      '0001-01-01T00:00:00+01:00',
      '9999-12-31T23:59:59.999999Z',
      '9999-12-31T23:59:59-01:00',
      '2025-10-25T14:03',
      '2025-10-25T14:03Z',
      '2016-12-31T23:59:60Z',
      'yesterday',
      '2025-13-01T00:00:00Z',
      '2025-02-30T00:00:00Z',
    ),
  ],
  [3, fc.constant(null)],
  [1, fc.integer()],
)

const stageBody = fc.record(
  {
    stageNumber: weighted<unknown>([10, fc.integer({ min: 1, max: 5 })], [1, fc.oneof(fc.integer({ min: -1, max: 7 }), fc.double(), fc.constantFrom('2', null))]),
    stageName: weighted<unknown>([16, fc.constantFrom(...DEFAULT_STAGES.map((s) => s.name))], [3, text], [1, fc.integer()]),
    status: weighted<unknown>([10, fc.constantFrom('PROCESSING', 'COMPLETED', 'FAILED', 'CANCELLED')], [1, fc.constantFrom('PENDING', 'done', 1, null)]),
    output: weighted<unknown>([8, text], [4, fc.json({ maxDepth: 2 })], [2, fc.constant(null)], [1, fc.integer()]),
    completedAt: timestamp,
    progress: weighted<unknown>([6, fc.constant(undefined)], [3, progress()], [1, fc.jsonValue({ maxDepth: 1 })]),
    extra: fc.jsonValue({ maxDepth: 1 }),
  },
  { requiredKeys: ['stageNumber', 'stageName', 'status'] },
)

/** Progress, mostly valid; seq from a small range so that older, equal and newer ones meet. */
function progress(): fc.Arbitrary<unknown> {
  return fc.record(
    {
      seq: weighted<unknown>([10, fc.nat(6)], [1, fc.constantFrom(-1, 1.5, '2', null)]),
      current: weighted<unknown>([4, fc.nat(10)], [1, fc.constantFrom(-1, 'x')]),
      total: weighted<unknown>([4, fc.nat(10)], [1, fc.constant(Number.MAX_VALUE)]),
      percent: weighted<unknown>([4, fc.double({ min: 0, max: 100, noNaN: true })], [1, fc.constantFrom(-0.5, 100.5, 'half')]),
      message: weighted<unknown>([4, text], [1, fc.constant('m'.repeat(501))]),
    },
    { requiredKeys: [] },
  )
}

const heartbeatBody = weighted<unknown>(
  [2, fc.constant(undefined)],
  [
    8,
    fc.record(
      {
        stageNumber: weighted<unknown>([10, fc.integer({ min: 1, max: 5 })], [1, fc.constantFrom(0, 6, '1', null)]),
        progress: progress(),
        intervalMs: weighted<unknown>([6, fc.integer({ min: 1000, max: 60_000 })], [1, fc.constantFrom(999, 3_600_001, 1.5)]),
      },
      { requiredKeys: [] },
    ),
  ],
)

const cancelBody = weighted<unknown>([6, fc.record({ reason: text }, { requiredKeys: [] })], [1, fc.constantFrom({ reason: 1 }, [], 'stop')])

const completeBody = fc.record(
  {
    status: weighted<unknown>([10, fc.constantFrom('COMPLETED', 'FAILED', 'CANCELLED')], [1, fc.constantFrom('PROCESSING', 'ok', null)]),
    completedAt: timestamp,
    duration: weighted<unknown>([4, fc.double({ min: 0, max: 1e6, noNaN: true })], [1, fc.constantFrom(-1, '10')]),
    error: weighted<unknown>([3, text], [1, fc.constant(null)], [1, fc.integer()]),
    opportunities: fc.jsonValue({ maxDepth: 2 }),
  },
  { requiredKeys: ['status'] },
)

/** Mostly complete bodies; now and then one required field is missing. */
const dropOne = (arbitrary: fc.Arbitrary<Record<string, unknown>>, keys: string[]) =>
  weighted<Record<string, unknown>>(
    [10, arbitrary],
    [1, fc.tuple(arbitrary, fc.constantFrom(...keys)).map(([body, key]) => Object.fromEntries(Object.entries(body).filter(([k]) => k !== key)))],
  )

const createBody = (poolIds: fc.Arbitrary<string>) =>
  weighted<unknown>(
    [6, poolIds.map((id) => ({ id }))],
    [1, fc.constant({})],
    [1, fc.record({ id: weighted<unknown>([3, fc.string({ maxLength: 12 })], [1, fc.integer()], [1, nasty], [1, fc.constantFrom('.', '..', '...', 'a/b')]) })],
  )

const rawPath = fc.oneof(
  fc.constantFrom(
    BASE,
    `${BASE}/`,
    `${BASE}/runs/`,
    `${BASE}//status`,
    `${BASE}/%E0%A4%A/status`,
    `${BASE}/%00/status`,
    `${BASE}/%ED%A0%80/complete`,
    `${BASE}/a/b/c`,
    '/other',
    `${BASE}x/runs`,
    `${BASE}/runs?x=1`,
    `${BASE}/a%20b/status`,
    `${BASE}/..a/status`,
    `${BASE}/${'x'.repeat(129)}/complete`,
    `${BASE}/${'x'.repeat(8200)}/status`,
    `${BASE}/runs?pad=${'x'.repeat(8200)}`,
    // NUL and a lone surrogate's bytes in query and path parameters: 4xx, never a 500 from PostgreSQL.
    `${BASE}/runs?pipeline=%00`,
    `${BASE}/runs?pipeline=p%00`,
    `${BASE}/runs?tag=%00`,
    `${BASE}/runs?cursor=%00`,
    `${BASE}/runs?tag=%ED%A0%80`,
    `${BASE}/runs?pipeline=%ED%A0%80`,
    `${BASE}/%00/stages/1/output`,
    `${BASE}/run-x/stages/%00/output`,
    `${BASE}/run-x/stages/1%00/output`,
    `${BASE}/run-x/stages/%ED%A0%80/output`,
    `${BASE}/dashboard/%00`,
    `${BASE}/dashboard/app%00.js`,
    `/other/${'x'.repeat(8200)}`,
  ),
  fc.webPath().map((path) => `${BASE}${path}`),
)

/** One request; `slot` picks the pool run, so the same few runs are hit again and again. */
const fuzzRequest: fc.Arbitrary<FuzzRequest> = fc
  .record({
    route: fc.constantFrom<Route>('stage-update', 'stage-update', 'stage-update', 'complete', 'status', 'runs', 'heartbeat', 'heartbeat', 'cancel'),
    target: weighted<Target>(
      [12, fc.nat(POOL - 1).map((index) => ({ kind: 'pool' as const, index }))],
      [1, fc.constant({ kind: 'unknown' as const })],
      [1, rawPath.map((path) => ({ kind: 'raw' as const, path }))],
    ),
    method: weighted<string | undefined>([12, fc.constant(undefined)], [1, fc.constantFrom('GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'PROPFIND')]),
    auth: weighted<Auth>([12, fc.constant('secret')], [1, fc.constantFrom<Auth>('wrong', 'none', 'badSignature', 'staleSignature')], [3, fc.constant('signed')]),
    contentType: weighted<string | null>(
      [12, fc.constant('application/json')],
      [1, fc.constantFrom('application/json; charset=utf-8', 'text/plain', 'application/vnd.run+json', 'APPLICATION/JSON', 'application/jsonx', null)],
    ),
    contentLength: weighted<FuzzRequest['contentLength']>([20, fc.constant('auto')], [1, fc.constantFrom('huge', 'garbage')]),
    bodyVariant: weighted<'typed' | 'json' | 'text' | 'bytes' | 'big' | 'none'>(
      [14, fc.constant('typed')],
      [1, fc.constantFrom('json', 'text', 'bytes', 'big', 'none')],
    ),
    typed: fc.tuple(
      dropOne(stageBody, ['stageNumber', 'stageName', 'status']),
      dropOne(completeBody, ['status']),
      createBody(fc.nat(POOL - 1).map(String)),
      heartbeatBody,
      cancelBody,
    ),
    anyJson: fc.jsonValue({ maxDepth: 2 }),
    anyText: fc.string({ unit: 'binary', maxLength: 30 }),
    bytes: fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 20 }),
    bigSize: fc.integer({ min: MAX_BODY_BYTES - 200, max: MAX_BODY_BYTES + 2000 }),
    extraHeaders: weighted<Record<string, string>>(
      [
        12,
        fc.dictionary(
          fc.constantFrom('Idempotency-Key', 'X-Forwarded-For', 'User-Agent', 'Accept', 'X-Request-Id'),
          fc.string({ unit: 'grapheme-ascii', maxLength: 20 }),
          { maxKeys: 2 },
        ),
      ],
      // A plain body labelled with a coding: identity changes nothing, the others are refused.
      [1, fc.constantFrom('identity', 'br', 'compress', 'zstd').map((coding) => ({ 'Content-Encoding': coding }))],
    ),
  })
  .map((r): FuzzRequest => {
    const [stage, complete, create, heartbeat, cancel] = r.typed
    const typedValue = { 'stage-update': stage, complete, runs: create, heartbeat, cancel, status: undefined }[r.route]
    const body: Body =
      r.bodyVariant === 'typed'
        ? typedValue === undefined
          ? { kind: 'none' }
          : { kind: 'json', value: typedValue }
        : r.bodyVariant === 'json'
          ? { kind: 'json', value: r.anyJson }
          : r.bodyVariant === 'text'
            ? { kind: 'text', text: r.anyText }
            : r.bodyVariant === 'bytes'
              ? { kind: 'bytes', bytes: r.bytes }
              : r.bodyVariant === 'big'
                ? { kind: 'big', size: r.bigSize }
                : { kind: 'none' }
    return {
      method: r.method ?? (r.route === 'status' ? 'GET' : 'POST'),
      target: r.target,
      route: r.route,
      auth: r.auth,
      contentType: r.contentType,
      contentLength: r.contentLength,
      body,
      extraHeaders: r.extraHeaders,
    }
  })

// ---- turning a generated request into a Request -----------------------------------------

interface Built {
  request: Request
  pathname: string
  method: string
  headers: Headers
  bytes: Uint8Array
  declaredTooLarge: boolean
  hasBody: boolean
  signed: boolean
  signatureValid: boolean
  secretValid: boolean
  describe: string
}

const encoder = new TextEncoder()

async function build(spec: FuzzRequest, poolIds: string[]): Promise<Built> {
  const runId = spec.target.kind === 'pool' ? poolIds[spec.target.index]! : `missing-${poolIds[0]}`
  const path =
    spec.target.kind === 'raw' ? spec.target.path : spec.route === 'runs' ? `${BASE}/runs` : `${BASE}/${encodeURIComponent(runId)}/${spec.route}`
  let bytes: Uint8Array<ArrayBuffer> = new Uint8Array(0)
  if (spec.method !== 'GET' && spec.method !== 'HEAD') {
    const body = spec.body
    if (body.kind === 'json') {
      // Create bodies name pool runs by index; substitute this iteration's id.
      const value =
        spec.route === 'runs' && isRecord(body.value) && typeof body.value['id'] === 'string' && /^\d$/.test(body.value['id'])
          ? { id: poolIds[Number(body.value['id'])] }
          : body.value
      bytes = encoder.encode(JSON.stringify(value) ?? '')
    } else if (body.kind === 'text') bytes = encoder.encode(body.text)
    else if (body.kind === 'bytes') bytes = new Uint8Array(body.bytes)
    else if (body.kind === 'big') {
      bytes = encoder.encode(JSON.stringify({ stageNumber: 1, stageName: 'Input Processing', status: 'PROCESSING', output: 'x'.repeat(body.size) }))
    }
  }

  const headers = new Headers(spec.extraHeaders)
  if (spec.contentType !== null) headers.set('Content-Type', spec.contentType)
  if (spec.contentLength === 'huge') headers.set('Content-Length', '99999999')
  if (spec.contentLength === 'garbage') headers.set('Content-Length', 'abc')
  if (spec.auth === 'secret') headers.set('X-Webhook-Secret', SECRET)
  if (spec.auth === 'wrong') headers.set('X-Webhook-Secret', `${SECRET}-wrong`)
  const signed = spec.auth === 'signed' || spec.auth === 'badSignature' || spec.auth === 'staleSignature'
  let idNamesRoute = true
  if (signed) {
    // Route-bound, as the scheme asks (docs/security.md), for whatever route the path names.
    const match = matchRoute(new URL(`http://fuzz.test${path}`).pathname, BASE)
    // An output chunk's route also names its stage: signed over its decoded path, as the client signs.
    const named = !match ? 'unknown' : match.route === 'stageOutput' ? decodeURIComponent(new URL(`http://fuzz.test${path}`).pathname.slice(BASE.length + 1)) : webhookRoute(match.route, 'runId' in match ? match.runId : undefined)
    // A header carries printable ASCII only; the contract's run ids always are (raw paths may not be).
    const route = /^[\x21-\x7e]+$/.test(named) ? named : 'unknown'
    idNamesRoute = route === named
    const id = `${webhookMessageIdPrefix(spec.method, route)}${crypto.randomUUID()}`
    const timestamp = spec.auth === 'staleSignature' ? NOW_SECONDS - 1000 : NOW_SECONDS
    const signature = spec.auth === 'badSignature' ? 'v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=' : await signWebhook({ secret: SIGNING_SECRET, id, timestamp, body: bytes })
    headers.set('webhook-id', id)
    headers.set('webhook-timestamp', String(timestamp))
    headers.set('webhook-signature', signature)
  }
  const hasBody = spec.method !== 'GET' && spec.method !== 'HEAD' && spec.body.kind !== 'none'
  const request = new Request(`http://fuzz.test${path}`, {
    method: spec.method,
    headers,
    ...(hasBody ? { body: bytes } : {}),
  })
  return {
    request,
    pathname: new URL(request.url).pathname,
    method: request.method,
    headers: request.headers,
    bytes: hasBody ? bytes : new Uint8Array(0),
    declaredTooLarge: spec.contentLength === 'huge',
    hasBody,
    signed,
    signatureValid: spec.auth === 'signed' && idNamesRoute,
    secretValid: spec.auth === 'secret',
    describe: `${request.method} ${path} auth=${spec.auth} type=${spec.contentType} length=${spec.contentLength} body=${new TextDecoder().decode(bytes.slice(0, 300))}`,
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

// ---- the model ----------------------------------------------------------------------------

// `stageNumber` is checked against the run's own catalogue once the run is read (a 400 after the 404).
const stageSchema = StageUpdate
const heartbeatSchema = Heartbeat

/** Text PostgreSQL stores unchanged: no NUL, well-formed UTF-16 (encodeURIComponent throws on lone surrogates). */
function storable(value: unknown): boolean {
  if (typeof value !== 'string') return true
  if (value.includes('\u0000')) return false
  try {
    encodeURIComponent(value)
    return true
  } catch {
    return false
  }
}

/** Whether a `Content-Encoding` names a coding other than identity, gzip or deflate. */
function codingRefused(headers: Headers): boolean {
  const coding = headers.get('content-encoding')?.trim().toLowerCase()
  return coding !== undefined && !['', 'identity', 'gzip', 'x-gzip', 'deflate'].includes(coding)
}

function isJsonType(contentType: string | null): boolean {
  const essence = contentType?.split(';')[0]?.trim().toLowerCase()
  return essence !== undefined && /^application\/([^/+]+\+)?json$/.test(essence)
}

/** A read's refusal (`GET /status`, `GET /runs`): the secret, or a valid signature; `undefined` when allowed. */
function readRefusal(built: Built): number | undefined {
  if (built.secretValid) return undefined
  if (!built.signed) return 401
  if (built.declaredTooLarge) return 413
  if (built.hasBody && codingRefused(built.headers)) return 415
  return built.signatureValid ? undefined : 401
}

/**
 * The status code the contract gives a request, applying it to the model when it is valid.
 * The order of the checks is the handlers' documented precedence.
 */
async function expected(model: MemoryStore, built: Built): Promise<number> {
  const url = new URL(built.request.url)
  if (url.pathname.length + url.search.length > MAX_REQUEST_TARGET_LENGTH) return 414
  const match = matchRoute(built.pathname, BASE)
  if (!match) return 404
  // POST /runs and GET /runs (the list) share the path; the list is a read, authorized as one.
  const methods = match.route === 'createRun' ? ['POST', ...allowedMethods('listRuns')] : allowedMethods(match.route as RouteName)
  if (!methods.includes(built.method)) return 405
  // The list's query is parsed before it is authorized: a parameter it does not know is 400.
  if (match.route === 'createRun' && built.method !== 'POST') return parseRunListQuery(url.searchParams).ok ? (readRefusal(built) ?? 200) : 400
  if ('runId' in match && !isRunId(match.runId)) return 404

  if (match.route === 'status') return readRefusal(built) ?? ((await model.getRun(match.runId)) ? 200 : 404)

  if (!built.signed && !built.secretValid) return 401
  const contentType = built.headers.get('content-type')
  // Run creation and heartbeats may come without a body, and then without a Content-Type.
  const bodyOptional = match.route === 'createRun' || match.route === 'heartbeat'
  const typeless = contentType === null && bodyOptional
  if (!typeless && !isJsonType(contentType)) return 415
  if (built.declaredTooLarge) return 413
  // Only a body is decoded; a request without one ignores the label.
  if (built.hasBody && codingRefused(built.headers)) return 415
  if (built.bytes.length > MAX_BODY_BYTES) return 413
  if (built.signed && !built.signatureValid) return 401
  if (typeless && built.bytes.length > 0) return 415

  let json: unknown
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(built.bytes)
    if (/^[ \t\r\n]*$/.test(text)) {
      if (!bodyOptional) return 400
      json = {}
    } else {
      json = JSON.parse(text)
    }
  } catch {
    return 400
  }

  switch (match.route) {
    case 'runCounts':
    case 'runStats':
      // The generator never builds count or stats requests (GET /runs/counts and /runs/stats have no body to fuzz).
      throw new Error('count and stats requests are not generated')
    case 'events':
    case 'runSetEvents':
      // The generator never builds events requests (an open stream is no single answer).
      throw new Error('events requests are not generated')
    case 'createRun': {
      const parsed = CreateRun.safeParse(json)
      if (!parsed.success) return 400
      // A run of the pipeline `default`, with its catalogue snapshot, as POST /runs makes it.
      return (await createRun(model, { id: parsed.data.id, pipeline: 'default', catalogue: DEFAULT_STAGES, now: NOW })).created ? 201 : 200
    }
    case 'stageUpdate': {
      const parsed = stageSchema.safeParse(json)
      if (!parsed.success || !storable(parsed.data.stageName) || !storable(parsed.data.output) || !storable(parsed.data.progress?.message)) return 400
      const result = await applyStageUpdate(model, match.runId, parsed.data, { stages: DEFAULT_STAGES, now: NOW })
      // A refusal carries a code (409); a final status repeated with another output is a 200 `conflict`.
      if (result.outcome === 'invalid') return 400
      return result.outcome === 'not_found' ? 404 : result.outcome === 'conflict' && 'code' in result ? 409 : 200
    }
    case 'complete': {
      const parsed = CompleteRun.safeParse(json)
      if (!parsed.success || !storable(parsed.data.error)) return 400
      const result = await completeRun(model, match.runId, parsed.data, { now: NOW })
      return result.outcome === 'not_found' ? 404 : result.outcome === 'conflict' ? 409 : 200
    }
    case 'heartbeat': {
      const parsed = heartbeatSchema.safeParse(json)
      if (!parsed.success || !storable(parsed.data.progress?.message)) return 400
      const result = await recordHeartbeat(model, match.runId, parsed.data, { now: NOW })
      return result.outcome === 'not_found' ? 404 : result.outcome === 'invalid' ? 400 : 200
    }
    case 'cancel': {
      const parsed = CancelRun.safeParse(json)
      if (!parsed.success || !storable(parsed.data.reason)) return 400
      const result = await cancelRun(model, match.runId, parsed.data, { now: NOW, stages: DEFAULT_STAGES })
      return result.outcome === 'not_found' ? 404 : result.outcome === 'conflict' ? 409 : 200
    }
    case 'runTags':
    case 'runMetadata':
      // The generator never builds label requests (test/contract/suite/tags-metadata.ts covers them).
      throw new Error('label requests are not generated')
    case 'stageOutput': {
      // Only raw paths reach here: a stage number outside the rule is 400 once the body is read.
      const stageParam = decodeURIComponent(built.pathname.split('/').at(-2) ?? '')
      if (parseStageNumberParam(stageParam) === undefined) return 400
      // The generator builds no valid output chunks (test/contract/suite/stage-output.ts covers them).
      throw new Error('output chunks are not generated')
    }
  }
}

/** A snapshot with dates as strings, for comparison. */
function plain(snapshot: RunSnapshot | null) {
  return snapshot === null ? null : JSON.parse(JSON.stringify(snapshot))
}

// ---- the property -----------------------------------------------------------------------

describe('fuzzing the handlers on PostgreSQL', () => {
  it(`answers ${NUM_RUNS * REQUESTS_PER_RUN} generated requests as the contract model does, never with 5xx`, async () => {
    let iteration = 0
    let sent = 0
    const statuses = new Map<number, number>()

    await fc.assert(
      fc.asyncProperty(fc.array(fuzzRequest, { minLength: REQUESTS_PER_RUN, maxLength: REQUESTS_PER_RUN }), async (requests) => {
        iteration += 1
        const poolIds = Array.from({ length: POOL }, (_, k) => `fz-${SEED}-${iteration}-${k}`)
        // The model starts empty, so must the database: a generated id ("A") may recur in a later iteration.
        await db.prisma.pipelineRun.deleteMany()
        const model = new MemoryStore()
        for (const spec of requests) {
          const built = await build(spec, poolIds)
          const response = await handlers.fetch(built.request)
          const body = await response.text()
          sent += 1
          statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1)
          const want = await expected(model, built)
          expect(response.status, `${built.describe}\n→ ${body}`).toBeLessThan(500)
          expect(response.status, `${built.describe}\n→ ${body}`).toBe(want)
        }
        for (const id of poolIds) {
          expect(plain(await store.getRun(id)), id).toEqual(plain(await model.getRun(id)))
        }
      }),
      { seed: SEED, numRuns: NUM_RUNS, ...(PATH ? { path: PATH } : {}), verbose: 1 },
    )

    console.info(`[fuzz] seed ${SEED}: ${sent} requests, statuses ${JSON.stringify(Object.fromEntries([...statuses].sort()))}`)
    expect(sent).toBeGreaterThanOrEqual(5000)
    // The mix really exercised both accepted and refused requests.
    expect([...statuses.keys()]).toEqual(expect.arrayContaining([200, 201, 400, 401, 404, 405, 409, 413, 414, 415]))
  }, 300_000)
})
