/**
 * The query of `GET {base}/runs`, `GET {base}/runs/counts` and `GET {base}/runs/stats`, parsed in
 * this one place for every target (docs/design.md, "Runs as a collection", "What people see"), and
 * the list's opaque keyset cursor, bound to the filters and the caller's scope it was made with.
 */
import { DEFAULT_STATS_DAYS, MAX_STATS_DAYS } from './run-stats.js'
import {
  DEFAULT_LIST_LIMIT,
  MAX_LIST_LIMIT,
  type RunListFilter,
  type RunScope,
} from './run-list.js'
import { tagProblem } from './run-labels.js'
import { MAX_SET_STREAM_RUNS, SET_STREAM_VIEWS, type SetStreamView } from './live-status.js'
import { isRunId } from './run-id.js'
import { RunStatus } from './status.js'
import { isStorableText } from './storable-text.js'
import { isTimestamp, TIMESTAMP_FORMAT, timestampToDate } from './timestamp.js'

/** What `GET {base}/runs/counts` groups by (query: `groupBy`, required). */
export const RUN_COUNTS_GROUP_BY = ['status', 'pipeline'] as const
/** What `GET {base}/runs/counts` groups by. */
export type RunCountsGroupBy = (typeof RUN_COUNTS_GROUP_BY)[number]

/** A refused query: the parameter at fault and why; `invalid_cursor` for the cursor, else `invalid_query`. */
export interface RunQueryError {
  /** `false`: the query was refused. */
  readonly ok: false
  /**
   * The problem code the handlers answer with: 400 `invalid_query` or `invalid_cursor`, or 404
   * `run_not_found` for a `run=` id outside the run id rule (no run can have it).
   */
  readonly code: 'invalid_query' | 'invalid_cursor' | 'run_not_found'
  /** The query parameter at fault, e.g. `limit`. */
  readonly parameter: string
  /** Why, for people. */
  readonly message: string
}

/** A parsed `GET {base}/runs` query. */
export interface RunListQuery {
  /** The filters. */
  readonly filter: RunListFilter
  /** The page size, 1..200 (default 50). */
  readonly limit: number
  /** The cursor as sent, decoded later with the caller's scope ({@link decodeRunListCursor}). */
  readonly cursor: string | undefined
}

/** A parsed `GET {base}/runs/counts` query. */
export interface RunCountsQuery {
  /** The filters. */
  readonly filter: RunListFilter
  /** The grouping key. */
  readonly groupBy: RunCountsGroupBy
}

/** A parsed `GET {base}/runs/stats` query. */
export interface RunStatsQuery {
  /** Only this pipeline's stages (query: `pipeline`); absent = every pipeline. */
  readonly pipeline: string | undefined
  /** The window, whole days back from now: 1..90 (query: `days`, default 7). */
  readonly days: number
}

/** Where a page starts: after the run with this `createdAt` and `id` in the list's order. */
export interface RunListPosition {
  /** The last listed run's `createdAt`. */
  readonly createdAt: Date
  /** The last listed run's id. */
  readonly id: string
}

type Parsed<T> = { readonly ok: true; readonly value: T } | RunQueryError

function refuse(parameter: string, message: string, code: RunQueryError['code'] = 'invalid_query'): RunQueryError {
  return { ok: false, code, parameter, message }
}

/**
 * The one rule for the text a query parameter carries into a query: storable text (no NUL, no
 * lone surrogate; src/contract/storable-text.ts), else 400 `invalid_query` naming the parameter.
 * PostgreSQL cannot even compare such text (`invalid byte sequence for encoding "UTF8": 0x00`)
 * and no stored value has it, so it would be a 500 or a silent empty answer. `run` is left to the
 * run id rule, which is stricter (see {@link parseSetStreamQuery}); the cursor's own contents are
 * checked when it is decoded. (A URL cannot carry a lone surrogate: URLSearchParams decodes
 * `%ED%A0%80` to U+FFFD U+FFFD U+FFFD, which is storable; the check holds for params built in code.)
 */
