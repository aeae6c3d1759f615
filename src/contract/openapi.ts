import { z } from 'zod'
import { HEADERS, PROBLEM_CONTENT_TYPE } from './headers.js'
import { PACKAGE_VERSION } from './package-info.js'
import { FieldError, Problem, PROBLEM_CODES, PROBLEM_TITLES, ProblemCode } from './problem.js'
import { PipelineRunRecord, StageOutputRecord, UpdateOutcome } from './records.js'
import {
  CONTRACT_ROUTES,
  type ContractRoute,
  type NamedSchema,
  type RequestHeaderName,
  type ResponseHeaderName,
  type RouteAnswer,
} from './route-registry.js'
import { DASHBOARD_ASSET_PATTERN, DEFAULT_BASE_PATH, normalizeBasePath } from './routes.js'
import { RunId } from './run-id.js'
import { FinalStatus, RunStatus, StageStatus, StageUpdateStatus } from './status.js'
import { Timestamp } from './timestamp.js'

/** The OpenAPI version of the document. */
export const OPENAPI_VERSION = '3.1.1'

/** A JSON object of the document. */
type JsonObject = Record<string, unknown>

/**
 * An OpenAPI 3.1 document (the members this package writes; see the
 * [OpenAPI Specification](https://spec.openapis.org/oas/v3.1.1)).
 */
export interface OpenApiDocument {
  /** The OpenAPI version, `3.1.1`. */
  openapi: string
  /** Title, description and version (the package's version) of the contract. */
  info: { title: string; version: string; [key: string]: unknown }
  /** One server: the base path the routes are served under, relative to the document's host. */
  servers: { url: string; description?: string }[]
  /** The routes, by path relative to the server URL, then by lower-case method. */
  paths: Record<string, Record<string, unknown>>
  /** Schemas, parameters, headers, responses and security schemes the operations refer to. */
  components: Record<string, Record<string, unknown>>
  /** Other members, e.g. `jsonSchemaDialect`. */
  [key: string]: unknown
}

/** Options of {@link createOpenApiDocument}. */
export interface OpenApiDocumentOptions {
  /**
   * The base path the routes are served under; it becomes the document's server URL, relative
   * to the host the document is read from (`/api/pipeline` → `https://app.example.com/api/pipeline`).
   * @default '/api/pipeline'
   */
  basePath?: string | undefined
  /**
   * Describe JSON objects as this version sends them: no members beyond the documented ones
   * (`additionalProperties: false`, zod's output types), for tests that check a server sends
   * nothing undocumented. The default leaves response objects open, as zod's input types, so
   * clients generated from the document accept members that a later version adds.
   * @default false
   */
  strict?: boolean | undefined
}

/**
 * Schemas that get their own component even though no route names them directly, so that
 * every answer refers to them instead of repeating them.
 */
const SHARED_SCHEMAS: readonly NamedSchema[] = Object.entries({
  RunId,
  Timestamp,
  RunStatus,
  StageStatus,
  StageUpdateStatus,
  FinalStatus,
  UpdateOutcome,
  PipelineRunRecord,
  StageOutputRecord,
  ProblemCode,
  FieldError,
  Problem,
}).map(([name, schema]) => ({ name, schema }))

const schemaRef = (name: string) => ({ $ref: `#/components/schemas/${name}` })
const ref = (kind: string, name: string) => ({ $ref: `#/components/${kind}/${name}` })

/** Response headers, as `components.headers`. */
const RESPONSE_HEADERS: Record<ResponseHeaderName, JsonObject> = {
  ETag: {
    description: 'The run version, quoted (`"3"`): it grows by one with every applied change to the run or its stages (RFC 9110 §8.8.3).',
    schema: { type: 'string' },
  },
  'Cache-Control': {
    description: '`no-store`, except on the status route: `private, no-cache` with an `ETag`.',
    schema: { type: 'string' },
  },
  'Retry-After': {
    description: 'Seconds to wait before retrying (RFC 9110 §10.2.3).',
    schema: { type: 'string', pattern: '^\\d+$' },
  },
  Allow: {
    description: "The route's methods, comma-separated: `GET, HEAD` or `POST`.",
    schema: { type: 'string' },
  },
  'Content-Security-Policy': {
    description: "The dashboard's policy: `default-src 'self'; script-src 'self'; frame-ancestors 'none'` (no inline script, no other origin, no framing).",
    schema: { type: 'string' },
  },
  'X-Content-Type-Options': {
    description: '`nosniff`: the browser takes the `Content-Type` as sent.',
    schema: { type: 'string', const: 'nosniff' },
  },
}

