import { describe, expect, it } from 'vitest'
import { CONTRACT_ROUTES } from './route-registry.js'
import { RUN_COUNTS_PARAMETERS, RUN_LIST_PARAMETERS, SET_STREAM_PARAMETERS } from './run-list-query.js'
import {
  buildRoutePath,
  createRouteMatcher,
  fillTemplate,
  findRoute,
  matchPath,
  matchRoute,
  pathMethods,
  ROUTE_METHODS,
  ROUTE_TABLE,
  type RouteSpec,
  routeUrl,
} from './routes.js'

/**
 * The shapes the next issues add (run lists, set streams, streamed output, a dashboard), in a
 * table of their own: the matcher must hold them without the routes being added to the contract.
 */
const FUTURE_TABLE = {
  ...ROUTE_TABLE,
  listRuns: { method: 'GET', path: '/runs', access: 'read', caller: 'reader', preflight: true },
  runCounts: { method: 'GET', path: '/runs/counts', access: 'read', caller: 'reader' },
  runSetEvents: { method: 'GET', path: '/events', access: 'read', caller: 'reader', preflight: true, stream: true },
  stageOutput: { method: 'POST', path: '/{runId}/stages/{stageNumber}/output', access: 'write', caller: 'runner' },
  dashboard: { method: 'GET', path: '/dashboard', access: 'public', caller: 'reader' },
  dashboardAsset: { method: 'GET', path: '/dashboard/{asset}', access: 'public', caller: 'reader' },
} as const satisfies Record<string, RouteSpec>

describe('the route matcher', () => {
  const future = createRouteMatcher(FUTURE_TABLE)
  const base = '/api/pipeline'

  it('tells a GET and a POST on one path apart, and answers 405 with both in Allow', () => {
    expect(future.findRoute('GET', `${base}/runs`, base)).toEqual({ route: 'listRuns', params: {} })
    expect(future.findRoute('HEAD', `${base}/runs/`, base)).toEqual({ route: 'listRuns', params: {} })
    expect(future.findRoute('POST', `${base}/runs`, base)).toEqual({ route: 'createRun', params: {} })
    expect(future.findRoute('OPTIONS', `${base}/runs`, base)).toEqual({ route: 'listRuns', params: {} })
    // A method neither takes: the path's first route answers, with every method of the path.
    const refused = future.findRoute('DELETE', `${base}/runs`, base)
    expect(refused?.route).toBe('createRun')
    expect(future.pathMethods(refused!.route)).toEqual(['POST', 'GET', 'HEAD'])
  })

  it('matches a collection stream and a literal two-segment path before a run route', () => {
    expect(future.findRoute('GET', `${base}/events`, base)).toEqual({ route: 'runSetEvents', params: {} })
    expect(future.findRoute('GET', `${base}/runs/counts`, base)).toEqual({ route: 'runCounts', params: {} })
    // A run whose id is "events" or "runs" keeps its own routes.
    expect(future.findRoute('GET', `${base}/events/events`, base)).toEqual({ route: 'events', params: { runId: 'events' } })
    expect(future.findRoute('GET', `${base}/runs/status`, base)).toEqual({ route: 'status', params: { runId: 'runs' } })
  })

  it('matches a two-parameter path, decoding each parameter', () => {
    expect(future.findRoute('POST', `${base}/run%3A1/stages/3/output`, base)).toEqual({
      route: 'stageOutput',
      params: { runId: 'run:1', stageNumber: '3' },
    })
    expect(future.findRoute('POST', `${base}/run_1/stages//output`, base)).toBeUndefined()
    expect(future.findRoute('POST', `${base}/run_1/stages/%E0%A4%A/output`, base)).toBeUndefined()
    expect(future.findRoute('POST', `${base}/run_1/stages/3`, base)).toBeUndefined()
    expect(fillTemplate(FUTURE_TABLE.stageOutput.path, { runId: 'run/1', stageNumber: '3' })).toBe('/run%2F1/stages/3/output')
  })

  it('matches an HTML page and its assets', () => {
    expect(future.findRoute('GET', `${base}/dashboard`, base)).toEqual({ route: 'dashboard', params: {} })
    expect(future.findRoute('GET', `${base}/dashboard/app.js`, base)).toEqual({ route: 'dashboardAsset', params: { asset: 'app.js' } })
    // The leftmost literal segment wins: the page's assets before the routes of a run named "dashboard".
    expect(future.findRoute('GET', `${base}/dashboard/status`, base)).toEqual({ route: 'dashboardAsset', params: { asset: 'status' } })
    expect(future.findRoute('GET', `${base}/dashboard/a/b`, base)).toBeUndefined()
  })
})

