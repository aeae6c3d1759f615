/**
 * Lists and counts of runs for `PrismaAPIClient.listRuns` and `countRuns`: the filter's query
 * string, the pages of `GET {base}/runs` followed by their `nextCursor`, and
 * `GET {base}/runs/counts` (docs/design.md, "Runs as a collection").
 */
import { z } from 'zod'
import { safeParseContract } from '../contract/field-messages.js'
import { PayloadValidationError } from '../contract/parse.js'
import { tagProblem as contractTagProblem } from '../contract/run-labels.js'
import { DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT, RunCounts, RunListPage } from '../contract/run-list.js'
import { type RunFilter, runFilterQuery } from '../contract/run-filter.js'
import { RunStatus } from '../contract/status.js'
import { isTimestamp, TIMESTAMP_FORMAT } from '../contract/timestamp.js'
import { parseResponse } from './parse-response.js'

export type { RunFilter } from '../contract/run-filter.js'

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

/** A value in a message: a string as JSON (cut to 64 characters), anything else by kind. */
function got(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}…` : value)
  if (value instanceof Date) return 'a Date'
  return value === null || typeof value === 'number' || typeof value === 'boolean' || value === undefined ? String(value) : `a value of type ${typeof value}`
}

/** A field checked by `problem` (why the value is refused, or `undefined`), the issue on the field itself. */
function checked<T>(problem: (value: unknown) => string | undefined) {
  return z.custom<T>().superRefine((value, context) => {
    const reason = problem(value)
    if (reason !== undefined) context.addIssue({ code: 'custom', message: reason })
  })
}

/** One value or a list: the first refused value says why. */
function oneOrMany<T>(problem: (value: unknown) => string | undefined) {
  return checked<T | T[]>((value) => {
    for (const item of Array.isArray(value) ? value : [value]) {
      const reason = problem(item)
      if (reason !== undefined) return reason
    }
    return undefined
  })
}

const STATUSES: readonly string[] = RunStatus.options
const statusProblem = (value: unknown) => (typeof value === 'string' && STATUSES.includes(value) ? undefined : `must be one of ${STATUSES.join(', ')}; got ${got(value)}`)
// The contract's one tag rule (UTF-16 code units, storable text), as the server applies it.
const tagProblem = (value: unknown) => {
  const problem = contractTagProblem(value)
  return problem === undefined ? undefined : `${problem}${typeof value === 'string' ? '' : `; got ${got(value)}`}`
}
const instantProblem = (value: unknown) => {
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? 'is an invalid Date (its time is NaN); give a valid Date or an ISO 8601 timestamp' : undefined
  if (typeof value === 'string') {
    return isTimestamp(value) ? undefined : `is not an ISO 8601 timestamp ${TIMESTAMP_FORMAT} with an offset (e.g. 2026-12-01T00:00:00Z; without one it is UTC); got ${got(value)}`
  }
  return `must be a Date or an ISO 8601 timestamp string; got ${got(value)}`
}
const wholeNumber = (min: number, max: number | undefined, what: string) => (value: unknown) =>
  typeof value === 'number' && Number.isInteger(value) && value >= min && (max === undefined || value <= max)
    ? undefined
    : `must be a whole number ${max === undefined ? `of ${min} or more` : `from ${min} to ${max}`} (${what}); got ${got(value)}`

const Filter = z.object({
  status: oneOrMany<RunStatus>(statusProblem).optional(),
  pipeline: checked<string>((value) => (typeof value === 'string' && value !== '' ? undefined : `must be a non-empty pipeline name; got ${got(value)}`)).optional(),
  tag: oneOrMany<string>(tagProblem).optional(),
  createdAfter: checked<Date | string>(instantProblem).optional(),
  createdBefore: checked<Date | string>(instantProblem).optional(),
})
const ListOptions = Filter.extend({
  limit: checked<number>(wholeNumber(1, MAX_LIST_LIMIT, 'runs per page')).optional(),
  maxRuns: checked<number>(wholeNumber(1, undefined, 'runs in all')).optional(),
})
const CountOptions = Filter.extend({ groupBy: z.enum(['status', 'pipeline']) })

/** `path?query`, or the path alone for an empty query. */
/** A URL with a query appended, or as it is when the query is empty. */
export function withQuery(url: string, query: URLSearchParams): string {
  const text = query.toString()
  return text === '' ? url : `${url}?${text}`
}

function parseOptions<S extends z.ZodType>(schema: S, options: unknown, what: string): z.infer<S> {
  const parsed = safeParseContract(schema, options)
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
