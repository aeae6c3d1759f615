/**
 * The server API of runs as a collection, for apps that create and label runs in their own code
 * (a server action, a queue consumer) instead of over HTTP: the same rules as `POST /runs`,
 * `POST /{runId}/tags` and `POST /{runId}/metadata`, on the same {@link Store}.
 */
import { CreateRun } from '../contract/complete.js'
import { fieldMessage, safeParseContract } from '../contract/field-messages.js'
import { describeFieldErrors, PayloadValidationError } from '../contract/parse.js'
import { type CatalogueEntry, catalogueOf, type PipelineRunRecord } from '../contract/records.js'
import { RunMetadataPatch, RunTagsChange } from '../contract/run-labels.js'
import { DEFAULT_PIPELINE, type StageCatalogue } from '../contract/stages.js'
import { changeRunTags, type LabelResult, patchRunMetadata } from '../core/label-operations.js'
import { createRun as insertRun, type NewRunOptions } from '../core/operations.js'
import type { Pipelines } from '../core/run-catalogue.js'
import type { Store } from '../core/store.js'
import { toRunRecord } from '../core/state-to-records.js'
import { resolvePipelines } from './pipelines.js'
import { HttpProblemError } from './http/problem-response.js'
import type { z } from 'zod'

/** Options of {@link createRun}: the body of `POST /runs`, the pipelines it may name, and the time. */
export interface CreateRunOptions {
  /** The run's id (1 to 128 of `A–Z a–z 0–9 . _ ~ : -`, not only dots). @default a random UUID */
  id?: string | undefined
  /** The run's pipeline: `default` or a key of `pipelines`. @default 'default' */
  pipeline?: string | undefined
  /** The run's tags: at most 20 distinct, each 1 to 128 characters; repeats are stored once. @default [] */
  tags?: readonly string[] | undefined
  /** The app's JSON object for the run, at most 16 KiB as UTF-8 JSON. @default {} */
  metadata?: Record<string, unknown> | undefined
  /** The catalogue of the pipeline `default`, as the handlers' `stages` option. @default DEFAULT_STAGES */
  stages?: StageCatalogue | undefined
  /** The app's pipelines, as the handlers' `pipelines` option: pass the same, so the run gets the same catalogue snapshot. */
  pipelines?: Readonly<Record<string, StageCatalogue>> | undefined
  /** When the run is created. @default new Date() */
  now?: Date | undefined
}

/** What {@link createRun} returns: as `POST /runs` answers. */
export interface CreatedRun {
  /** `true` when this call created the run, `false` when one with its id already existed (returned as stored). */
  created: boolean
  /** The run as stored. */
  run: PipelineRunRecord
  /** The run's own catalogue, as the status document sends it. */
  catalogue: CatalogueEntry[] | undefined
}

/**
 * Creates a run on `store` with the rules of `POST {base}/runs`: the run records its pipeline and
 * a snapshot of that pipeline's catalogue, so the handlers apply the run's own stages to it.
 * Idempotent by id. Throws `PayloadValidationError` (from `pipeline-status-sdk`) naming the field
 * for an invalid id, tag or metadata, or a pipeline that is neither `default` nor in `pipelines`;
 * `ServerConfigurationError` for an invalid catalogue; the store's errors as they are.
 *
 * @example
 * ```ts
 * import { createPrismaStore, createRun } from 'pipeline-status-sdk/server'
 * import { defineStages } from 'pipeline-status-sdk'
 * import { prisma } from './prisma.js' // your app's PrismaClient
 *
 * const pipelines = { report: defineStages(['Fetch', 'Summarise', 'Publish']) } // as the handlers' `pipelines`
 * const { run } = await createRun(createPrismaStore({ prisma }), {
 *   pipeline: 'report',
 *   tags: ['team:search'],
 *   metadata: { requestedBy: 'user_42' },
 *   pipelines,
 * })
 * ```
 */
