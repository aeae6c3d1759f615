/**
 * Lists and counts of runs for `PrismaAPIClient.listRuns` and `countRuns`: the filter's query
 * string, the pages of `GET {base}/runs` followed by their `nextCursor`, and
 * `GET {base}/runs/counts` (docs/design.md, "Runs as a collection").
 */
import { z } from 'zod'
import { PayloadValidationError } from '../contract/parse.js'
import { DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT, RunCounts, RunListPage } from '../contract/run-list.js'
import { RunStatus } from '../contract/status.js'
import { isTimestamp } from '../contract/timestamp.js'
import { parseResponse } from './parse-response.js'

/**
 * Which runs a list or a count takes. Every given filter must hold; the server ANDs in what the
 * caller may see (a read token's scope, the app's `listScope`).
 */
export interface RunFilter {
  /** Runs in any of these statuses (query: repeated `status`). */
  status?: RunStatus | readonly RunStatus[] | undefined
  /** Runs of this pipeline (query: `pipeline`); a pipeline no longer configured is allowed. */
  pipeline?: string | undefined
  /** Runs carrying every one of these tags (query: repeated `tag`). */
  tag?: string | readonly string[] | undefined
  /** Runs created at or after this instant (inclusive; a `Date` or an ISO 8601 timestamp). */
  createdAfter?: Date | string | undefined
  /** Runs created before this instant (exclusive; a `Date` or an ISO 8601 timestamp). */
  createdBefore?: Date | string | undefined
}

/**
 * Options of `listRuns`: the filter, the page size, an overall bound and a signal.
 *
 * @example
 * ```ts
 * import { PrismaAPIClient } from 'pipeline-status-sdk/client'
 * const client = new PrismaAPIClient()
 * for await (const page of client.listRuns({ tag: 'nightly', status: ['FAILED'], limit: 100 })) {
 *   for (const run of page.runs) console.log(run.id, run.error)
 * }
 * ```
 */
export interface ListRunsOptions extends RunFilter {
  /**
   * Runs per page, 1–200 (the server's `limit`).
   * @default 50 (the server's default)
   */
  limit?: number | undefined
  /**
   * Stop after this many runs in all: the last page asks for only what is left, so no page holds
   * more and its `nextCursor` is still the server's.
   * @default no bound: every page up to the last
   */
  maxRuns?: number | undefined
  /**
   * Aborts the page in flight (and its retry waits) and ends the iteration with a
   * `PipelineStatusError` saying it was aborted. Each page's attempts also have the client's
   * `timeoutMs`.
   */
  signal?: AbortSignal | undefined
}

/** Options of `countRuns`: what to group by, the filter and a signal. */
export interface CountRunsOptions extends RunFilter {
  /** Count per run status or per pipeline (the server's `groupBy`). */
  groupBy: 'status' | 'pipeline'
  /** Aborts the request (and its retry waits). */
  signal?: AbortSignal | undefined
}

/** What list and count requests need of the client: one GET, retried, authenticated. */
export interface RunListTransport {
  /** The absolute URL of a route of the table with a query, e.g. `listRuns` → `…/api/pipeline/runs?tag=x`. */
  url(route: 'listRuns' | 'runCounts', query: URLSearchParams): string
  /** Sends a GET (retried like status reads) and resolves the 2xx answer's text. */
  get(url: string, signal: AbortSignal | undefined): Promise<string>
}

const Instant = z.union([
  z.date().refine((date) => !Number.isNaN(date.getTime()), 'an invalid Date'),
  z.string().refine(isTimestamp, 'an ISO 8601 timestamp (YYYY-MM-DDTHH:MM:SS[.fff][Z|±HH:MM])'),
])
const oneOrMany = <T extends z.ZodType>(item: T) => z.union([item, z.array(item)])

const Filter = z.object({
  status: oneOrMany(RunStatus).optional(),
  pipeline: z.string().min(1).optional(),
  tag: oneOrMany(z.string().min(1)).optional(),
  createdAfter: Instant.optional(),
  createdBefore: Instant.optional(),
})
const ListOptions = Filter.extend({
  limit: z.number().int().min(1).max(MAX_LIST_LIMIT).optional(),
  maxRuns: z.number().int().min(1).optional(),
})
const CountOptions = Filter.extend({ groupBy: z.enum(['status', 'pipeline']) })

/** `path?query`, or the path alone for an empty query. */
/** A URL with a query appended, or as it is when the query is empty. */
export function withQuery(url: string, query: URLSearchParams): string {
  const text = query.toString()
  return text === '' ? url : `${url}?${text}`
}

/** The filter as the query of `GET {base}/runs` and `/runs/counts` (repeated `status` and `tag`). */
export function runFilterQuery(filter: z.infer<typeof Filter>): URLSearchParams {
  const query = new URLSearchParams()
  for (const status of [filter.status ?? []].flat()) query.append('status', status)
  if (filter.pipeline !== undefined) query.set('pipeline', filter.pipeline)
  for (const tag of [filter.tag ?? []].flat()) query.append('tag', tag)
  const instant = (value: Date | string) => (typeof value === 'string' ? value : value.toISOString())
  if (filter.createdAfter !== undefined) query.set('createdAfter', instant(filter.createdAfter))
  if (filter.createdBefore !== undefined) query.set('createdBefore', instant(filter.createdBefore))
  return query
}

function parseOptions<S extends z.ZodType>(schema: S, options: unknown, what: string): z.infer<S> {
  const parsed = schema.safeParse(options)
  if (!parsed.success) throw new PayloadValidationError(what, parsed.error.issues)
  return parsed.data
}

/**
 * The pages of a list, newest run first, following `nextCursor` until it is `null` or `maxRuns`
 * runs were read. The options are checked when iteration starts (`PayloadValidationError`).
 */
export async function* listRunPages(transport: RunListTransport, options: ListRunsOptions): AsyncGenerator<RunListPage, void, undefined> {
  const { signal, ...rest } = options
  const { limit, maxRuns, ...filter } = parseOptions(ListOptions, rest, 'run list options')
  const base = runFilterQuery(filter)
  let cursor: string | undefined
  let read = 0
  for (;;) {
    signal?.throwIfAborted()
    const query = new URLSearchParams(base)
    const left = maxRuns === undefined ? undefined : maxRuns - read
    // Never over the page size asked for (else the server's default), whatever `maxRuns` is.
    const pageSize = left === undefined ? limit : Math.min(left, limit ?? DEFAULT_LIST_LIMIT)
    if (pageSize !== undefined) query.set('limit', String(pageSize))
    // The cursor is bound to the filters: the same query goes with it on every page.
    if (cursor !== undefined) query.set('cursor', cursor)
    const text = await transport.get(transport.url('listRuns', query), signal)
    const page = parseResponse(RunListPage, text, 'run list')
    read += page.runs.length
    yield page
    // A cursor that does not move would repeat the same page forever.
    if (page.nextCursor === null || page.nextCursor === cursor || (maxRuns !== undefined && read >= maxRuns)) return
    cursor = page.nextCursor
  }
}

/** `GET {base}/runs/counts`: the runs per status or pipeline (zero keys absent). */
export async function countRuns(transport: RunListTransport, options: CountRunsOptions): Promise<RunCounts> {
  const { signal, ...rest } = options
  const { groupBy, ...filter } = parseOptions(CountOptions, rest, 'run count options')
  const query = runFilterQuery(filter)
  query.set('groupBy', groupBy)
  return parseResponse(RunCounts, await transport.get(transport.url('runCounts', query), signal), 'run counts')
}
