/**
 * THE route table: every route the handlers serve, as data (its method, its path template, who
 * may call it, who sends it). Everything else is derived from it: the paths clients build
 * (`routePath`, the subscriber's URLs), the matching of request paths (`matchRoute`,
 * `findRoute`), the methods and `Allow` headers, the handlers' dispatch (a record keyed by
 * route name, so a route without a handler does not compile), the Next.js adapter's exports,
 * the Express adapter's one match per request, the mock's auto-create rule, and the OpenAPI
 * document (`route-registry.ts` adds each route's prose and schemas, keyed by the same names).
 * A new route is one entry here plus its handler; see docs/design.md, "Where things live".
 */

/** The base path all routes live under unless configured otherwise. */
export const DEFAULT_BASE_PATH = '/api/pipeline'

/** The methods a route of the table is declared with (a `GET` route answers `HEAD` too). */
export type RouteMethod = 'GET' | 'POST'

/**
 * Who may call a route: `write` needs `X-Webhook-Secret` or a Standard Webhooks signature;
 * `read` also takes a run read token or whatever the app's `authorize` hook allows; `public`
 * needs nothing.
 */
export type RouteAccess = 'write' | 'read' | 'public'

/** Who sends a route's requests: the pipeline runner, the web app, or a reader (a page, the app). */
export type RouteCaller = 'runner' | 'app' | 'reader'

/** One entry of the route table. */
export interface RouteSpec {
  /** The HTTP method; a `GET` route answers `HEAD` too (RFC 9110 §9.3.2). */
  readonly method: RouteMethod
  /**
   * The path after the base path, as a template: literal segments and `{name}` parameters, one
   * segment each (`/{runId}/stages/{stageNumber}/output`). Parameters are URL-encoded when a path
   * is built and decoded when one is matched.
   */
  readonly path: string
  /** Who may call it. */
  readonly access: RouteAccess
  /** Who sends it. */
  readonly caller: RouteCaller
  /**
   * Answers a CORS preflight `OPTIONS` (204) when the handlers' `cors` option is set; without it
   * `OPTIONS` is a 405 like any other method.
   */
  readonly preflight?: true
  /** Its answer is a stream that stays open (`text/event-stream`): adapters must not buffer it, and stop it when the client goes. */
  readonly stream?: true
  /**
   * What a path parameter's decoded value must look like for the path to be this route's; a
   * segment that does not fit is no match here, so the path can still be another route's
   * (`/dashboard/app.js` is an asset, `/dashboard/status` the status of the run `dashboard`).
   */
  readonly patterns?: Readonly<Record<string, RegExp>>
}

/**
 * A dashboard asset's file name as its path segment: letters, digits, `_` and `-`, one dot and an
 * extension (`dashboard.js`). No route of one run ends in a dot-named segment, so an asset path never
 * shadows one.
 */
export const DASHBOARD_ASSET_PATTERN = /^[A-Za-z0-9_-]+\.[a-z0-9]+$/

/**
 * The route table (internal: entry points export what is derived from it). The key is the route's
 * name everywhere: in `RouteName`, the handlers, the Next.js exports, the OpenAPI `operationId`.
 * `openApi` is the document about the routes, `dashboard` and `dashboardAsset` the dashboard's
 * page and its files; they are served like routes but are not `RouteName`s (no data, no run).
 */