function unstorableParameter(params: URLSearchParams): RunQueryError | undefined {
  for (const [name, value] of params) {
    if (name !== 'run' && !isStorableText(value)) {
      return refuse(name, `\`${name}\` must not contain NUL or a lone surrogate`, name === 'cursor' ? 'invalid_cursor' : 'invalid_query')
    }
  }
  return undefined
}

/** One value of a single-valued parameter; a repeated one is refused. */
function single(params: URLSearchParams, name: string): Parsed<string | undefined> {
  const values = params.getAll(name)
  if (values.length > 1) return refuse(name, `\`${name}\` may be given once`)
  return { ok: true, value: values[0] }
}

/** The filters' parameters, shared by lists, counts and set streams. */
export const RUN_FILTER_PARAMETERS = ['status', 'pipeline', 'tag', 'createdAfter', 'createdBefore'] as const
/** Every parameter `GET {base}/runs` knows; any other is 400 naming it. */
export const RUN_LIST_PARAMETERS = [...RUN_FILTER_PARAMETERS, 'limit', 'cursor'] as const
/** Every parameter `GET {base}/runs/counts` knows; any other is 400 naming it. */
export const RUN_COUNTS_PARAMETERS = ['groupBy', ...RUN_FILTER_PARAMETERS] as const
/** Every parameter `GET {base}/events` (a set stream) knows; any other is 400 naming it. */
export const SET_STREAM_PARAMETERS = [...RUN_FILTER_PARAMETERS, 'limit', 'run', 'view'] as const

/**
 * A parsed `GET {base}/events` query: either the runs the list's filters select (the newest
 * `limit` of them, followed as they change) or the runs named with `run=`.
 */
export type SetStreamQuery =
  | {
      /** Follows the newest `limit` runs matching `filter` (and the caller's scope). */
      readonly kind: 'filter'
      readonly filter: RunListFilter
      /** How many runs the window holds, 1..200 (default 50). */
      readonly limit: number
      readonly view: SetStreamView
    }
  | {
      /** Follows the named runs until every one ended. */
      readonly kind: 'runs'
      /** The run ids, repeats dropped, in the order given; 1..50. */
      readonly runIds: readonly string[]
      readonly view: SetStreamView
    }

/** Every parameter `GET {base}/runs/stats` knows; any other is 400 naming it. */
export const RUN_STATS_PARAMETERS = ['pipeline', 'days'] as const

/**
 * The first parameter the route does not know, refused: a misspelt filter (`tags=x`) must not
 * answer the whole unfiltered set.
 */
function unknownParameter(params: URLSearchParams, known: readonly string[]): RunQueryError | undefined {
  for (const name of params.keys()) {
    if (!known.includes(name)) {
      return refuse(name, `Unknown query parameter ${JSON.stringify(name.slice(0, 64))}; this route knows ${known.join(', ')}`)
    }
  }
  return undefined
}

/** A time before an offset whose `+` arrived as a space (`+` unencoded in a query is a space). */
const PLUS_AS_SPACE = /T[\d:.]+ \d{2}:\d{2}$/

/**
 * The instant of a query bound, rounded UP to the millisecond: instants are stored to the
 * millisecond, so `createdAt >= X` and `createdAt < X` for an X between two milliseconds are
 * `createdAt >= ceil(X)` and `createdAt < ceil(X)`. One rule for both stores.
 */
function instant(params: URLSearchParams, name: string): Parsed<Date | undefined> {
  const value = single(params, name)
  if (!value.ok || value.value === undefined) return value as Parsed<undefined>
  const text = value.value
  if (!isTimestamp(text)) {
    const hint = PLUS_AS_SPACE.test(text) ? '; a `+` in a query string arrives as a space: URL-encode it as `%2B`' : ''
    return refuse(name, `\`${name}\` must be a timestamp ${TIMESTAMP_FORMAT}, got ${JSON.stringify(text.slice(0, 64))}${hint}`)
  }
  const floor = timestampToDate(text)
  // The fraction's digits after the millisecond (the only `.` of a timestamp is the fraction's).
  const beyondMillis = /\.\d{3}(\d+)/.exec(text)?.[1] ?? ''
  return { ok: true, value: /[1-9]/.test(beyondMillis) ? new Date(floor.getTime() + 1) : floor }
}

