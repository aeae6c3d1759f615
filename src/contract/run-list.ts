/**
 * Runs as a collection, the wire shapes (docs/design.md, "Runs as a collection"): the list item
 * (`RunSummary`), a page of `GET {base}/runs`, the answer of `GET {base}/runs/counts`, the
 * filters both take, and the limits of tags and metadata.
 */
import { z } from 'zod'
import { jsonObjectSchema } from './json-object.js'
import { RunStatus, StageStatus } from './status.js'

/** The most tags a run carries. */
export const MAX_TAGS = 20
/** The longest tag, in UTF-16 code units (JS string length; the shortest is 1). */
export const MAX_TAG_LENGTH = 128
/** The largest metadata object, in bytes of its UTF-8 JSON. */
export const MAX_METADATA_BYTES = 16 * 1024
/** The default page size of `GET {base}/runs`. */
export const DEFAULT_LIST_LIMIT = 50
/** The largest page size of `GET {base}/runs`; `limit` outside 1..200 is a 400 naming `limit`. */
export const MAX_LIST_LIMIT = 200
/** A list item's `error` is cut to this many characters, with `errorTruncated: true`. */
export const MAX_SUMMARY_ERROR_LENGTH = 1000

/**
 * One run in a list (no stage outputs): the run's own fields, the highest-numbered `PROCESSING`
 * stage (`currentStage`, else `null`) and how many of its catalogue's stages are in each status
 * (`stageCounts`, all five keys; `PENDING` = catalogue length − stored rows).
 */
export const RunSummary = z.object({
  /** The run's id. */
  id: z.string(),
  /** The run's status. */
  status: RunStatus,
  /** The run's pipeline. */
  pipeline: z.string(),
  /** The run's tags. */
  tags: z.array(z.string()),
  /** The app's metadata object. */
  metadata: jsonObjectSchema(),
  /** When the run was created (ISO 8601). */
  createdAt: z.string(),
  /** When its first stage started; `null` before. */
  startedAt: z.string().nullable(),
  /** When it finished; `null` while it runs. */
  completedAt: z.string().nullable(),
  /** Why it failed or was cancelled, cut to 1,000 characters; `null` otherwise. */
  error: z.string().nullable(),
  /** Present and `true` when `error` was cut. */
  errorTruncated: z.literal(true).optional(),
  /** The run's version (the ETag of its status document). */
  version: z.number().int(),
  /** The highest-numbered `PROCESSING` stage, else `null`. */
  currentStage: z.number().int().nullable(),
  /** How many stages of the run's catalogue are in each status; all five keys, zeros included. */
  stageCounts: z.record(StageStatus, z.number().int()),
})
/**
 * One run in a list.
 * @interface
 */
export type RunSummary = z.infer<typeof RunSummary>

/** A page of `GET {base}/runs`: newest first (createdAt desc, then id desc in code-unit order). */
export const RunListPage = z.object({
  /** At most `limit` runs. */
  runs: z.array(RunSummary),
  /** The opaque keyset cursor of the next page, bound to this list's filters; `null` on the last page. */
  nextCursor: z.string().nullable(),
})
/**
 * A page of `GET {base}/runs`.
 * @interface
 */
export type RunListPage = z.infer<typeof RunListPage>

/** The answer of `GET {base}/runs/counts`: runs per key (a status or a pipeline); zero keys are omitted. */
export const RunCounts = z.object({
  /** Runs per key; keys with no run are absent. */
  counts: z.record(z.string(), z.number().int()),
})
/**
 * The answer of `GET {base}/runs/counts`.
 * @interface
 */
export type RunCounts = z.infer<typeof RunCounts>

/**
 * The filters of lists, counts and set streams, parsed. Every given filter must hold:
 * `statuses` any of them, `tags` all of them, `createdAfter` inclusive, `createdBefore` exclusive.
 */
export interface RunListFilter {
  /** Runs in any of these statuses (query: repeated `status`). */
  readonly statuses?: readonly RunStatus[] | undefined
  /** Runs of this pipeline (query: `pipeline`). */
  readonly pipeline?: string | undefined
  /** Runs carrying every one of these tags (query: repeated `tag`). */
  readonly tags?: readonly string[] | undefined
  /** Runs created at or after this instant (query: `createdAfter`, ISO 8601). */
  readonly createdAfter?: Date | undefined
  /** Runs created before this instant (query: `createdBefore`, ISO 8601). */
  readonly createdBefore?: Date | undefined
}

/**
 * What a caller may see of the collection, ANDed into every list, count and set stream: runs
 * carrying all of `tags` and, when given, of `pipeline`. `undefined` (from `listScope`) or `{}`
 * means no restriction. Returned by the app's `listScope` hook; a tag read token's scope is
 * `{ tags: [tag] }`.
 */
export interface RunScope {
  /** Only runs carrying every one of these tags. */
  readonly tags?: readonly string[] | undefined
  /** Only runs of this pipeline. */
  readonly pipeline?: string | undefined
}
