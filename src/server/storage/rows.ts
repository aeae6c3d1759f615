/**
 * Row mappers: the rows the store's SQL returns (instants as epoch milliseconds, progress as
 * text, stage columns prefixed `s_`) as the core's state types.
 */
import type { StageProgress } from '../../contract/runner-control.js'
import type { StageCatalogue } from '../../contract/stages.js'
import type { RunStatus } from '../../contract/status.js'
import type { RunState, StageState } from '../../core/state.js'

/** An instant as the store's SQL returns it: epoch milliseconds (a float8, so a number; a string from a driver that returns text). */
export type Instant = number | string

/** A run row, as `runColumns` in `sql/columns.ts` selects it. */
export interface RunRow {
  id: string
  status: RunStatus
  error: string | null
  completedAt: Instant | null
  completionReceivedAt: Instant | null
  createdAt: Instant
  updatedAt: Instant
  lastActivityAt: Instant | null
  heartbeatIntervalMs: number | string | null
  pipeline: string
  /** json as text (drivers differ in how they return json); `NULL` also when its digest was among the known ones. */
  catalogue: string | null
  /** `md5` of the catalogue's text, from the reads that send known digests (`runColumns`); `NULL` without a catalogue. */
  catalogueDigest?: string | null
  /** text[]: an array from `pg`; PostgreSQL's array literal (`{a,b}`) from a driver that returns text. */
  tags: string[] | string
  /** jsonb as text. */
  metadata: string
  startedAt: Instant | null
}

/** A run row with its version. */
export type VersionedRunRow = RunRow & { version: number | string }

/** A stage's columns, as `stageColumns` in `sql/columns.ts` selects them; all `null` when a join found no stage. */
export interface StageColumns {
  s_stageName: string | null
  s_status: StageState['status'] | null
  s_output: string | null
  s_completedAt: Instant | null
  s_progress: string | null
  s_createdAt: Instant | null
  s_updatedAt: Instant | null
  s_startedAt: Instant | null
  s_attempt: number | string | null
  s_maxAttempts: number | string | null
  s_lastError: string | null
  s_nextRetryAt: Instant | null
  s_traceparent: string | null
  /** A `text[]`: an array, or its text form from a driver that does not parse arrays. */
  s_traceLinks: string[] | string | null
  s_outputSeq: number | string | null
  s_outputBytes: number | string | null
}

/** A run joined with one of its stages. */
export type RunStageRow = VersionedRunRow & StageColumns
/** A run joined with each of its stages, one row per stage (or one without), with the stage's streamed text when it shows it. */
export type RunStagesRow = VersionedRunRow & StageColumns & { s_stageNumber: number | null; s_streamed: string | null }
/** A stage on its own. */
export type StageRow = StageColumns & { s_stageNumber: number | string }

/** The stage in a joined row, or `undefined` when the join found none. */
export function stageOf(row: StageColumns, stageNumber: number): StageState | undefined {
  if (row.s_status === null) return undefined
  return {
    stageNumber,
    stageName: row.s_stageName as string,
    status: row.s_status,
    output: row.s_output,
    completedAt: toDate(row.s_completedAt),
    progress: row.s_progress === null ? null : (JSON.parse(row.s_progress) as StageProgress),
    createdAt: toDate(row.s_createdAt as Instant),
    updatedAt: toDate(row.s_updatedAt as Instant),
    startedAt: toDate(row.s_startedAt),
    attempt: row.s_attempt === null ? null : Number(row.s_attempt),
    maxAttempts: row.s_maxAttempts === null ? null : Number(row.s_maxAttempts),
    lastError: row.s_lastError,
    nextRetryAt: toDate(row.s_nextRetryAt),
    traceparent: row.s_traceparent,
    traceLinks: typeof row.s_traceLinks === 'string' ? parseTextArray(row.s_traceLinks) : (row.s_traceLinks ?? []),
    outputSeq: row.s_outputSeq === null || row.s_outputSeq === undefined ? null : Number(row.s_outputSeq),
    outputBytes: row.s_outputBytes === null || row.s_outputBytes === undefined ? null : Number(row.s_outputBytes),
  }
}

/** A stage row as the stage it holds. */
export function stageFromRow(row: StageRow): StageState {
  return stageOf(row, Number(row.s_stageNumber)) as StageState
}

