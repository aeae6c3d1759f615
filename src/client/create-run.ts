/**
 * The input of `PrismaAPIClient.createRun`: which run, in which pipeline, with which tags and
 * metadata (docs/design.md, "Runs as a collection"), checked before anything is sent.
 */
import { z } from 'zod'
import { safeParseContract } from '../contract/field-messages.js'
import { PayloadValidationError } from '../contract/parse.js'
import { RunId } from '../contract/run-id.js'
import { Tag } from '../contract/run-labels.js'
import { MAX_METADATA_BYTES, MAX_TAGS } from '../contract/run-list.js'

/**
 * What `createRun` creates. Every field is optional; `{}` creates a run with a random id in the
 * pipeline `default`, without tags or metadata.
 */
export interface CreateRunOptions {
  /**
   * The run's id: 1–128 characters of `A–Z a–z 0–9 . _ ~ : -`, not dots only.
   * @default a random UUID, picked before the first attempt so that a retry finds the same run
   */
  id?: string | undefined
  /**
   * The pipeline (a key of the handlers' `pipelines`) whose stage catalogue the run keeps; a name
   * the server does not know is answered 400 naming it.
   * @default 'default' (the server's choice when absent)
   */
  pipeline?: string | undefined
  /** At most 20 tags, each 1–128 characters, for filtering lists (`listRuns({ tag })`). */
  tags?: readonly string[] | undefined
  /** The app's JSON object for the run, at most 16 KiB as UTF-8 JSON. */
  metadata?: Readonly<Record<string, unknown>> | undefined
}

const encoder = new TextEncoder()

/** The client's check of {@link CreateRunOptions}, with the contract's limits. */
const CreateRunInput = z.object({
  id: RunId.optional(),
  pipeline: z.string().min(1, 'must not be empty').optional(),
  tags: z
    // The contract's one tag rule (UTF-16 code units; zod's max() would count code points).
    .array(Tag)
    .max(MAX_TAGS, `must be at most ${MAX_TAGS} per run`)
    .optional(),
  metadata: z
    .record(z.string(), z.unknown())
    .refine((value) => encoder.encode(JSON.stringify(value)).byteLength <= MAX_METADATA_BYTES, {
      message: `must be at most ${MAX_METADATA_BYTES} bytes as JSON`,
    })
    .optional(),
})

/**
 * The JSON body of `POST {base}/runs` for `createRun(idOrOptions)`: a string is the id (the
 * call form of 0.1); the id defaults to a random UUID. Throws {@link PayloadValidationError}
 * naming the field for input the server would refuse.
 */
export function createRunBody(idOrOptions: string | CreateRunOptions | undefined): string {
  const options: CreateRunOptions = typeof idOrOptions === 'string' ? { id: idOrOptions } : (idOrOptions ?? {})
  const parsed = safeParseContract(CreateRunInput, { ...options, id: options.id ?? crypto.randomUUID() })
  if (!parsed.success) throw new PayloadValidationError('run creation', parsed.error.issues)
  // Only the fields given: an older server (0.1) takes `{ id }` alone.
  const { id, pipeline, tags, metadata } = parsed.data
  return JSON.stringify({ id, ...(pipeline === undefined ? {} : { pipeline }), ...(tags === undefined ? {} : { tags }), ...(metadata === undefined ? {} : { metadata }) })
}