describe('the route table', () => {
  it('gives every route one method, one path and one OpenAPI entry', () => {
    for (const [name, spec] of Object.entries(ROUTE_TABLE)) {
      expect(CONTRACT_ROUTES[name as keyof typeof CONTRACT_ROUTES]).toMatchObject({ method: spec.method, path: spec.path, access: spec.access })
    }
    expect(Object.keys(ROUTE_METHODS)).toEqual(Object.keys(ROUTE_TABLE).filter((name) => !['openApi', 'dashboard', 'dashboardAsset'].includes(name)))
  })

  it('serves the dashboard beside the runs: an asset has a dot in its name, a run route never does', () => {
    expect(findRoute('GET', '/api/pipeline/dashboard')).toEqual({ route: 'dashboard', params: {} })
    expect(findRoute('GET', '/api/pipeline/dashboard/dashboard.js')).toEqual({ route: 'dashboardAsset', params: { asset: 'dashboard.js' } })
    // The run called `dashboard` keeps its routes.
    expect(findRoute('GET', '/api/pipeline/dashboard/status')).toEqual({ route: 'status', params: { runId: 'dashboard' } })
    expect(findRoute('POST', '/api/pipeline/dashboard/stage-update')).toEqual({ route: 'stageUpdate', params: { runId: 'dashboard' } })
    expect(findRoute('GET', '/api/pipeline/dashboard/..%2Fsecret.js')).toBeUndefined()
    expect(matchRoute('/api/pipeline/dashboard/dashboard.css')).toBeUndefined()
    expect(findRoute('GET', '/api/pipeline/runs/stats')).toEqual({ route: 'runStats', params: {} })
  })

  it('dispatches the served routes by method and path, the document included', () => {
    expect(findRoute('GET', '/api/pipeline/openapi.json')).toEqual({ route: 'openApi', params: {} })
    expect(matchRoute('/api/pipeline/openapi.json')).toBeUndefined()
    expect(findRoute('OPTIONS', '/api/pipeline/r/status')).toEqual({ route: 'status', params: { runId: 'r' } })
    expect(findRoute('PUT', '/api/pipeline/r/stage-update')).toEqual({ route: 'stageUpdate', params: { runId: 'r' } })
    expect(pathMethods('status')).toEqual(['GET', 'HEAD'])
    expect(matchPath('/x/r/events', '/x')).toEqual({ routes: ['events'], params: { runId: 'r' } })
  })

  it('builds paths and URLs from the table', () => {
    expect(buildRoutePath('events', { runId: 'a b' }, '/x/')).toBe('/x/a%20b/events')
    expect(() => buildRoutePath('status', {})).toThrow('Route status needs a run id')
    expect(buildRoutePath('openApi', {}, '')).toBe('/openapi.json')
    expect(routeUrl('https://app.example.com/api/pipeline/', 'status', { runId: 'run:1' })).toBe('https://app.example.com/api/pipeline/run%3A1/status')
    expect(routeUrl('/api/pipeline', 'events', { runId: 'r' })).toBe('/api/pipeline/r/events')
  })
})

describe('the query parameters the list routes know', () => {
  it('are the ones the OpenAPI document lists, so a parameter it shows is never refused as unknown', () => {
    const names = (route: 'listRuns' | 'runCounts' | 'runSetEvents') => (CONTRACT_ROUTES[route].query ?? []).map((parameter) => parameter.name)
    expect(names('listRuns')).toEqual([...RUN_LIST_PARAMETERS])
    expect(names('runCounts')).toEqual([...RUN_COUNTS_PARAMETERS])
    expect(names('runSetEvents')).toEqual([...SET_STREAM_PARAMETERS])
  })
})
