/**
 * The rules of a run's pipeline name, tags and metadata, in one place (docs/design.md, "Runs as
 * a collection"): `POST {base}/runs`, `POST {base}/{runId}/tags`, `POST {base}/{runId}/metadata`
 * and the server API (`createRun`, `updateRunTags`, `patchRunMetadata`) all check them here, and
 * the core's decisions (`core/run-labels.ts`) check the results with the same functions.
 */
import { z } from 'zod'
import { MAX_METADATA_BYTES, MAX_TAG_LENGTH, MAX_TAGS } from './run-list.js'
import { jsonObjectSchema } from './json-object.js'
import { isStorableText } from './storable-text.js'

const encoder = new TextEncoder()

/** The size of a metadata object as the limit counts it: the bytes of its UTF-8 JSON (`JSON.stringify`, compact). */
export function metadataBytes(metadata: unknown): number {
  return encoder.encode(JSON.stringify(metadata) ?? '').byteLength
}

/** Why a run's metadata cannot be stored (`undefined` when it can): larger than 16 KiB as UTF-8 JSON. */
export function metadataTooLarge(metadata: unknown): string | undefined {
  const bytes = metadataBytes(metadata)
  return bytes > MAX_METADATA_BYTES ? `must be at most ${MAX_METADATA_BYTES} bytes as UTF-8 JSON, got ${bytes}` : undefined
}

/** Why a run's tags cannot be stored (`undefined` when they can): more than 20 distinct tags. */
export function tooManyTags(tags: readonly string[]): string | undefined {
  const count = new Set(tags).size
  return count > MAX_TAGS ? `must be at most ${MAX_TAGS} per run; this would make ${count}` : undefined
}

/** The first text in a JSON value (keys included) PostgreSQL cannot store, as a dotted path, or `undefined`. */
function unstorablePath(value: unknown, path: string): string | undefined {
  if (typeof value === 'string') return isStorableText(value) ? undefined : path
  if (typeof value !== 'object' || value === null) return undefined
  for (const [key, item] of Object.entries(value)) {
    const at = path === '' ? key : `${path}.${key}`
    if (!isStorableText(key)) return at
    const found = unstorablePath(item, at)
    if (found !== undefined) return found
  }
  return undefined
}

/**
 * Why a text is not a tag (`undefined` when it is), as a reason after the field (`must be 1 to
 * 128 characters …`): not 1 to 128 UTF-16 code units (JS string length; an emoji counts 2), or
 * not storable. The one tag rule, used by {@link Tag}, the list query's `tag` and read tokens alike.
 */
export function tagProblem(tag: unknown): string | undefined {
  if (typeof tag !== 'string') return 'must be a string'
  if (tag.length < 1 || tag.length > MAX_TAG_LENGTH) {
    return `must be 1 to ${MAX_TAG_LENGTH} characters (UTF-16 code units), got ${tag.length}`
  }
  return isStorableText(tag) ? undefined : 'must not contain NUL or a lone surrogate'
}

/**
 * A tag: 1 to 128 characters (UTF-16 code units, JS string length: an emoji counts 2) of text
 * PostgreSQL can store (no NUL, no lone surrogate). Tags are case-sensitive and stored as sent.
 */
export const Tag = z
  .string()
  .check((ctx) => {
    const problem = tagProblem(ctx.value)
    if (problem) ctx.issues.push({ code: 'custom', input: ctx.value, message: problem })
  })
  // For the OpenAPI document (JSON Schema counts code points, so this is a looser bound there).
  .meta({ minLength: 1, maxLength: MAX_TAG_LENGTH })
/** A tag; see {@link Tag}. */
export type Tag = z.infer<typeof Tag>

/** A run's tags as sent at creation: at most 20 distinct {@link Tag}s; repeats are stored once. */
export const Tags = z.array(Tag).check((ctx) => {
  const problem = tooManyTags(ctx.value)
  if (problem) ctx.issues.push({ code: 'custom', input: ctx.value, message: problem })
})

/**
 * A JSON object checked for storing: every string and key storable, the whole at most 16 KiB as
 * UTF-8 JSON when `limited`. Passed on as sent, so a member `__proto__` stays a member.
 */
function jsonObject(limited: boolean): z.ZodType<Record<string, unknown>> {
  return jsonObjectSchema().check((ctx) => {
    const at = unstorablePath(ctx.value, '')
    if (at !== undefined) {
      ctx.issues.push({ code: 'custom', input: ctx.value, path: at.split('.'), message: 'must not contain NUL or a lone surrogate' })
    }
    const problem = limited ? metadataTooLarge(ctx.value) : undefined
    if (problem) ctx.issues.push({ code: 'custom', input: ctx.value, message: problem })
  })
}

/** A run's metadata: a JSON object (not an array or `null`) of at most 16 KiB as UTF-8 JSON. */
export const RunMetadata = jsonObject(true)
/** A run's metadata; see {@link RunMetadata}. */
export type RunMetadata = z.infer<typeof RunMetadata>

/**
 * Body of `POST {basePath}/{runId}/tags`: `remove` applies first, then `add`; a tag the run
 * already carries is not added twice, one it does not carry is not an error to remove. More
 * than 20 tags afterwards is a 400 naming `tags`; any other key is a 400 naming it.
 */
export const RunTagsChange = z.strictObject(
  {
    /** Tags to add (after `remove`), each 1 to 128 characters. */
    add: z.array(Tag).optional(),
    /** Tags to remove (before `add`). */
    remove: z.array(Tag).optional(),
  },
  // A misspelt key (`tags`) would otherwise change nothing and answer 200.
  { error: (issue) => (issue.code === 'unrecognized_keys' ? 'is not a field of a tag change, which has only `add` and `remove`' : undefined) },
)
/**
 * Body of a tag change.
 * @interface
 */
export type RunTagsChange = z.infer<typeof RunTagsChange>

/**
 * Body of `POST {basePath}/{runId}/metadata`: a JSON Merge Patch (RFC 7396) of the run's
 * metadata, itself a JSON object: a member `null` deletes that key, an object merges into the
 * object there, anything else replaces it. The merged metadata must stay within 16 KiB as UTF-8
 * JSON, else 400 `validation_failed` naming `metadata` (nothing changes).
 */
export const RunMetadataPatch = jsonObject(false)
/**
 * Body of a metadata change (a JSON Merge Patch).
 * @interface
 */
export type RunMetadataPatch = z.infer<typeof RunMetadataPatch>

/** A pipeline's name as a request names it: 1 to 128 characters (whether it is configured is the handlers' check). */
export const PipelineName = z
  .string()
  .min(1, { message: `must be 1 to ${MAX_TAG_LENGTH} characters` })
  .max(MAX_TAG_LENGTH, { message: `must be 1 to ${MAX_TAG_LENGTH} characters` })