/**
 * The filters of a list, count or set stream query: repeated `status` (any of them), `pipeline`,
 * repeated `tag` (all of them), `createdAfter` (inclusive) and `createdBefore` (exclusive), both
 * rounded up to the millisecond. Parameters other than these are not checked here.
 */
export function parseRunListFilter(params: URLSearchParams): Parsed<RunListFilter> {
  const statuses = params.getAll('status')
  for (const status of statuses) {
    if (!RunStatus.safeParse(status).success) {
      return refuse('status', `\`status\` must be one of ${RunStatus.options.join(', ')}; got ${JSON.stringify(status.slice(0, 64))}`)
    }
  }
  const tags = params.getAll('tag')
  for (const tag of tags) {
    const problem = tagProblem(tag)
    if (problem) return refuse('tag', `\`tag\` ${problem}`)
  }
  const pipeline = single(params, 'pipeline')
  if (!pipeline.ok) return pipeline
  if (pipeline.value === '') return refuse('pipeline', '`pipeline` must not be empty')
  const createdAfter = instant(params, 'createdAfter')
  if (!createdAfter.ok) return createdAfter
  const createdBefore = instant(params, 'createdBefore')
  if (!createdBefore.ok) return createdBefore
  const filter: RunListFilter = {
    ...(statuses.length > 0 && { statuses: [...new Set(statuses)] as RunStatus[] }),
    ...(tags.length > 0 && { tags: [...new Set(tags)] }),
    ...(pipeline.value !== undefined && { pipeline: pipeline.value }),
    ...(createdAfter.value && { createdAfter: createdAfter.value }),
    ...(createdBefore.value && { createdBefore: createdBefore.value }),
  }
  return { ok: true, value: filter }
}

/**
 * Parses the query of `GET {base}/runs`: the filters, `limit` (1..200, default 50) and `cursor`;
 * any other parameter is refused naming it.
 */
export function parseRunListQuery(params: URLSearchParams): Parsed<RunListQuery> {
  const unknown = unknownParameter(params, RUN_LIST_PARAMETERS)
  if (unknown) return unknown
  const unstorable = unstorableParameter(params)
  if (unstorable) return unstorable
  const filter = parseRunListFilter(params)
  if (!filter.ok) return filter
  const limit = listLimit(params)
  if (!limit.ok) return limit
  const cursor = single(params, 'cursor')
  if (!cursor.ok) return refuse('cursor', cursor.message, 'invalid_cursor')
  return { ok: true, value: { filter: filter.value, limit: limit.value, cursor: cursor.value } }
}

/** `limit` as lists take it: 1..200, default 50. */
function listLimit(params: URLSearchParams): Parsed<number> {
  const limitText = single(params, 'limit')
  if (!limitText.ok) return limitText
  if (limitText.value === undefined) return { ok: true, value: DEFAULT_LIST_LIMIT }
  if (!/^\d{1,4}$/.test(limitText.value) || Number(limitText.value) < 1 || Number(limitText.value) > MAX_LIST_LIMIT) {
    return refuse('limit', `\`limit\` must be an integer from 1 to ${MAX_LIST_LIMIT}`)
  }
  return { ok: true, value: Number(limitText.value) }
}

/**
 * Parses the query of `GET {base}/events` (a set stream): the list's filters with `limit`
 * (1..200, default 50), or repeated `run` (1..50 ids; more is refused naming `run`), never both;
 * `view` `full` (default) or `summary`. Any other parameter is refused naming it. An empty
 * `run=` is refused naming `run`; an id outside the run id rule (NUL included) is refused with
 * 404 `run_not_found`, as the single-run stream answers such an id in its path.
 */
