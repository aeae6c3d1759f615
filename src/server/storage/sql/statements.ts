/**
 * The store's statements, each built once from the quoted names when the store is created (one
 * named function per statement in this folder, grouped by what calls it).
 */
import type { TableNames } from '../table-names.js'
import { readRunStageSql, writeRunStageByDigestSql, writeRunStageKeepingSql, writeRunStageSql } from './stage-update.js'
import { insertRunByDigestSql, insertRunKeepingSql, insertRunSql, readRunSql, readRunStagesSql, readVersionsSql, touchRunSql, writeRunSql } from './runs.js'
import { deleteFinishedRunsSql, listStaleRunsSql, writeRunIfSilentSql } from './sweeps.js'
import { deleteOutputChunksSql, readOutputChunkSql, readOutputChunksSinceSql, readStreamedOutputSql, saveOutputChunkSql, writeRunStageChunkSql, writeRunStageDropChunksSql } from './output-chunks.js'
import { lockRunSql, readStageSql, readStagesSql, saveRunSql, saveStageSql } from './transaction.js'

/** The SQL text of every statement of one store. */
export interface StoreStatements {
  readonly readRunStage: string
  readonly writeRunStage: string
  /** `writeRunStage` that keeps the catalogue's text under its digest (`$31`), for a store that sends it inline. */
  readonly writeRunStageKeeping: string
  /** `writeRunStage` with the catalogue by its digest alone (`$31`), for a store that sends it inline. */
  readonly writeRunStageByDigest: string
  readonly readRun: string
  readonly readRunStages: string
  readonly readRunStagesWithoutText: string
  readonly readRunsStages: string
  readonly readRunsStagesWithoutText: string
  readonly readVersions: string
  readonly insertRun: string
  /** `insertRun` that keeps the catalogue's text under its digest (`$13`), for a store that sends it inline. */
  readonly insertRunKeeping: string
  /** `insertRun` with the catalogue by its digest alone (`$13`), for a store that sends it inline. */
  readonly insertRunByDigest: string
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
  readonly writeRunStageChunk: string
  readonly writeRunStageDropChunks: string
  readonly readOutputChunk: string
  readonly readOutputChunksSince: string
  readonly readStreamedOutput: string
  readonly saveOutputChunk: string
  readonly deleteOutputChunks: string
}

/** Every statement for `names`. None notifies: LISTEN mode's notifications go after commit, in batches (`notify-batcher.ts`). */
export function buildStatements(names: TableNames): StoreStatements {
  return {
    readRunStage: readRunStageSql(names),
    writeRunStage: writeRunStageSql(names),
    writeRunStageKeeping: writeRunStageKeepingSql(names),
    writeRunStageByDigest: writeRunStageByDigestSql(names),
    readRun: readRunSql(names),
    readRunStages: readRunStagesSql(names),
    readRunStagesWithoutText: readRunStagesSql(names, false),
    readRunsStages: readRunStagesSql(names, true, true),
    readRunsStagesWithoutText: readRunStagesSql(names, false, true),
    readVersions: readVersionsSql(names),
    insertRun: insertRunSql(names),
    insertRunKeeping: insertRunKeepingSql(names),
    insertRunByDigest: insertRunByDigestSql(names),
    writeRun: writeRunSql(names),
    touchRun: touchRunSql(names),
    listStaleRuns: listStaleRunsSql(names),
    writeRunIfSilent: writeRunIfSilentSql(names),
    deleteFinishedRuns: deleteFinishedRunsSql(names),
    lockRun: lockRunSql(names),
    saveRun: saveRunSql(names),
    readStage: readStageSql(names),
    readStages: readStagesSql(names),
    saveStage: saveStageSql(names),
    writeRunStageChunk: writeRunStageChunkSql(names),
    writeRunStageDropChunks: writeRunStageDropChunksSql(names),
    readOutputChunk: readOutputChunkSql(names),
    readOutputChunksSince: readOutputChunksSinceSql(names),
    readStreamedOutput: readStreamedOutputSql(names),
    saveOutputChunk: saveOutputChunkSql(names),
    deleteOutputChunks: deleteOutputChunksSql(names),
  }
}
