/**
 * The request/response plumbing every route shares: one exchange per request, the method check,
 * the path parameters, the CORS wrapper, `HEAD`, the 414, and the mapping of any failure to a
 * problem+json answer with one log line. Routes are written as `route(name, work)`. Internal.
 */
import { HEADERS } from '../../contract/headers.js'
import { isRunId } from '../../contract/run-id.js'
import {
  MAX_REQUEST_TARGET_LENGTH,
  matchPath,
  pathMethods,
  type RouteParams,
  routeMethods,
  routeSpec,
  type ServedRouteName,
} from '../../contract/routes.js'
import { isStoreUnavailableError } from '../../core/store.js'
import { describeDatabaseCause } from '../database-errors.js'
import { type Logger, oneLine } from '../../internal/logger.js'
import type { Cors } from './cors.js'
import { HttpProblemError, isHttpProblemError, problemResponse } from './problem-response.js'
import { runNotFound } from './validate.js'

/** Per-request state: the request, the framework's own request, and what the error path needs. */
export interface Exchange {
  readonly request: Request
  /** The framework's request handed to `authorize` (the Fetch request when there is none). */
  readonly native: unknown
  /** The run the request names, once known (for logs). */
  runId?: string
}

/**
 * One route's answer to one request. `params` holds the path parameters already matched (the
 * dispatch's, or the run id a per-route caller passed); missing ones are read from the path.
 */
export type RouteHandler = (request: Request, params: Readonly<Record<string, string | undefined>>, native: unknown) => Promise<Response>

/** The work of a route once the method is allowed and its parameters are known. */
export type RouteWork<R extends ServedRouteName> = (exchange: Exchange, params: RouteParams<R>) => Promise<Response>

/** What the plumbing needs from the handlers' settings. */
export interface PlumbingSettings {
  readonly logger: Logger
  readonly basePath: string
  readonly retryAfter: string
  readonly cors: Cors | undefined
}

/** The plumbing of one handlers instance. */
export interface Plumbing {
  /** Wraps a route's work: CORS (for preflight routes), the 414, the method, the parameters, errors, `HEAD`. */
  route<R extends ServedRouteName>(name: R, work: RouteWork<R>): RouteHandler
  /** Answers a request with `work`, mapping any failure to its problem answer. */
  respond(request: Request, native: unknown, work: (exchange: Exchange) => Promise<Response>): Promise<Response>
  /** The answer to a failure outside any route's work (logged like the others). */
  errorResponse(error: unknown, exchange: Pick<Exchange, 'request' | 'runId'>): Response
}

/** Builds the plumbing; `errorResponse` logs once per kind where a cause repeats per request. */
export function createPlumbing(settings: PlumbingSettings): Plumbing {
  const { logger, basePath, cors } = settings
  let bodyConsumedLogged = false
  // A database without migrations fails every request alike: its error is logged once.
  const loggedSchemaProblems = new Set<string>()

  async function respond(request: Request, native: unknown, work: (exchange: Exchange) => Promise<Response>): Promise<Response> {
    const exchange: Exchange = { request, native: native ?? request }
    let response: Response
    try {
      assertTargetLength(request)
      response = await work(exchange)
    } catch (error) {
      response = errorResponse(error, exchange)
    }
    return forMethod(request, response)
  }

  /** The answer to a failure, and one log line that says which request failed and why. */
  function errorResponse(error: unknown, exchange: Pick<Exchange, 'request' | 'runId'>): Response {
    const { request, runId } = exchange
    const path = pathOf(request)
    // A decoded run id may hold line breaks; a log line must stay one line.
    const where = `${request.method} ${path}${runId === undefined ? '' : ` (run ${escapeControls(runId)})`}`
    const fields = { method: request.method, path, runId }
    if (isHttpProblemError(error)) {
      const response = error.getResponse()
      const detail = typeof error.extras.detail === 'string' ? error.extras.detail : undefined
      if (error.code === 'body_already_consumed' && !bodyConsumedLogged) {
        bodyConsumedLogged = true
        logger.error(BODY_CONSUMED_HELP, fields)
      }
      const line = `pipeline-status: refused ${where}: ${response.status} ${error.code}${detail ? `: ${detail}` : ''}`
      logger.warn(line, { ...fields, status: response.status, code: error.code, detail })
      return response
    }
    if (isStoreUnavailableError(error)) {
      const retry = { [HEADERS.retryAfter]: settings.retryAfter }
      if (error.code === 'database_not_migrated') {
        // The message names the missing table or column and the command; no secrets, no SQL.
        // Logged once per distinct problem: every request says the same until it is fixed.
        if (!loggedSchemaProblems.has(error.message)) {
          loggedSchemaProblems.add(error.message)
          logger.error(`pipeline-status: ${error.message}`, { ...fields, status: 503, code: 'database_not_migrated' })
        }
        return problemResponse('database_not_migrated', { detail: error.message }, retry)
      }
      if (error.code === 'configuration_error') {
        // Not a 500 with a stack: the message names the cause and the fix (a missing
        // DATABASE_URL, a wrong password). Logged once per distinct problem, like the above.
        if (!loggedSchemaProblems.has(error.message)) {
          loggedSchemaProblems.add(error.message)
          logger.error(`pipeline-status: ${oneLine(error.message)}`, { ...fields, status: 500, code: 'configuration_error' })
        }
        return problemResponse('configuration_error', { detail: 'The server cannot connect to its database as configured; the server log says why' })
      }
      // The driver's cause in one line (code, host and port, message): a stack per request says
      // nothing more while the database is down.
      const cause = unavailableCause(error)
      logger.warn(`pipeline-status: ${where}: 503 database_unavailable: ${cause}`, { ...fields, status: 503, code: 'database_unavailable', cause })
      return problemResponse('database_unavailable', { detail: 'The database cannot be reached right now; retry later' }, retry)
    }
    logger.error(`pipeline-status: ${where}: 500 internal_error`, { ...fields, status: 500, code: 'internal_error', error })
    // Never the error's message: it may hold SQL, connection strings or secrets.
    return problemResponse('internal_error', { detail: 'The request could not be processed' })
  }

  /** The path parameters: those given, else those of the request's own path (which must be this route's). */
  function resolveParams<R extends ServedRouteName>(exchange: Exchange, name: R, given: Readonly<Record<string, string | undefined>>): RouteParams<R> {
    const template = routeSpec(name).path
    const names = [...template.matchAll(/\{([^}]+)\}/g)].map((match) => match[1] as string)
    if (names.length === 0) return {} as RouteParams<R>
    let params: Readonly<Record<string, string | undefined>> = given
    if (names.some((param) => params[param] === undefined || params[param] === '')) {
      const match = matchPath(new URL(exchange.request.url).pathname, basePath)
      if (!match?.routes.includes(name)) {
        throw new HttpProblemError('route_not_found', { detail: names.includes('runId') ? 'No run id in the request path' : 'The request path is not this route' })
      }
      params = match.params
    }
    const runId = params['runId']
    if (runId !== undefined) {
      exchange.runId = runId
      // POST /runs creates no run with such an id, so none has it.
      if (!isRunId(runId)) throw runNotFound()
    }
    return params as RouteParams<R>
  }

  function route<R extends ServedRouteName>(name: R, work: RouteWork<R>): RouteHandler {
    const answer: RouteHandler = (request, params, native) =>
      respond(request, native, async (exchange) => {
        requireMethod(request, name)
        return work(exchange, resolveParams(exchange, name, params))
      })
    if (!cors || routeSpec(name).preflight !== true) return answer
    // The read routes answer the preflight and carry the grant when `cors` allows the origin.
    const methods = routeMethods(name)
    return async (request, params, native) => {
      if (request.method === 'OPTIONS') return cors.preflight(request, methods)
      return cors.apply(request, await answer(request, params, native))
    }
  }

  return { route, respond, errorResponse }
}

