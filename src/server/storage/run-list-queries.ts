/**
 * The PostgreSQL store's lists, set-stream windows, counts and stage stats (`Store.listRuns`, `Store.listRunWindow`, `Store.countRuns`, `Store.runStats`): the statements
 * of `sql/run-list.ts` sent through the store's executor, their rows as the core's list items.
 */
import { matchesNothing, type RunCountRequest, type RunListItem, type RunListRequest, type RunWindowEntry } from '../../core/run-list.js'
import type { SqlExecutor } from './adapters/sql-executor.js'
import { toRunState, type VersionedRunRow } from './rows.js'
import { countRunsStatement, listRunsStatement, listRunWindowStatement, runStatsStatement } from './sql/run-list.js'
import { percentileMs, type RunStatsRequest } from '../../core/run-stats.js'
import type { StageStats } from '../../contract/run-stats.js'
import type { TableNames } from './table-names.js'

/** A run of a list with its stage rows per status and its current stage (`listRunsStatement`). */
type RunListRow = VersionedRunRow & {
  n_PROCESSING: number | string
  n_COMPLETED: number | string
  n_FAILED: number | string
  n_CANCELLED: number | string
  currentStage: number | string | null
}

/** A list row as the core's list item. */
function toRunListItemFromRow(row: RunListRow): RunListItem {
  return {
    run: toRunState(row),
    version: Number(row.version),
    stageRows: { PROCESSING: Number(row.n_PROCESSING), COMPLETED: Number(row.n_COMPLETED), FAILED: Number(row.n_FAILED), CANCELLED: Number(row.n_CANCELLED) },
    currentStage: row.currentStage === null ? null : Number(row.currentStage),
  }
}

/** The list and count methods of one store. */
export interface RunListQueries {
  listRuns(request: RunListRequest): Promise<RunListItem[]>
  listRunWindow(request: RunListRequest): Promise<RunWindowEntry[]>
  countRuns(request: RunCountRequest): Promise<Record<string, number>>
  runStats(request: RunStatsRequest): Promise<StageStats[]>
}

/** A row of `runStatsStatement`: percentiles unrounded (float8), `null` without a counted stage. */
interface StageStatsRow {
  pipeline: string
  stageNumber: number | string
  name: string
  count: number | string
  failed: number | string
  p50: number | string | null
  p95: number | string | null
}

const percentileOf = (value: number | string | null): number | null => percentileMs(value === null ? null : Number(value))

/** Lists and counts through `sql` on the tables `names` quotes; a filter that matches nothing sends no statement. */
export function createRunListQueries(sql: SqlExecutor, names: TableNames): RunListQueries {
  return {
    async listRuns(request) {
      if (matchesNothing(request.filter)) return []
      const statement = listRunsStatement(names, request.filter, request.after, request.limit)
      return (await sql.query<RunListRow>(statement.text, statement.values)).map(toRunListItemFromRow)
    },
    async listRunWindow(request) {
      if (matchesNothing(request.filter)) return []
      const statement = listRunWindowStatement(names, request.filter, request.after, request.limit)
      const rows = await sql.query<{ id: string; version: number | string }>(statement.text, statement.values)
      return rows.map((row) => ({ id: row.id, version: Number(row.version) }))
    },
    async countRuns(request) {
      if (matchesNothing(request.filter)) return {}
      const statement = countRunsStatement(names, request)
      const rows = await sql.query<{ key: string; count: number | string }>(statement.text, statement.values)
      return Object.fromEntries(rows.map((row) => [row.key, Number(row.count)]))
    },
    async runStats(request) {
      if (matchesNothing(request.filter)) return []
      const statement = runStatsStatement(names, request)
      const rows = await sql.query<StageStatsRow>(statement.text, statement.values)
      return rows.map((row) => ({
        pipeline: row.pipeline,
        stageNumber: Number(row.stageNumber),
        name: row.name,
        count: Number(row.count),
        failed: Number(row.failed),
        p50Ms: percentileOf(row.p50),
        p95Ms: percentileOf(row.p95),
      }))
    },
  }
}
