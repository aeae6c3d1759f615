/** The base path all routes live under unless configured otherwise. */
export const DEFAULT_BASE_PATH = '/api/pipeline'

/** The routes of the contract, by name; `events` is the live status stream (`text/event-stream`). */
export type RouteName = 'stageUpdate' | 'status' | 'complete' | 'createRun' | 'heartbeat' | 'cancel' | 'events'

/** HTTP method of each route. */
export const ROUTE_METHODS: Readonly<Record<RouteName, 'GET' | 'POST'>> = Object.freeze({
  stageUpdate: 'POST',
  status: 'GET',
  complete: 'POST',
  createRun: 'POST',
  heartbeat: 'POST',
  cancel: 'POST',
  events: 'GET',
})

/**
 * The methods a route answers, for its `Allow` header: a `GET` route also answers `HEAD`
 * (like `GET`, without a body; RFC 9110 §9.3.2).
 *
 * @example
 * ```ts
 * import { allowedMethods } from 'pipeline-status-sdk'
 * allowedMethods('status') // ['GET', 'HEAD']
 * ```
 */
export function allowedMethods(route: RouteName): readonly string[] {
  return ROUTE_METHODS[route] === 'GET' ? ['GET', 'HEAD'] : [ROUTE_METHODS[route]]
}

/**
 * The longest request target (path and query, as sent) the handlers take, in characters:
 * 8 KiB, the least RFC 9110 §4.1 asks servers to support. A longer one is answered with 414
 * `uri_too_long`. (On a Node server, a request line over Node's header limit, 16 KiB by
 * default, gets Node's own 431 first.)
 */
export const MAX_REQUEST_TARGET_LENGTH = 8192

/** Removes trailing slashes and makes sure the base path starts with one. */
export function normalizeBasePath(basePath: string): string {
  const trimmed = basePath.replace(/\/+$/, '')
  if (trimmed === '') return ''
  return trimmed.startsWith('/') ? trimmed : `/${trimmed}`
}

/**
 * Builds the path of a route, URL-encoding the run id.
 *
 * @example
 * ```ts
 * import { routePath } from 'pipeline-status-sdk'
 * routePath('stageUpdate', 'run_1') // '/api/pipeline/run_1/stage-update'
 * ```
 */
export function routePath(
  route: RouteName,
  runId?: string,
  basePath: string = DEFAULT_BASE_PATH,
): string {
  const base = normalizeBasePath(basePath)
  if (route === 'createRun') return `${base}/runs`
  if (runId === undefined || runId === '') {
    throw new TypeError(`Route ${route} needs a run id`)
  }
  const id = encodeURIComponent(runId)
  switch (route) {
    case 'stageUpdate':
      return `${base}/${id}/stage-update`
    case 'status':
      return `${base}/${id}/status`
    case 'complete':
      return `${base}/${id}/complete`
    case 'heartbeat':
      return `${base}/${id}/heartbeat`
    case 'cancel':
      return `${base}/${id}/cancel`
    case 'events':
      return `${base}/${id}/events`
  }
}

/** A path matched against the contract's routes. */
export type RouteMatch =
  | { route: 'createRun' }
  | { route: 'stageUpdate' | 'status' | 'complete' | 'heartbeat' | 'cancel' | 'events'; runId: string }

/**
 * Matches a request path against the contract's routes under `basePath`.
 * Returns `undefined` for a path that is not one of them. The run id is URL-decoded;
 * an id that does not decode is no match.
 *
 * @example
 * ```ts
 * import { matchRoute } from 'pipeline-status-sdk'
 * matchRoute('/api/pipeline/run%3A1/status') // { route: 'status', runId: 'run:1' }
 * matchRoute('/api/pipeline/runs') // { route: 'createRun' }
 * ```
 */
export function matchRoute(
  pathname: string,
  basePath: string = DEFAULT_BASE_PATH,
): RouteMatch | undefined {
  const base = normalizeBasePath(basePath)
  if (!pathname.startsWith(`${base}/`)) return undefined
  const rest = pathname.slice(base.length + 1).replace(/\/+$/, '')
  if (rest === 'runs') return { route: 'createRun' }
  const parts = rest.split('/')
  if (parts.length !== 2) return undefined
  const [rawId, action] = parts as [string, string]
  let runId: string
  try {
    runId = decodeURIComponent(rawId)
  } catch {
    return undefined
  }
  if (runId === '') return undefined
  switch (action) {
    case 'stage-update':
      return { route: 'stageUpdate', runId }
    case 'status':
      return { route: 'status', runId }
    case 'complete':
      return { route: 'complete', runId }
    case 'heartbeat':
      return { route: 'heartbeat', runId }
    case 'cancel':
      return { route: 'cancel', runId }
    case 'events':
      return { route: 'events', runId }
    default:
      return undefined
  }
}