export function parseSetStreamQuery(params: URLSearchParams): Parsed<SetStreamQuery> {
  const unknown = unknownParameter(params, SET_STREAM_PARAMETERS)
  if (unknown) return unknown
  const unstorable = unstorableParameter(params)
  if (unstorable) return unstorable
  const viewText = single(params, 'view')
  if (!viewText.ok) return viewText
  const view = viewText.value ?? 'full'
  if (!SET_STREAM_VIEWS.includes(view as SetStreamView)) {
    return refuse('view', `\`view\` must be one of ${SET_STREAM_VIEWS.join(', ')}; got ${JSON.stringify(view.slice(0, 64))}`)
  }
  const runs = params.getAll('run')
  if (runs.length > 0) {
    const filterGiven = [...RUN_FILTER_PARAMETERS, 'limit'].find((name) => params.has(name))
    if (filterGiven !== undefined) {
      return refuse(filterGiven, `\`run\` names the stream's runs; it cannot be combined with \`${filterGiven}\` (use either the list's filters or \`run\`)`)
    }
    if (runs.some((id) => id === '')) return refuse('run', '`run` must not be empty')
    // The run id rule, as a path's run id: POST /runs creates no run with such an id, so none has it.
    const impossible = runs.find((id): boolean => !isRunId(id))
    if (impossible !== undefined) {
      return refuse('run', `No pipeline run has the id given as run=${JSON.stringify(impossible.slice(0, 128))}`, 'run_not_found')
    }
    const runIds = [...new Set(runs)]
    if (runIds.length > MAX_SET_STREAM_RUNS) {
      return refuse('run', `\`run\` names at most ${MAX_SET_STREAM_RUNS} runs; got ${runIds.length}. Follow more with the list's filters (a tag) instead`)
    }
    return { ok: true, value: { kind: 'runs', runIds, view: view as SetStreamView } }
  }
  const filter = parseRunListFilter(params)
  if (!filter.ok) return filter
  const limit = listLimit(params)
  if (!limit.ok) return limit
  return { ok: true, value: { kind: 'filter', filter: filter.value, limit: limit.value, view: view as SetStreamView } }
}

/**
 * Parses the query of `GET {base}/runs/counts`: `groupBy` (required) and the filters; any other
 * parameter is refused naming it.
 */
export function parseRunCountsQuery(params: URLSearchParams): Parsed<RunCountsQuery> {
  const unknown = unknownParameter(params, RUN_COUNTS_PARAMETERS)
  if (unknown) return unknown
  const unstorable = unstorableParameter(params)
  if (unstorable) return unstorable
  const groupBy = single(params, 'groupBy')
  if (!groupBy.ok) return groupBy
  if (groupBy.value === undefined) return refuse('groupBy', `\`groupBy\` is required: one of ${RUN_COUNTS_GROUP_BY.join(', ')}`)
  if (!RUN_COUNTS_GROUP_BY.includes(groupBy.value as RunCountsGroupBy)) {
    return refuse('groupBy', `\`groupBy\` must be one of ${RUN_COUNTS_GROUP_BY.join(', ')}; got ${JSON.stringify(groupBy.value.slice(0, 64))}`)
  }
  const filter = parseRunListFilter(params)
  if (!filter.ok) return filter
  return { ok: true, value: { filter: filter.value, groupBy: groupBy.value as RunCountsGroupBy } }
}

/**
 * Parses the query of `GET {base}/runs/stats`: `pipeline` (once, not empty) and `days` (an
 * integer 1..90 written in digits, default 7); any other parameter is refused naming it.
 */
export function parseRunStatsQuery(params: URLSearchParams): Parsed<RunStatsQuery> {
  const unknown = unknownParameter(params, RUN_STATS_PARAMETERS)
  if (unknown) return unknown
  const unstorable = unstorableParameter(params)
  if (unstorable) return unstorable
  const pipeline = single(params, 'pipeline')
  if (!pipeline.ok) return pipeline
  if (pipeline.value === '') return refuse('pipeline', '`pipeline` must not be empty')
  const daysText = single(params, 'days')
  if (!daysText.ok) return daysText
  let days = DEFAULT_STATS_DAYS
  if (daysText.value !== undefined) {
    if (!/^\d{1,3}$/.test(daysText.value) || Number(daysText.value) < 1 || Number(daysText.value) > MAX_STATS_DAYS) {
      return refuse('days', `\`days\` must be an integer from 1 to ${MAX_STATS_DAYS}, got ${JSON.stringify(daysText.value.slice(0, 64))}`)
    }
    days = Number(daysText.value)
  }
  return { ok: true, value: { pipeline: pipeline.value, days } }
}