export const ROUTE_TABLE = {
  stageUpdate: { method: 'POST', path: '/{runId}/stage-update', access: 'write', caller: 'runner' },
  status: { method: 'GET', path: '/{runId}/status', access: 'read', caller: 'reader', preflight: true },
  complete: { method: 'POST', path: '/{runId}/complete', access: 'write', caller: 'runner' },
  createRun: { method: 'POST', path: '/runs', access: 'write', caller: 'app' },
  listRuns: { method: 'GET', path: '/runs', access: 'read', caller: 'reader', preflight: true },
  runCounts: { method: 'GET', path: '/runs/counts', access: 'read', caller: 'reader', preflight: true },
  runStats: { method: 'GET', path: '/runs/stats', access: 'read', caller: 'reader', preflight: true },
  heartbeat: { method: 'POST', path: '/{runId}/heartbeat', access: 'write', caller: 'runner' },
  cancel: { method: 'POST', path: '/{runId}/cancel', access: 'write', caller: 'app' },
  events: { method: 'GET', path: '/{runId}/events', access: 'read', caller: 'reader', preflight: true, stream: true },
  openApi: { method: 'GET', path: '/openapi.json', access: 'public', caller: 'reader' },
  // Runs as a collection: a run's tags and metadata (the app's; the secret or `authorize`).
  runTags: { method: 'POST', path: '/{runId}/tags', access: 'write', caller: 'app' },
  runMetadata: { method: 'POST', path: '/{runId}/metadata', access: 'write', caller: 'app' },
  // Runs as a collection: one live stream for a set of runs (the list's filters, or `run=` ids).
  runSetEvents: { method: 'GET', path: '/events', access: 'read', caller: 'reader', preflight: true, stream: true },
  // Streamed stage output (issue 27): one chunk of a running stage's text.
  stageOutput: { method: 'POST', path: '/{runId}/stages/{stageNumber}/output', access: 'write', caller: 'runner' },
  // What people see (off by default): the dashboard's page shell (no data in it) and its assets.
  dashboard: { method: 'GET', path: '/dashboard', access: 'public', caller: 'reader' },
  dashboardAsset: { method: 'GET', path: '/dashboard/{asset}', access: 'public', caller: 'reader', patterns: { asset: DASHBOARD_ASSET_PATTERN } },
} as const satisfies Record<string, RouteSpec>

/**
 * Every route the handlers serve, by name: the contract's routes and the OpenAPI document.
 * @inline
 */
export type ServedRouteName = keyof typeof ROUTE_TABLE

/** The served routes that are documents, not the contract's data: the OpenAPI document and the dashboard's page and assets. */
const DOCUMENT_ROUTES: readonly string[] = ['openApi', 'dashboard', 'dashboardAsset'] satisfies ServedRouteName[]

/** The routes of the contract, by name; `events` is the live status stream (`text/event-stream`). */
export type RouteName = Exclude<ServedRouteName, 'openApi' | 'dashboard' | 'dashboardAsset'>

/** The parameters a route's path template names, e.g. `'runId'`. */
export type RouteParamName<R extends ServedRouteName> = TemplateParams<(typeof ROUTE_TABLE)[R]['path']>
type TemplateParams<P extends string> = P extends `${string}{${infer Name}}${infer Rest}` ? Name | TemplateParams<Rest> : never

/** The values of a route's path parameters, decoded. */
export type RouteParams<R extends ServedRouteName> = { readonly [K in RouteParamName<R>]: string }

const ROUTE_NAMES = Object.keys(ROUTE_TABLE) as ServedRouteName[]

/** The table's entry of a route, typed as the general shape. */
export function routeSpec(route: ServedRouteName): RouteSpec {
  return ROUTE_TABLE[route]
}

/** HTTP method of each route. */
export const ROUTE_METHODS: Readonly<Record<RouteName, 'GET' | 'POST'>> = Object.freeze(
  Object.fromEntries(ROUTE_NAMES.filter(isRouteName).map((name) => [name, ROUTE_TABLE[name].method])) as Record<RouteName, RouteMethod>,
)

/** Whether a served route is one of the contract's (not a document: the OpenAPI document, the dashboard). */
export function isRouteName(name: ServedRouteName): name is RouteName {
  return !DOCUMENT_ROUTES.includes(name)
}

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
  return routeMethods(route)
}

/** The methods one served route answers: its own, and `HEAD` for a `GET` route. */
export function routeMethods(route: ServedRouteName): readonly string[] {
  return methodsOf(ROUTE_TABLE[route].method)
}

function methodsOf(method: RouteMethod): readonly string[] {
  return method === 'GET' ? ['GET', 'HEAD'] : [method]
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

/** A path template's parameters filled in, URL-encoded; never throws (an absent one is empty). */
export function fillTemplate(template: string, params: Readonly<Record<string, string | undefined>>): string {
  return template.replace(/\{([^}]+)\}/g, (_, name: string) => encodeURIComponent(params[name] ?? ''))
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
  return buildRoutePath(route, runId === undefined ? {} : { runId }, basePath)
}

/**
 * Builds the path of any served route from its parameters (two-parameter paths too), URL-encoding
 * each; throws a `TypeError` when one the template names is missing or empty.
 */
