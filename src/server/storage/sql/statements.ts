/**
 * The store's statements, each built once from the quoted names when the store is created (one
 * named function per statement in this folder, grouped by what calls it).
 */
import type { TableNames } from '../table-names.js'
import { readRunStageSql, writeRunStageSql } from './stage-update.js'
import { insertRunSql, readRunSql, readRunStagesSql, readVersionsSql, touchRunSql, writeRunSql } from './runs.js'
import { deleteFinishedRunsSql, listStaleRunsSql, writeRunIfSilentSql } from './sweeps.js'
import { lockRunSql, notifySql, readStageSql, readStagesSql, saveRunSql, saveStageSql } from './transaction.js'

/** The SQL text of every statement of one store. */
export interface StoreStatements {
  readonly readRunStage: string
  readonly writeRunStage: string
  readonly readRun: string
  readonly readRunStages: string
  readonly readVersions: string
  readonly insertRun: string
  readonly writeRun: string
  readonly touchRun: string
  readonly listStaleRuns: string
  readonly writeRunIfSilent: string
  readonly deleteFinishedRuns: string
  readonly lockRun: string
  readonly saveRun: string
  readonly readStage: string
  readonly readStages: string
  readonly saveStage: string
  readonly notify: string
}

/** Every statement for `names`; with `notify`, the writes also send `pg_notify` in the same statement. */
export function buildStatements(names: TableNames, notify: boolean): StoreStatements {
  return {
    readRunStage: readRunStageSql(names),
    writeRunStage: writeRunStageSql(names, notify),
    readRun: readRunSql(names),
    readRunStages: readRunStagesSql(names),
    readVersions: readVersionsSql(names),
    insertRun: insertRunSql(names),
    writeRun: writeRunSql(names, notify),
    touchRun: touchRunSql(names),
    listStaleRuns: listStaleRunsSql(names),
    writeRunIfSilent: writeRunIfSilentSql(names, notify),
    deleteFinishedRuns: deleteFinishedRunsSql(names),
    lockRun: lockRunSql(names),
    saveRun: saveRunSql(names),
    readStage: readStageSql(names),
    readStages: readStagesSql(names),
    saveStage: saveStageSql(names),
    notify: notifySql(),
  }
}
