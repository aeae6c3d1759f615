/**
 * The bound parameters of the statements: instants as ISO text, a stage's values and a run's
 * conditional write, in the order the SQL numbers them.
 */
import { isFinalStatus, RunStatus } from '../../../contract/status.js'
import type { RunWrite, StageState } from '../../../core/state.js'

/** `PENDING` and `PROCESSING`: the statuses the `(status, updatedAt)` index narrows stale-run listings to. */
export const UNFINISHED_STATUSES: RunStatus[] = RunStatus.options.filter((status) => !isFinalStatus(status))

/**
 * An instant as a bound parameter: ISO 8601 text with `Z`, cast to `timestamptz` by the SQL, so
 * the same instant is stored whatever the session's TimeZone and however a driver sends a `Date`.
 */
export function instant(value: Date | null | undefined): string | null {
  return value == null ? null : value.toISOString()
}

/** The stage values in the order `stageInsert` binds them; `id` is what Prisma's @default(uuid()) would fill in. */
export function stageValues(stage: StageState): unknown[] {
  return [
    crypto.randomUUID(),
    stage.stageNumber,
    stage.stageName,
    stage.status,
    stage.output,
    instant(stage.completedAt),
    stage.progress ? JSON.stringify(stage.progress) : null,
    instant(stage.createdAt),
    instant(stage.updatedAt),
    // The state machine always sets it; a stage of a custom caller without it starts at its creation.
    instant(stage.startedAt ?? stage.createdAt),
    stage.attempt ?? null,
    stage.maxAttempts ?? null,
    stage.lastError ?? null,
    instant(stage.nextRetryAt),
    stage.traceparent ?? null,
    [...(stage.traceLinks ?? [])],
    stage.outputSeq ?? null,
    stage.outputBytes ?? null,
  ]
}

/**
 * The run's parameters of a conditional write (`$1`–`$12`), in the order of every statement that
 * takes them: the status fields and versions, then `runColumnValues` of the write's own columns, then its `startedAt`.
 */
export function runWriteValues(write: RunWrite): unknown[] {
  const { run } = write
  return [
    run.id,
    write.expectedVersion,
    run.status,
    run.error,
    instant(run.completedAt),
    instant(run.completionReceivedAt),
    instant(run.updatedAt),
    write.version,
    ...runColumnValues(write),
    instant(run.startedAt),
  ]
}

/** The catalogue, tags and metadata of `runLabelsUpdate`: each `null` (left alone) unless given. */
export function runColumnValues(columns: Pick<RunWrite, 'catalogue' | 'tags' | 'metadata'>): unknown[] {
  return [
    columns.catalogue ? catalogueJson(columns.catalogue) : null,
    columns.tags === undefined ? null : [...columns.tags],
    columns.metadata === undefined ? null : JSON.stringify(columns.metadata),
  ]
}

/**
 * A catalogue as JSON text, made once per catalogue object: each run's first update stores its
 * pipeline's catalogue (the same configured object every time; ~6 KB to stringify for 200
 * stages). Catalogues are never changed once given, which the answers' views rely on the same
 * way (`server/pipelines.ts`, cached per catalogue object).
 */
export function catalogueJson(catalogue: NonNullable<RunWrite['catalogue']>): string {
  let text = catalogueTexts.get(catalogue)
  if (text === undefined) {
    text = JSON.stringify(catalogue)
    catalogueTexts.set(catalogue, text)
  }
  return text
}

const catalogueTexts = new WeakMap<object, string>()

/**
 * A catalogue's key in `"PipelineCatalogue"` (the write function's `$31`): SHA-256 of its JSON
 * text as `runColumnValues` sends it (UTF-8), 64 lower-case hex digits; made once per catalogue
 * object, with Web Crypto (Node and edge runtimes alike). A strong hash, since the function takes a
 * run's catalogue by it: two catalogues under one key would give a run another pipeline's stages.
 */
export function catalogueDigest(catalogue: NonNullable<RunWrite['catalogue']>): Promise<string> {
  let digest = catalogueDigests.get(catalogue)
  if (digest === undefined) {
    digest = crypto.subtle
      .digest('SHA-256', new TextEncoder().encode(catalogueJson(catalogue)))
      .then((hash) => Array.from(new Uint8Array(hash), (byte) => byte.toString(16).padStart(2, '0')).join(''))
    catalogueDigests.set(catalogue, digest)
  }
  return digest
}

const catalogueDigests = new WeakMap<object, Promise<string>>()