export function buildRoutePath<R extends ServedRouteName>(
  route: R,
  params: Partial<RouteParams<R>> | Readonly<Record<string, string | undefined>>,
  basePath: string = DEFAULT_BASE_PATH,
): string {
  const values = params as Readonly<Record<string, string | undefined>>
  const template = ROUTE_TABLE[route].path
  for (const [, name] of template.matchAll(/\{([^}]+)\}/g)) {
    const value = values[name as string]
    if (value === undefined || value === '') {
      throw new TypeError(name === 'runId' ? `Route ${route} needs a run id` : `Route ${route} needs ${name}`)
    }
  }
  return normalizeBasePath(basePath) + fillTemplate(template, values)
}

/**
 * The URL of a route under a base URL as a caller gives it (absolute, `https://app.example.com/api/pipeline`,
 * or relative to a page, `/api/pipeline`), trailing slashes dropped, parameters URL-encoded. For
 * subscribers and clients, which take a URL rather than a base path.
 */
export function routeUrl<R extends ServedRouteName>(
  baseUrl: string,
  route: R,
  params: RouteParams<R> | Readonly<Record<string, string>>,
): string {
  return baseUrl.replace(/\/+$/, '') + fillTemplate(ROUTE_TABLE[route].path, params)
}

/** A path matched against the contract's routes. */
export type RouteMatch =
  | { route: 'createRun' | 'runCounts' | 'runSetEvents' | 'runStats' }
  | { route: 'stageUpdate' | 'status' | 'complete' | 'heartbeat' | 'cancel' | 'events' | 'runTags' | 'runMetadata' | 'stageOutput'; runId: string }

/** One path template, split once: literal segments and parameter names. */
interface CompiledPath<Name extends string> {
  readonly segments: readonly ({ literal: string } | { param: string; pattern?: RegExp | undefined })[]
  /** The routes on this path, in table order. */
  readonly routes: Name[]
}

/** A request path matched to a path of a table: the routes on it and its decoded parameters. */
export interface PathMatch<Name extends string = ServedRouteName> {
  /** The routes with this path template, in table order (several when methods differ). */
  readonly routes: readonly Name[]
  /** The path parameters, URL-decoded. */
  readonly params: Readonly<Record<string, string>>
}

/** A request matched to one route: the route and its decoded path parameters. */
export interface FoundRoute<Name extends string = ServedRouteName> {
  /** The route that answers: the one for this method, or else the first on the path (which answers 405). */
  readonly route: Name
  /** The path parameters, URL-decoded. */
  readonly params: Readonly<Record<string, string>>
}

/** Matching over one route table (the contract's, or a test's). */
export interface RouteMatcher<Name extends string> {
  /**
   * Matches a request path to a path template under `basePath`, trailing slashes ignored.
   * `undefined` when none fits; a parameter that is empty or does not URL-decode is no match.
   */
  matchPath(pathname: string, basePath: string): PathMatch<Name> | undefined
  /**
   * Matches a request (method and path) to the route that answers it, once: the route on the
   * path declared with this method (`HEAD` as `GET`), else for `OPTIONS` the one that answers a
   * preflight, else the path's first route, which refuses the method with 405 and the path's
   * `Allow`. `undefined` for a path of no route (404).
   */
  findRoute(method: string, pathname: string, basePath: string): FoundRoute<Name> | undefined
  /** The methods answered at a route's path: every route with the same template (for a 405's `Allow`). */
  pathMethods(route: Name): readonly string[]
}