/** The filters and scope in one canonical text: sets sorted, instants as milliseconds. */
function bindingText(filter: RunListFilter, scope: RunScope): string {
  return JSON.stringify([...canonicalFilter(filter), canonicalSet(scope.tags), scope.pipeline ?? null])
}

/** A set in canonical form: distinct values sorted, `null` for none given. */
function canonicalSet(values: readonly string[] | undefined): string[] | null {
  return values ? [...new Set(values)].sort() : null
}

/**
 * A filter's fields in canonical form, for keys that must not depend on how the filter was
 * written: sets sorted and distinct, instants as milliseconds, `null` for a field not given.
 */
export function canonicalFilter(filter: RunListFilter): unknown[] {
  return [
    canonicalSet(filter.statuses),
    filter.pipeline ?? null,
    canonicalSet(filter.tags),
    filter.createdAfter?.getTime() ?? null,
    filter.createdBefore?.getTime() ?? null,
  ]
}

/**
 * A 53-bit hash (cyrb53) of the cursor's binding, as base 36. Not a secret: a cursor is only a
 * position, and the caller's scope is ANDed into every query whatever the cursor says; the
 * binding only tells a cursor used with other filters or another scope from a good one.
 */
function bindingHash(text: string): string {
  let h1 = 0xdeadbeef
  let h2 = 0x41c6ce57
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i)
    h1 = Math.imul(h1 ^ code, 2654435761)
    h2 = Math.imul(h2 ^ code, 1597334677)
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909)
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909)
  return (4294967296 * (2097151 & h2) + (h1 >>> 0)).toString(36)
}

const utf8 = new TextEncoder()
const strictUtf8 = new TextDecoder('utf-8', { fatal: true })

/** base64url (no padding) of the text's UTF-8 bytes: any run id, whatever its characters. */
function toBase64Url(text: string): string {
  let binary = ''
  for (const byte of utf8.encode(text)) binary += String.fromCharCode(byte)
  return btoa(binary).replaceAll('+', '-').replaceAll('/', '_').replace(/=+$/, '')
}

/** The text whose UTF-8 bytes `text` is the base64url of, or `undefined` (not base64url, not UTF-8). */
function fromBase64Url(text: string): string | undefined {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) return undefined
  try {
    const binary = atob(text.replaceAll('-', '+').replaceAll('_', '/'))
    return strictUtf8.decode(Uint8Array.from(binary, (char) => char.charCodeAt(0)))
  } catch {
    return undefined
  }
}

/**
 * The opaque cursor of the page after `position`: base64url of the UTF-8 JSON of the position
 * (createdAt in epoch milliseconds, id) and a hash of the filters and the scope it is bound to.
 * UTF-8, because a run inserted by an app's own code may have any id.
 */
export function encodeRunListCursor(position: RunListPosition, filter: RunListFilter, scope: RunScope): string {
  return toBase64Url(JSON.stringify({ t: position.createdAt.getTime(), i: position.id, h: bindingHash(bindingText(filter, scope)) }))
}

/**
 * The position a cursor names, if it was made for these filters and this scope; otherwise a
 * refusal `invalid_cursor` naming `cursor` (malformed, or made for another query or caller).
 */
export function decodeRunListCursor(cursor: string, filter: RunListFilter, scope: RunScope): Parsed<RunListPosition> {
  const malformed = refuse('cursor', 'The cursor is malformed; use the `nextCursor` of a list as it was sent', 'invalid_cursor')
  const text = fromBase64Url(cursor)
  if (text === undefined) return malformed
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return malformed
  }
  const { t, i, h } = (value ?? {}) as { t?: unknown; i?: unknown; h?: unknown }
  if (typeof t !== 'number' || !Number.isSafeInteger(t) || typeof i !== 'string' || typeof h !== 'string') return malformed
  // The id goes into the keyset query: storable text (any stored id is), as every query parameter.
  if (!isStorableText(i)) return malformed
  const createdAt = new Date(t)
  if (Number.isNaN(createdAt.getTime())) return malformed
  if (h !== bindingHash(bindingText(filter, scope))) {
    return refuse('cursor', 'The cursor belongs to a list with other filters (or another caller); start again without it', 'invalid_cursor')
  }
  return { ok: true, value: { createdAt, id: i } }
}