/** Request headers beyond authentication, as `components.parameters`. */
const REQUEST_HEADERS: Record<RequestHeaderName, JsonObject> = {
  'Idempotency-Key': {
    name: HEADERS.idempotencyKey,
    in: 'header',
    required: false,
    description:
      "One key per logical update, equal across its retries (the SDK's clients send a UUID). For logs and proxies: the server recognises duplicates by the stored state, and a signed request's `webhook-id` ends with it.",
    schema: { type: 'string' },
  },
  'If-None-Match': {
    name: 'If-None-Match',
    in: 'header',
    required: false,
    description: 'An `ETag` from an earlier answer (or a list, `W/` allowed, or `*`): when it matches, the answer is 304 (RFC 9110 §13.1.2).',
    schema: { type: 'string' },
  },
  'Last-Event-ID': {
    name: 'Last-Event-ID',
    in: 'header',
    required: false,
    description: 'The `id:` (run version) of the last event received, on a reconnect: the stream starts with a fresh snapshot.',
    schema: { type: 'string' },
  },
}

const PARAMETER_NAMES: Record<RequestHeaderName, string> = {
  'Idempotency-Key': 'IdempotencyKey',
  'If-None-Match': 'IfNoneMatch',
  'Last-Event-ID': 'LastEventId',
}
const HEADER_NAMES: Record<ResponseHeaderName, string> = {
  ETag: 'ETag',
  'Cache-Control': 'CacheControl',
  'Retry-After': 'RetryAfter',
  Allow: 'Allow',
  'Content-Security-Policy': 'ContentSecurityPolicy',
  'X-Content-Type-Options': 'XContentTypeOptions',
}

const SIGNATURE_SCHEME =
  'Standard Webhooks (https://www.standardwebhooks.com): `webhook-signature` is `v1,<base64 HMAC-SHA256>` over `<webhook-id>.<webhook-timestamp>.<raw body>` (the empty body for a `GET`), under the base64-decoded part of a `whsec_` secret (or the UTF-8 bytes of a plain one); space-separated for several. `webhook-id` names the request: `<METHOD> <route> <unique>`, the route being the path after the base path with the run id as it is (`run_1/stage-update`), `<unique>` the same for every attempt of one message (the update\'s `Idempotency-Key`). `webhook-timestamp` is Unix seconds, within the tolerance (300 s by default). A replayed id with another body is refused. See docs/security.md.'

/**
 * Builds the OpenAPI 3.1 document of the contract from the route registry and the zod
 * schemas the handlers validate with: every route, body, answer, problem code (grouped by status,
 * `application/problem+json`) and header, and the security schemes. The live status stream is
 * `text/event-stream`; OpenAPI 3.1 cannot describe its events, so its media type names each
 * event's `data:` schema in `x-sse-events`. The handlers serve it at `GET {basePath}/openapi.json`,
 * the package ships it as `pipeline-status-sdk/openapi.json`, and `pipeline-status openapi` prints it.
 *
 * @example
 * ```ts
 * import { createOpenApiDocument } from 'pipeline-status-sdk'
 * const document = createOpenApiDocument({ basePath: '/api/pipeline' })
 * document.servers[0]?.url // '/api/pipeline'
 * ```
 */