/** Compiles a route table into its matcher: templates split once, the more literal ones first. */
export function createRouteMatcher<Name extends string>(table: Readonly<Record<Name, RouteSpec>>): RouteMatcher<Name> {
  const names = Object.keys(table) as Name[]
  const byTemplate = new Map<string, CompiledPath<Name>>()
  for (const name of names) {
    const template = table[name].path
    let compiled = byTemplate.get(template)
    if (!compiled) {
      const segments = template
        .slice(1)
        .split('/')
        .map((segment) => {
          const param = /^\{([^}]+)\}$/.exec(segment)?.[1]
          return param === undefined ? { literal: segment } : { param, pattern: table[name].patterns?.[param] }
        })
      compiled = { segments, routes: [] }
      byTemplate.set(template, compiled)
    }
    compiled.routes.push(name)
  }
  // The leftmost literal segment wins (`/runs/counts` before `/{runId}/status`, `/dashboard/{asset}`
  // before `/{runId}/status`); the sort is stable, so otherwise table order decides.
  const compiledPaths = [...byTemplate.values()].sort((a, b) => literalFirst(a.segments, b.segments))
  // Each route's `Allow` once, here: every request asks it (exchange.ts, `requireMethod`).
  const methodsAtPath = new Map<Name, readonly string[]>(
    names.map((route) => [route, [...new Set(names.filter((name) => table[name].path === table[route].path).flatMap((name) => methodsOf(table[name].method)))]]),
  )

  function matchPath(pathname: string, basePath: string): PathMatch<Name> | undefined {
    const base = normalizeBasePath(basePath)
    if (!pathname.startsWith(`${base}/`)) return undefined
    const parts = pathname.slice(base.length + 1).replace(/\/+$/, '').split('/')
    for (const compiled of compiledPaths) {
      const params = matchSegments(compiled.segments, parts)
      if (params) return { routes: compiled.routes, params }
    }
    return undefined
  }

  return {
    matchPath,
    findRoute(method, pathname, basePath) {
      const match = matchPath(pathname, basePath)
      if (!match) return undefined
      const wanted = method === 'HEAD' ? 'GET' : method
      const route =
        match.routes.find((name) => table[name].method === wanted) ??
        (method === 'OPTIONS' ? match.routes.find((name) => table[name].preflight === true) : undefined) ??
        (match.routes[0] as Name)
      return { route, params: match.params }
    },
    pathMethods(route) {
      return methodsAtPath.get(route) as readonly string[]
    },
  }
}

function literalFirst(a: CompiledPath<string>['segments'], b: CompiledPath<string>['segments']): number {
  for (let index = 0; index < Math.min(a.length, b.length); index++) {
    const aLiteral = 'literal' in (a[index] as object)
    const bLiteral = 'literal' in (b[index] as object)
    if (aLiteral !== bLiteral) return aLiteral ? -1 : 1
  }
  return 0
}

function matchSegments(segments: CompiledPath<string>['segments'], parts: readonly string[]): Record<string, string> | undefined {
  if (parts.length !== segments.length) return undefined
  const params: Record<string, string> = {}
  for (const [index, segment] of segments.entries()) {
    const part = parts[index] as string
    if ('literal' in segment) {
      if (part !== segment.literal) return undefined
      continue
    }
    let value: string
    try {
      value = decodeURIComponent(part)
    } catch {
      return undefined
    }
    if (value === '' || (segment.pattern !== undefined && !segment.pattern.test(value))) return undefined
    params[segment.param] = value
  }
  return params
}

const MATCHER = createRouteMatcher<ServedRouteName>(ROUTE_TABLE)

/** Matches a request path to a path of the route table; see {@link RouteMatcher.matchPath}. */
export function matchPath(pathname: string, basePath: string = DEFAULT_BASE_PATH): PathMatch | undefined {
  return MATCHER.matchPath(pathname, basePath)
}

/** Matches a request to the route of the table that answers it, once; see {@link RouteMatcher.findRoute}. */
export function findRoute(method: string, pathname: string, basePath: string = DEFAULT_BASE_PATH): FoundRoute | undefined {
  return MATCHER.findRoute(method, pathname, basePath)
}

/**
 * The methods answered at a route's path: its own and those of every other route with the same
 * path template (a `GET` and a `POST` on one path share it), for the `Allow` of a 405.
 */
export function pathMethods(route: ServedRouteName): readonly string[] {
  return MATCHER.pathMethods(route)
}

/**
 * Matches a request path against the contract's routes under `basePath`.
 * Returns `undefined` for a path that is not one of them. The run id is URL-decoded;
 * an id that does not decode is no match.
 *
 * @example
 * ```ts
 * import { matchRoute } from 'pipeline-status-sdk'
 * matchRoute('/api/pipeline/run%3A1/status') // { route: 'status', runId: 'run:1' }
 * matchRoute('/api/pipeline/runs') // { route: 'createRun' } (the first route on the path; `listRuns` is its GET)
 * ```
 */
export function matchRoute(
  pathname: string,
  basePath: string = DEFAULT_BASE_PATH,
): RouteMatch | undefined {
  const match = matchPath(pathname, basePath)
  const route = match?.routes[0]
  if (!match || route === undefined || !isRouteName(route)) return undefined
  const runId = match.params['runId']
  return (runId === undefined ? { route } : { route, runId }) as RouteMatch
}
