/**
 * The statements of runs as a collection: a page of runs with what their stages add up to, and
 * counts per status or pipeline. The text depends on which filters are given (a condition per
 * given filter, none for the others), so every shape gets a plan of its own instead of one
 * generic plan full of `$n IS NULL OR …`; the values are always bound parameters. Ids compare and
 * sort `COLLATE "C"` (JS code-unit order), served by the `(createdAt DESC, id COLLATE "C" DESC)`
 * index of the migration `run_list_indexes`; tags by `@>`, served by the GIN index.
 */
import type { RunListFilter } from '../../../contract/run-list.js'
import { RunStatus } from '../../../contract/status.js'
import type { RunListPosition } from '../../../contract/run-list-query.js'
import type { RunCountRequest } from '../../../core/run-list.js'
import { type RunStatsRequest, STATS_PERCENTILES } from '../../../core/run-stats.js'
import type { TableNames } from '../table-names.js'
import { runColumns } from './columns.js'
import { instant } from './parameters.js'

/** A statement and its parameters. */
export interface BoundStatement {
  readonly text: string
  readonly values: unknown[]
}

function statusLiteral(status: string): string {
  if (!RunStatus.safeParse(status).success) throw new TypeError(`Not a run status: ${JSON.stringify(status)}`)
  return `'${status}'`
}

/** The WHERE conditions of a filter (and a keyset position) on alias `r`, with their values. */
function whereOf({ run: r }: TableNames, filter: RunListFilter, after: RunListPosition | undefined): BoundStatement {
  const conditions: string[] = []
  const values: unknown[] = []
  const bind = (value: unknown) => {
    values.push(value)
    return `$${values.length}`
  }
  // Statuses as literals of the column's own enum (whatever its mapped type is called), so the
  // planner compares enums and can use the (status, …) index; they are RunStatus values, checked.
  if (filter.statuses !== undefined) conditions.push(`r.${r.status} IN (${filter.statuses.map(statusLiteral).join(', ')})`)
  if (filter.pipeline !== undefined) conditions.push(`r.${r.pipeline} = ${bind(filter.pipeline)}`)
  if (filter.tags !== undefined && filter.tags.length > 0) conditions.push(`r.${r.tags} @> ${bind([...filter.tags])}::text[]`)
  if (filter.createdAfter !== undefined) conditions.push(`r.${r.createdAt} >= ${bind(instant(filter.createdAfter))}::timestamptz`)
  if (filter.createdBefore !== undefined) conditions.push(`r.${r.createdAt} < ${bind(instant(filter.createdBefore))}::timestamptz`)
  if (after !== undefined) {
    // A row comparison in the index's order: what comes after the position, newest first.
    conditions.push(`(r.${r.createdAt}, r.${r.id} COLLATE "C") < (${bind(instant(after.createdAt))}::timestamptz, ${bind(after.id)}::text COLLATE "C")`)
  }
  return { text: conditions.length === 0 ? '' : ` WHERE ${conditions.join(' AND ')}`, values }
}

/**
 * A page of runs: the run's columns (as `runColumns`), its stored stage rows per status and its
 * highest-numbered PROCESSING stage, from a LATERAL aggregate over the run's stages (one index
 * range of `(runId, stageNumber)` per listed run, only for the rows of the page).
 */
export function listRunsStatement(names: TableNames, filter: RunListFilter, after: RunListPosition | undefined, limit: number): BoundStatement {
  const { runTable, stageTable, run: r, stage: s } = names
  const where = whereOf(names, filter, after)
  const count = (status: string) => `count(*) FILTER (WHERE s.${s.status}::text = '${status}')::int AS "n_${status}"`
  const text =
    `SELECT ${runColumns(names, 'page')}, sc.* FROM (SELECT r.* FROM ${runTable} r${where.text} ` +
    `ORDER BY r.${r.createdAt} DESC, r.${r.id} COLLATE "C" DESC LIMIT $${where.values.length + 1}) page ` +
    `CROSS JOIN LATERAL (SELECT ${['PROCESSING', 'COMPLETED', 'FAILED', 'CANCELLED'].map(count).join(', ')}, ` +
    `max(s.${s.stageNumber}) FILTER (WHERE s.${s.status}::text = 'PROCESSING') AS "currentStage" ` +
    `FROM ${stageTable} s WHERE s.${s.runId} = page.${r.id}) sc ` +
    `ORDER BY page.${r.createdAt} DESC, page.${r.id} COLLATE "C" DESC`
  return { text, values: [...where.values, limit] }
}