export function createOpenApiDocument(options: OpenApiDocumentOptions = {}): OpenApiDocument {
  const basePath = normalizeBasePath(options.basePath ?? DEFAULT_BASE_PATH)
  const routes: Record<string, ContractRoute> = CONTRACT_ROUTES
  const named: NamedSchema[] = [...SHARED_SCHEMAS]
  for (const route of Object.values(routes)) {
    if (route.body) named.push(route.body.schema)
    for (const answer of Object.values(route.answers)) {
      if (answer.json) named.push(answer.json)
      for (const event of Object.values(answer.events ?? {})) named.push(event)
    }
  }

  const paths: Record<string, Record<string, unknown>> = {}
  for (const [name, route] of Object.entries(routes)) {
    const item = (paths[route.path] ??= {})
    item[route.method.toLowerCase()] = operation(name, route, false)
    // A GET route answers HEAD like GET, without the body (RFC 9110 §9.3.2).
    if (route.method === 'GET') item['head'] = operation(name, route, true)
    if ('preflight' in route && route.preflight) item['options'] = preflightOperation(name)
  }

  return {
    openapi: OPENAPI_VERSION,
    info: {
      title: 'Pipeline status contract',
      summary: 'A pipeline runner reports stage status over HTTP to a web app that stores it.',
      description:
        'Generated from the zod schemas of pipeline-status-sdk, which its handlers, mock and clients validate with. Errors are `application/problem+json` (RFC 9457) with a stable `code`. A path that is none of these routes is answered `404 route_not_found` (`components.responses.RouteNotFound`); another method on a route `405 method_not_allowed` with `Allow` (`components.responses.MethodNotAllowed`); a request target (path and query) over 8192 characters `414 uri_too_long` (`components.responses.UriTooLong`). The app\'s `authorize` hook may refuse reads with problems of its own.',
      version: PACKAGE_VERSION,
      license: { name: 'MIT', identifier: 'MIT' },
    },
    servers: [{ url: basePath === '' ? '/' : basePath, description: 'The base path the routes are served under.' }],
    paths,
    components: {
      schemas: componentSchemas(named, options.strict === true ? 'output' : 'input'),
      parameters: {
        RunId: {
          name: 'runId',
          in: 'path',
          required: true,
          description: 'The run id (`PipelineRun.id`). A path segment carries it unchanged; an id outside the rule is an unknown run (404).',
          schema: schemaRef('RunId'),
        },
        StageNumber: {
          name: 'stageNumber',
          in: 'path',
          required: true,
          description: "The stage's number in the run's catalogue: a whole number from 1, without sign or leading zero (else 400 naming `stageNumber`).",
          schema: { type: 'string', pattern: '^[1-9][0-9]{0,8}$' },
        },
        DashboardAsset: {
          name: 'asset',
          in: 'path',
          required: true,
          description: "A file of the dashboard, as the page names it (`dashboard.js`, `dashboard.css`); another name is 404 `route_not_found`.",
          schema: { type: 'string', pattern: DASHBOARD_ASSET_PATTERN.source },
        },
        WebhookTimestamp: {
          name: HEADERS.webhookTimestamp,
          in: 'header',
          required: false,
          description: 'Standard Webhooks: Unix time in seconds when this attempt was signed. With `webhook-id` and `webhook-signature`.',
          schema: { type: 'string', pattern: '^\\d+$' },
        },
        ...Object.fromEntries(Object.entries(REQUEST_HEADERS).map(([header, parameter]) => [PARAMETER_NAMES[header as RequestHeaderName], parameter])),
      },
      headers: Object.fromEntries(Object.entries(RESPONSE_HEADERS).map(([header, value]) => [HEADER_NAMES[header as ResponseHeaderName], value])),
      responses: {
        RouteNotFound: problemResponse(404, ['route_not_found']),
        MethodNotAllowed: problemResponse(405, ['method_not_allowed'], [{ name: 'Allow', required: true }]),
        UriTooLong: problemResponse(414, ['uri_too_long']),
      },
      securitySchemes: {
        webhookSecret: {
          type: 'apiKey',
          in: 'header',
          name: HEADERS.webhookSecret,
          description:
            'The shared secret (`WEBHOOK_SECRET`), compared in constant time; the server may accept several at once, for rotation. Required on writes, accepted on reads.',
        },
        webhookSignature: { type: 'apiKey', in: 'header', name: HEADERS.webhookSignature, description: SIGNATURE_SCHEME },
        runReadToken: {
          type: 'http',
          scheme: 'bearer',
          bearerFormat: 'psrt1.<expires>.<signature> or psrt1.tag.<tag>.<expires>.<signature>',
          description:
            "A read token (`createRunReadToken`), when the handlers are configured with `readTokens`, until it expires: a run token reads ONE run; a tag token reads each run whose stored tags hold its tag and lists exactly those runs (a run it does not cover answers 401 `invalid_read_token`, as an unknown run does). A bearer token without the `psrt1.` prefix goes to the app's `authorize` hook instead.",
        },
      },
    },
  }
}

