/**
 * The routes of runs as a collection: `GET /runs` (a page of run summaries, keyset-paged),
 * `GET /runs/counts` (runs per status or per pipeline) and `GET /runs/stats` (stage durations and
 * failures per pipeline and stage). The query is parsed in `src/contract`,
 * the caller's scope comes from `authorizeRunSet` and is ANDed into the filters (`applyScope`),
 * the store lists or counts, and the summaries are built by the core. Internal.
 */
import { catalogueOfRun } from '../../core/run-catalogue.js'
import { decodeRunListCursor, encodeRunListCursor, parseRunCountsQuery, parseRunListQuery, parseRunStatsQuery, type RunQueryError } from '../../contract/run-list-query.js'
import type { RunCounts, RunListPage } from '../../contract/run-list.js'
import type { RunStatsResponse } from '../../contract/run-stats.js'
import { compareStageStats } from '../../core/run-stats.js'
import { applyScope, type RunListItem, summarizeRun } from '../../core/run-list.js'
import type { Store } from '../../core/store.js'
import { authorizeRunSet } from '../auth/list-access.js'
import type { Plumbing, RouteHandler } from '../http/exchange.js'
import { HttpProblemError, jsonResponse } from '../http/problem-response.js'
import type { HandlerSettings } from '../settings.js'

/** The list routes' handlers, by route name. */
export interface ListRoutes {
  readonly listRuns: RouteHandler
  readonly runCounts: RouteHandler
  readonly runStats: RouteHandler
}

/** 400 naming the parameter: `invalid_query`, or `invalid_cursor` for the cursor. */
function queryRefused(error: RunQueryError): HttpProblemError {
  return new HttpProblemError(error.code, { detail: error.message, errors: [{ field: error.parameter, message: error.message }] })
}

/** 501 naming the method a custom store lacks. */
function notImplemented(method: 'listRuns' | 'countRuns' | 'runStats'): HttpProblemError {
  return new HttpProblemError('not_implemented', { detail: `This server's store does not implement Store.${method}, so it cannot answer this route` })
}

/** Builds the list routes of one handlers instance. */
export function createListRoutes(settings: HandlerSettings, plumbing: Plumbing): ListRoutes {
  const store: Store<unknown> = settings.store

  // A run without its own catalogue counts its pipeline's current one (docs/design.md).
  // The run's own catalogue, else its pipeline's current one; a run of a pipeline no longer
  // configured without its own counts no PENDING stages (its length is unknown).
  const catalogueLength = (item: RunListItem): number => catalogueOfRun(item.run, settings.pipelines)?.length ?? 0

  const listRuns = plumbing.route('listRuns', async (exchange) => {
    const query = parseRunListQuery(new URL(exchange.request.url).searchParams)
    if (!query.ok) throw queryRefused(query)
    const access = await authorizeRunSet(exchange, settings)
    if (access instanceof Response) return access
    if (!store.listRuns) throw notImplemented('listRuns')
    const { filter, limit, cursor } = query.value
    let after
    if (cursor !== undefined) {
      const position = decodeRunListCursor(cursor, filter, access.scope)
      if (!position.ok) throw queryRefused(position)
      after = position.value
    }
    // One more than the page: whether a next page exists without a second query.
    const items = await settings.reads.listRuns({ filter: applyScope(filter, access.scope), after, limit: limit + 1 })
    const page = items.slice(0, limit)
    const last = page.at(-1)
    const body: RunListPage = {
      runs: page.map((item) => summarizeRun(item, catalogueLength(item))),
      nextCursor: items.length > limit && last ? encodeRunListCursor(last.run, filter, access.scope) : null,
    }
    return jsonResponse(body)
  })

  const runCounts = plumbing.route('runCounts', async (exchange) => {
    const query = parseRunCountsQuery(new URL(exchange.request.url).searchParams)
    if (!query.ok) throw queryRefused(query)
    const access = await authorizeRunSet(exchange, settings)
    if (access instanceof Response) return access
    if (!store.countRuns) throw notImplemented('countRuns')
    const counts = await settings.reads.countRuns({ filter: applyScope(query.value.filter, access.scope), groupBy: query.value.groupBy })
    const body: RunCounts = { counts: Object.fromEntries(Object.entries(counts).filter(([, n]) => n > 0)) }
    return jsonResponse(body)
  })

  const DAY_MS = 86_400_000
  const runStats = plumbing.route('runStats', async (exchange) => {
    const query = parseRunStatsQuery(new URL(exchange.request.url).searchParams)
    if (!query.ok) throw queryRefused(query)
    const access = await authorizeRunSet(exchange, settings)
    if (access instanceof Response) return access
    if (!store.runStats) throw notImplemented('runStats')
    const { pipeline, days } = query.value
    // The window from the handlers' clock, the one that stamped the stages' times, sent to the
    // store as an instant (never a local-time expression of the database's session).
    const since = new Date(settings.clock().getTime() - days * DAY_MS)
    const stages = await store.runStats({ filter: applyScope(pipeline === undefined ? {} : { pipeline }, access.scope), since })
    const body: RunStatsResponse = { stages: [...stages].sort(compareStageStats) }
    return jsonResponse(body)
  })

  return { listRuns, runCounts, runStats }
}