/**
 * A set stream's window: the ids and versions of the runs `listRunsStatement` would list, without
 * the stages' aggregate: one range of the `(createdAt DESC, id COLLATE "C" DESC)` index (or of the
 * status / GIN index for those filters), at most `limit` rows.
 */
export function listRunWindowStatement(names: TableNames, filter: RunListFilter, after: RunListPosition | undefined, limit: number): BoundStatement {
  const { runTable, run: r } = names
  const where = whereOf(names, filter, after)
  const text =
    `SELECT r.${r.id} AS "id", r.${r.version} AS "version" FROM ${runTable} r${where.text} ` +
    `ORDER BY r.${r.createdAt} DESC, r.${r.id} COLLATE "C" DESC LIMIT $${where.values.length + 1}`
  return { text, values: [...where.values, limit] }
}

/** Runs per status or per pipeline among those matching the filter. */
export function countRunsStatement(names: TableNames, request: RunCountRequest): BoundStatement {
  const { runTable, run: r } = names
  const where = whereOf(names, request.filter, undefined)
  // Grouped by the column itself (the enum, not its text: no cast per row), cast once per group.
  const key = request.groupBy === 'status' ? `r.${r.status}` : `r.${r.pipeline}`
  return { text: `SELECT ${key}::text AS "key", count(*)::int AS "count" FROM ${runTable} r${where.text} GROUP BY ${key}`, values: where.values }
}

/**
 * Stage statistics (`Store.runStats`) in one statement: the stages of the filtered runs whose
 * `completedAt` is at or after `since` (a bound instant, so no session TimeZone is involved),
 * grouped by the run's pipeline and the stage number: `count` and `percentile_cont` 0.5 / 0.95 of
 * the durations in milliseconds (exact doubles for timestamptz(3)) over COMPLETED stages with a
 * `startedAt`, `failed` over FAILED ones, the name of the newest run's stage (`createdAt`, then id
 * `COLLATE "C"`). The percentiles come back unrounded; the store rounds them with the core's rule.
 */
export function runStatsStatement(names: TableNames, request: RunStatsRequest): BoundStatement {
  const { runTable, stageTable, run: r, stage: s } = names
  const where = whereOf(names, request.filter, undefined)
  const since = `$${where.values.length + 1}`
  const completed = `s.${s.status}::text = 'COMPLETED'`
  const duration = `(extract(epoch FROM s.${s.completedAt} - s.${s.startedAt}) * 1000)::float8`
  const percentile = (fraction: number) => `percentile_cont(${fraction}) WITHIN GROUP (ORDER BY ${duration}) FILTER (WHERE ${completed})`
  const conditions = [
    `s.${s.completedAt} >= ${since}::timestamptz`,
    `s.${s.status} IN ('COMPLETED', 'FAILED')`,
    `(s.${s.status}::text = 'FAILED' OR s.${s.startedAt} IS NOT NULL)`,
  ]
  const text =
    `SELECT r.${r.pipeline} AS "pipeline", s.${s.stageNumber} AS "stageNumber", ` +
    `(array_agg(s.${s.stageName} ORDER BY r.${r.createdAt} DESC, r.${r.id} COLLATE "C" DESC))[1] AS "name", ` +
    `count(*) FILTER (WHERE ${completed})::int AS "count", count(*) FILTER (WHERE s.${s.status}::text = 'FAILED')::int AS "failed", ` +
    `${percentile(STATS_PERCENTILES.p50Ms)} AS "p50", ${percentile(STATS_PERCENTILES.p95Ms)} AS "p95" ` +
    `FROM ${stageTable} s JOIN ${runTable} r ON r.${r.id} = s.${s.runId}` +
    `${where.text === '' ? ' WHERE ' : `${where.text} AND `}${conditions.join(' AND ')} ` +
    `GROUP BY r.${r.pipeline}, s.${s.stageNumber} ORDER BY r.${r.pipeline} COLLATE "C", s.${s.stageNumber}`
  return { text, values: [...where.values, instant(request.since)] }
}