/** A run row as the run it holds. */
export function toRunState(row: RunRow): RunState {
  return {
    id: row.id,
    status: row.status,
    error: row.error,
    completedAt: toDate(row.completedAt),
    completionReceivedAt: toDate(row.completionReceivedAt),
    createdAt: toDate(row.createdAt),
    updatedAt: toDate(row.updatedAt),
    lastActivityAt: toDate(row.lastActivityAt),
    heartbeatIntervalMs: row.heartbeatIntervalMs === null ? null : Number(row.heartbeatIntervalMs),
    pipeline: row.pipeline,
    catalogue: catalogueOfRow(row),
    tags: typeof row.tags === 'string' ? parseTextArray(row.tags) : row.tags,
    metadata: JSON.parse(row.metadata) as Record<string, unknown>,
    startedAt: toDate(row.startedAt),
  }
}

/**
 * The run's catalogue: parsed from its text (and remembered by its digest when the read gave one),
 * or, when the read left the text out, the one known by its digest.
 * @throws UnknownCatalogueDigest when the read left the text out for a digest no longer known
 *   (forgotten between the read's start and its end): the caller reads again without digests.
 */
function catalogueOfRow(row: RunRow): StageCatalogue | null {
  const digest = row.catalogueDigest ?? null
  if (row.catalogue !== null) {
    const catalogue = catalogueOfText(row.catalogue)
    if (digest !== null) rememberCatalogue(digest, catalogue)
    return catalogue
  }
  if (digest === null) return null
  const known = cataloguesByDigest.get(digest)
  if (known === undefined) throw new UnknownCatalogueDigest(digest)
  return known
}

/** A read left out a catalogue whose digest this process no longer knows (see {@link catalogueOfRow}). */
export class UnknownCatalogueDigest extends Error {
  constructor(digest: string) {
    super(`pipeline-status: a read left out catalogue ${digest}, which this process no longer knows`)
    this.name = 'UnknownCatalogueDigest'
  }
}

/** Catalogues by the digest of their stored text (`md5`), for the reads that leave known ones out. */
const cataloguesByDigest = new Map<string, StageCatalogue>()
/** At most this many are known; past it they are all forgotten (an app has a handful: one per pipeline version). */
const MAX_KNOWN_CATALOGUES = 32
/** The digests known, as the reads send them (made again only when one is learnt). */
let knownDigests: readonly string[] = []

function rememberCatalogue(digest: string, catalogue: StageCatalogue): void {
  if (cataloguesByDigest.get(digest) === catalogue) return
  if (cataloguesByDigest.size >= MAX_KNOWN_CATALOGUES) cataloguesByDigest.clear()
  cataloguesByDigest.set(digest, catalogue)
  knownDigests = [...cataloguesByDigest.keys()]
}

/** The digests of the catalogues this process knows: what a read sends so that it can leave them out. */
export function knownCatalogueDigests(): readonly string[] {
  return knownDigests
}

/** Catalogues by their stored text: a handful per app (one per pipeline version). */
const catalogues = new Map<string, StageCatalogue>()
const MAX_CATALOGUES = 256

/**
 * A run's stored catalogue, parsed once per distinct text and then the same frozen object for
 * every run that has it, so that what is derived from a catalogue (its status JSON, its schemas)
 * is cached by object, not rebuilt per read.
 */
function catalogueOfText(text: string): StageCatalogue {
  let catalogue = catalogues.get(text)
  if (catalogue === undefined) {
    const parsed = JSON.parse(text) as StageCatalogue
    catalogue = Object.freeze(parsed.map((stage) => Object.freeze({ number: stage.number, name: stage.name })))
    if (catalogues.size >= MAX_CATALOGUES) catalogues.clear()
    catalogues.set(text, catalogue)
  }
  return catalogue
}

/**
 * A PostgreSQL `text[]` in its text form (`{a,"b c","d\\"e"}`), for drivers that return arrays
 * as text: elements are unquoted words or double-quoted strings with backslash escapes.
 */
export function parseTextArray(literal: string): string[] {
  const body = literal.slice(1, -1)
  const items: string[] = []
  let i = 0
  while (i < body.length) {
    let item = ''
    if (body[i] === '"') {
      i++
      while (i < body.length && body[i] !== '"') {
        if (body[i] === '\\') i++
        item += body[i++]
      }
      i++
    } else {
      while (i < body.length && body[i] !== ',') item += body[i++]
    }
    items.push(item)
    i++ // the comma
  }
  return items
}

/** An instant read as epoch milliseconds (see `ms` in `sql/columns.ts`). */
export function toDate(value: Instant): Date
export function toDate(value: Instant | null): Date | null
export function toDate(value: Instant | null): Date | null {
  if (value === null) return null
  return new Date(Number(value))
}