/** The `components.schemas` of the named zod schemas, with `$ref`s between them. */
function componentSchemas(named: readonly NamedSchema[], io: 'input' | 'output'): Record<string, unknown> {
  const registry = z.registry<{ id: string }>()
  const names = new Map<z.ZodType, string>()
  const aliases: Record<string, unknown> = {}
  const taken = new Map<string, z.ZodType>()
  for (const { name, schema } of named) {
    const other = taken.get(name)
    if (other !== undefined && other !== schema) throw new TypeError(`Two schemas are named ${name} in the route registry`)
    taken.set(name, schema)
    const first = names.get(schema)
    if (first === undefined) {
      names.set(schema, name)
      registry.add(schema, { id: name })
    } else if (first !== name) {
      // One zod schema under two names (RunSnapshotEvent is RunStatusResponse): the second refers to the first.
      aliases[name] = schemaRef(first)
    }
  }
  const { schemas } = z.toJSONSchema(registry, { target: 'draft-2020-12', io, unrepresentable: 'throw', uri: (id) => `#/components/schemas/${id}` })
  const result: Record<string, unknown> = {}
  for (const [name, schema] of Object.entries(schemas)) {
    // `$schema` is the document's dialect already; `$id` would make each `$ref` inside resolve against it.
    const { $schema: _dialect, $id: _id, ...rest } = schema as JsonObject
    result[name] = rest
  }
  return { ...result, ...aliases }
}

function operation(name: string, route: ContractRoute, head: boolean): JsonObject {
  const parameters: unknown[] = []
  for (const [, param] of route.path.matchAll(/\{([^}]+)\}/g)) parameters.push(ref('parameters', pathParameterName(param as string)))
  if (route.access !== 'public') {
    parameters.push({
      name: HEADERS.webhookId,
      in: 'header',
      required: false,
      description: `Standard Webhooks message id, bound to this request: \`${webhookIdExample(route, head)}\`. With \`webhook-timestamp\` and \`webhook-signature\`.`,
      schema: { type: 'string', pattern: webhookIdPattern(route, head) },
    })
    parameters.push(ref('parameters', 'WebhookTimestamp'))
  }
  for (const header of route.requestHeaders ?? []) parameters.push(ref('parameters', PARAMETER_NAMES[header]))
  for (const query of route.query ?? []) {
    parameters.push({ name: query.name, in: 'query', required: query.required ?? false, description: query.description, schema: query.schema, ...(query.repeated && { explode: true, style: 'form' }) })
  }

  const responses: Record<string, unknown> = {}
  for (const [status, answer] of Object.entries(route.answers)) responses[status] = successResponse(answer, head)
  const byStatus = new Map<number, ProblemCode[]>()
  for (const code of new Set(route.problems)) {
    const status = PROBLEM_CODES[code]
    byStatus.set(status, [...(byStatus.get(status) ?? []), code])
  }
  for (const [status, codes] of [...byStatus].sort(([a], [b]) => a - b)) {
    responses[String(status)] = problemResponse(status, codes, status === 503 ? [{ name: 'Retry-After', required: true }] : [], head)
  }

  return {
    operationId: head ? `${name}Head` : name,
    summary: head ? `${route.summary} (headers only)` : route.summary,
    description: head ? `Like \`GET\`, without the body (RFC 9110 §9.3.2). ${route.description}` : route.description,
    security: SECURITY[route.access],
    parameters,
    ...(route.body && !head
      ? {
          requestBody: {
            required: route.body.required,
            content: { 'application/json': { schema: schemaRef(route.body.schema.name) } },
          },
        }
      : {}),
    responses,
  }
}

/** The CORS preflight of a read route (the Fetch standard's CORS protocol). */
function preflightOperation(name: string): JsonObject {
  const grant = (description: string) => ({ description, schema: { type: 'string' } })
  return {
    operationId: `${name}Preflight`,
    summary: 'CORS preflight',
    description:
      "Answered only when the handlers' `cors` option is set: 204, with the grant (`Access-Control-Allow-*`) when the `Origin` is one of the allowed origins and without it otherwise. Without the option, `OPTIONS` is 405 like any other method.",
    security: [],
    responses: {
      '204': {
        description: 'The preflight answer; the grant headers only for an allowed origin.',
        headers: {
          'Access-Control-Allow-Origin': grant('The allowed origin, echoed.'),
          'Access-Control-Allow-Methods': grant('`GET, HEAD`.'),
          'Access-Control-Allow-Headers': grant('The request headers a subscriber may send.'),
          'Access-Control-Max-Age': grant('How long, in seconds, a browser may cache this answer.'),
          Vary: grant('`Origin`, and the preflight request headers.'),
        },
      },
      '405': ref('responses', 'MethodNotAllowed'),
    },
  }
}