/** `connect ECONNREFUSED 127.0.0.1:5432`; a bound's own words first (`No connection within 2000 ms: P2028 …`). */
function unavailableCause(error: Error): string {
  if (error.cause === undefined) return oneLine(error.message)
  const driver = describeDatabaseCause(error.cause)
  return error.message.startsWith('The database is unreachable') ? driver : `${oneLine(error.message)}: ${driver}`
}

/** 405 with the path's `Allow` for a method the route does not take. */
function requireMethod(request: Request, route: ServedRouteName): void {
  const allowed = pathMethods(route)
  if (!allowed.includes(request.method)) {
    const allow = allowed.join(', ')
    throw new HttpProblemError('method_not_allowed', { detail: `This route accepts ${allow} only` }, { Allow: allow })
  }
}

/** Refuses a request target (path and query) longer than the contract's limit with 414. */
function assertTargetLength(request: Request): void {
  const url = new URL(request.url)
  const length = url.pathname.length + url.search.length
  if (length > MAX_REQUEST_TARGET_LENGTH) {
    throw new HttpProblemError('uri_too_long', {
      detail: `The URL's path and query are ${length} characters long; the limit is ${MAX_REQUEST_TARGET_LENGTH}`,
      maxLength: MAX_REQUEST_TARGET_LENGTH,
    })
  }
}

/** A `HEAD` is answered like the `GET` it stands for, without the body (RFC 9110 §9.3.2). */
function forMethod(request: Request, response: Response): Response {
  if (request.method !== 'HEAD' || response.body === null) return response
  void response.body.cancel().catch(() => undefined)
  return new Response(null, { status: response.status, statusText: response.statusText, headers: response.headers })
}

/** Logged once per handlers instance, the first time a request body was found already read. */
const BODY_CONSUMED_HELP =
  'pipeline-status: something read the request body before the pipeline-status handlers (a body parser such as ' +
  'express.json() mounted before the router, or code that called request.json()), so signed requests cannot be ' +
  'checked over the bytes that were sent and are answered 500 body_already_consumed (the runner retries). Fix: mount ' +
  "the router before the body parser (app.use('/api/pipeline', createExpressRouter(...)) first), or keep the raw " +
  'bytes: express.json({ verify: (req, _res, buf) => { req.rawBody = buf } }); in a fetch handler, pass the request unread.'

/** A text with its control characters escaped, for one log line. */
export function escapeControls(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f]/g, (char) => `\\x${char.charCodeAt(0).toString(16).padStart(2, '0')}`)
}

/** The request's path for logs; never the query, which may carry tokens. */
function pathOf(request: Request): string {
  try {
    return new URL(request.url).pathname
  } catch {
    return '(unparsable URL)'
  }
}
