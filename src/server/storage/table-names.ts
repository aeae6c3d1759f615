/**
 * Name resolution: the quoted table and column names of the store's SQL, from the app's Prisma
 * client's data model (`@@map`, `@map`, `@@schema`), the `names` and `schema` options, else the
 * Prisma names.
 */
import type { RunState, StageState } from '../../core/state.js'
import { quoteIdentifier } from '../../internal/quote-identifier.js'

/** The columns of `PipelineRun` that the store reads and writes, by Prisma field name. */
export type PipelineRunField = keyof RunState | 'version'

/** The columns of `StageOutput` that the store reads and writes, by Prisma field name. */
export type StageOutputField = Exclude<keyof StageState, 'streamedOutput'> | 'id' | 'runId'

/** The columns of `StageOutputChunk` (streamed output) that the store reads and writes, by Prisma field name. */
export type StageOutputChunkField = 'runId' | 'stageNumber' | 'seq' | 'version' | 'text'

/** The columns of `PipelineCatalogue` (catalogues kept by digest) that the store reads and writes, by Prisma field name. */
export type PipelineCatalogueField = 'digest' | 'stages'

/**
 * Table and column names for {@link PrismaStoreOptions.names}, by Prisma model and field name.
 * Each missing entry is read from the client's data model, else taken as the Prisma name.
 */
export interface PrismaStoreNames {
  /** The `PipelineRun` model: its table (as in `@@map`) and its columns (as in `@map`). */
  PipelineRun?: { table?: string | undefined; columns?: Partial<Record<PipelineRunField, string>> | undefined } | undefined
  /** The `StageOutput` model: its table (as in `@@map`) and its columns (as in `@map`). */
  StageOutput?: { table?: string | undefined; columns?: Partial<Record<StageOutputField, string>> | undefined } | undefined
  /** The `StageOutputChunk` model (streamed output): its table (as in `@@map`) and its columns (as in `@map`). */
  StageOutputChunk?: { table?: string | undefined; columns?: Partial<Record<StageOutputChunkField, string>> | undefined } | undefined
  /**
   * The `PipelineCatalogue` model (each pipeline's catalogue kept once under its digest): its
   * table (as in `@@map`) and its columns (as in `@map`). A store that finds no such table sends
   * each run's catalogue whole and says so once (docs/operations.md).
   */
  PipelineCatalogue?: { table?: string | undefined; columns?: Partial<Record<PipelineCatalogueField, string>> | undefined } | undefined
}

/** Quoted table and column names of both models, as the statements in `sql/` take them. */
export interface TableNames {
  /** The schema the run table's name is qualified with (unquoted), or `undefined` when its name is not qualified. */
  schema: string | undefined
  runTable: string
  stageTable: string
  run: Record<PipelineRunField, string>
  stage: Record<StageOutputField, string>
  chunkTable: string
  chunk: Record<StageOutputChunkField, string>
  /** The table of catalogues kept by digest: resolved like the others, whether or not it exists (the store asks before it uses it). */
  catalogueTable: string
  catalogue: Record<PipelineCatalogueField, string>
}

const RUN_FIELDS: readonly PipelineRunField[] = [
  'id',
  'status',
  'error',
  'completedAt',
  'completionReceivedAt',
  'createdAt',
  'updatedAt',
  'version',
  'lastActivityAt',
  'heartbeatIntervalMs',
  'pipeline',
  'catalogue',
  'tags',
  'metadata',
  'startedAt',
]
const STAGE_FIELDS: readonly StageOutputField[] = [
  'id',
  'runId',
  'stageNumber',
  'stageName',
  'status',
  'output',
  'completedAt',
  'progress',
  'createdAt',
  'updatedAt',
  'startedAt',
  'attempt',
  'maxAttempts',
  'lastError',
  'nextRetryAt',
  'traceparent',
  'traceLinks',
  'outputSeq',
  'outputBytes',
]
const CHUNK_FIELDS: readonly StageOutputChunkField[] = ['runId', 'stageNumber', 'seq', 'version', 'text']
const CATALOGUE_FIELDS: readonly PipelineCatalogueField[] = ['digest', 'stages']

type Model = 'PipelineRun' | 'StageOutput' | 'StageOutputChunk' | 'PipelineCatalogue'

/** The part of a Prisma 7 client's runtime data model that holds `@@map`, `@map` and `@@schema`. */
interface RuntimeModel {
  dbName?: string | null
  schema?: string | null
  fields?: Array<{ name: string; dbName?: string | null }>
}

/** The quoted names the store's SQL uses, resolved once when the store is created. */
export function resolveTableNames(
  prisma: object,
  options: { schema?: string | undefined; names?: PrismaStoreNames | undefined },
): TableNames {
  // Not part of Prisma's typed API, so read defensively: a client without it gets the Prisma names.
  const models = (prisma as { _runtimeDataModel?: { models?: Record<string, RuntimeModel | undefined> } })._runtimeDataModel?.models
  const table = (model: Model): string => {
    const runtime = models?.[model]
    const name = options.names?.[model]?.table ?? runtime?.dbName ?? model
    const schema = runtime?.schema ?? options.schema
    return schema ? `${quoteIdentifier(schema)}.${quoteIdentifier(name)}` : quoteIdentifier(name)
  }
  const columns = <F extends string>(model: Model, fields: readonly F[], explicit: Partial<Record<F, string>> | undefined) => {
    const runtimeFields = models?.[model]?.fields ?? []
    const result = {} as Record<F, string>
    for (const field of fields) {
      const mapped = explicit?.[field] ?? runtimeFields.find((candidate) => candidate.name === field)?.dbName ?? field
      result[field] = quoteIdentifier(mapped)
    }
    return result
  }
  return {
    schema: (models?.['PipelineRun']?.schema ?? options.schema) || undefined,
    runTable: table('PipelineRun'),
    stageTable: table('StageOutput'),
    run: columns('PipelineRun', RUN_FIELDS, options.names?.PipelineRun?.columns),
    stage: columns('StageOutput', STAGE_FIELDS, options.names?.StageOutput?.columns),
    chunkTable: table('StageOutputChunk'),
    chunk: columns('StageOutputChunk', CHUNK_FIELDS, options.names?.StageOutputChunk?.columns),
    catalogueTable: table('PipelineCatalogue'),
    catalogue: columns('PipelineCatalogue', CATALOGUE_FIELDS, options.names?.PipelineCatalogue?.columns),
  }
}