const SECURITY: Record<ContractRoute['access'], unknown[]> = {
  write: [{ webhookSecret: [] }, { webhookSignature: [] }],
  read: [{ webhookSecret: [] }, { webhookSignature: [] }, { runReadToken: [] }],
  public: [],
}

/** The route as signed: `<METHOD> <path after the base path, run id as it is> `. */
function signedRoute(route: ContractRoute, head: boolean): string {
  return `${head ? 'HEAD' : route.method} ${route.path.slice(1)}`
}

/** The `components.parameters` name of each path parameter a route template may hold. */
const PATH_PARAMETERS: Readonly<Record<string, string>> = { runId: 'RunId', stageNumber: 'StageNumber', asset: 'DashboardAsset' }

function pathParameterName(param: string): string {
  const name = PATH_PARAMETERS[param]
  if (name === undefined) throw new TypeError(`The path parameter {${param}} has no component in openapi.ts`)
  return name
}

function webhookIdExample(route: ContractRoute, head: boolean): string {
  return `${signedRoute(route, head).replace(/\{([^}]+)\}/g, (_, param: string) => (param === 'runId' ? 'run_1' : '1'))} <unique>`
}

function webhookIdPattern(route: ContractRoute, head: boolean): string {
  const parts = signedRoute(route, head)
    .split(/\{[^}]+\}/)
    .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
  // A path parameter (a run id: RunId) has no `/` and no space, and something unique must follow.
  return `^${parts.join('[^/ ]+')} .+$`
}

function headersOf(headers: RouteAnswer['headers'] = []): JsonObject | undefined {
  if (headers.length === 0) return undefined
  return Object.fromEntries(
    headers.map(({ name, required }) => [name, required ? { ...RESPONSE_HEADERS[name], required: true } : ref('headers', HEADER_NAMES[name])]),
  )
}

function successResponse(answer: RouteAnswer, head: boolean): JsonObject {
  const headers = headersOf(answer.headers)
  const response: JsonObject = { description: answer.description, ...(headers ? { headers } : {}) }
  if (head || answer.empty) return response
  if (answer.json) response['content'] = { 'application/json': { schema: schemaRef(answer.json.name) } }
  if (answer.openApiDocument) {
    response['content'] = {
      'application/json': { schema: { type: 'object', required: ['openapi', 'info', 'paths'], description: 'An OpenAPI 3.1 document.' } },
    }
  }
  if (answer.page === 'html') response['content'] = { 'text/html': { schema: { type: 'string', description: "The dashboard's page shell: no data, a script and a stylesheet of the same origin." } } }
  if (answer.page === 'asset') {
    const file = { schema: { type: 'string', description: 'A file of the dashboard, shipped in the package.' } }
    response['content'] = { 'text/javascript': file, 'text/css': file }
  }
  if (answer.events) {
    response['content'] = {
      'text/event-stream': {
        schema: {
          type: 'string',
          description:
            'Server-Sent Events (https://html.spec.whatwg.org/multipage/server-sent-events.html): `event:`, `id:` (the run version; `runId:version` on a set stream) and `data:` (JSON) lines per event, a blank line after each; `:` comment lines keep the connection alive. `x-sse-events` maps each event name to the schema of its `data:`.',
        },
        'x-sse-events': Object.fromEntries(Object.entries(answer.events).map(([event, schema]) => [event, schemaRef(schema.name)])),
      },
    }
  }
  return response
}

function problemResponse(
  status: number,
  codes: readonly ProblemCode[],
  extraHeaders: RouteAnswer['headers'] = [],
  head = false,
): JsonObject {
  const headers = headersOf([{ name: 'Cache-Control', required: true }, ...extraHeaders])
  return {
    description: codes.map((code) => `\`${code}\`: ${PROBLEM_TITLES[code]}.`).join(' '),
    headers,
    ...(head
      ? {}
      : {
          content: {
            [PROBLEM_CONTENT_TYPE]: {
              schema: { allOf: [schemaRef('Problem'), { properties: { status: { const: status }, code: { enum: codes } } }] },
            },
          },
        }),
  }
}