export async function createRun<Tx>(store: Store<Tx>, options: CreateRunOptions = {}): Promise<CreatedRun> {
  const { stages, pipelines, now = new Date(), ...body } = options
  const resolved = resolvePipelines({ stages, pipelines })
  const input = parsed('run creation', CreateRun, body)
  const result = await insertRun(store, { ...newRunOrThrow(input, resolved, (field, reason) => new PayloadValidationError('run creation', [issueOf(field, reason)])), now })
  const catalogue = result.run.catalogue ?? resolved.get(result.run.pipeline ?? DEFAULT_PIPELINE)
  return { created: result.created, run: toRunRecord(result.run), catalogue: catalogue ? catalogueOf(catalogue) : undefined }
}

/**
 * Changes a run's tags with the rules of `POST {base}/{runId}/tags`: `remove` first, then `add`,
 * at most 20 afterwards. Returns the run as stored, or `null` for an unknown run. Throws
 * `PayloadValidationError` naming the field (`add.0`, `tags`) when the change breaks a rule.
 */
export async function updateRunTags<Tx>(store: Store<Tx>, runId: string, change: RunTagsChange): Promise<PipelineRunRecord | null> {
  return labelled(await changeRunTags(store, runId, parsed('tag change', RunTagsChange, change)), 'tag change')
}

/**
 * Merges a JSON Merge Patch (RFC 7396) into a run's metadata with the rules of
 * `POST {base}/{runId}/metadata`: at most 16 KiB afterwards. Returns the run as stored, or `null`
 * for an unknown run. Throws `PayloadValidationError` naming `metadata` when the result is too large.
 */
export async function updateRunMetadata<Tx>(store: Store<Tx>, runId: string, patch: Record<string, unknown>): Promise<PipelineRunRecord | null> {
  return labelled(await patchRunMetadata(store, runId, parsed('metadata patch', RunMetadataPatch, patch)), 'metadata patch')
}

/**
 * What a validated `POST /runs` body creates: its pipeline checked against `pipelines` and its
 * catalogue snapshot taken. 400 `validation_failed` naming `pipeline` for one not configured. Internal.
 */
export function newRunOf(input: CreateRun, pipelines: Pipelines): Omit<NewRunOptions, 'now'> {
  return newRunOrThrow(input, pipelines, (field, reason) => {
    const errors = [{ field, message: fieldMessage(field, reason) }]
    return new HttpProblemError('validation_failed', { detail: describeFieldErrors(errors), errors })
  })
}

function newRunOrThrow(input: CreateRun, pipelines: Pipelines, fail: (field: string, reason: string) => Error): Omit<NewRunOptions, 'now'> {
  const pipeline = input.pipeline ?? DEFAULT_PIPELINE
  const catalogue = pipelines.get(pipeline)
  if (!catalogue) {
    const known = [...pipelines.keys()].map((name) => `"${name}"`).join(', ')
    throw fail('pipeline', `must name a pipeline this server is configured with (${known}), got "${pipeline}"`)
  }
  return { id: input.id, pipeline, catalogue, tags: input.tags, metadata: input.metadata }
}

function parsed<T>(what: string, schema: z.ZodType<T>, input: unknown): T {
  const result = safeParseContract(schema, input)
  if (!result.success) throw new PayloadValidationError(what, result.error.issues)
  return result.data
}

/** An issue of a rule checked after parsing, its message the reason (`toFieldErrors` puts the field in front). */
function issueOf(field: string, reason: string): z.core.$ZodIssue {
  return { code: 'custom', path: field.split('.'), message: reason, input: undefined }
}

function labelled(result: LabelResult, what: string): PipelineRunRecord | null {
  if (result.outcome === 'not_found') return null
  if (result.outcome === 'invalid') throw new PayloadValidationError(what, [issueOf(result.field, result.message)])
  return toRunRecord(result.run)
}
