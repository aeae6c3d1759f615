/**
 * The pure decisions of a run's tags and metadata: the tag change (`remove` first, then `add`)
 * and the JSON Merge Patch (RFC 7396) of its metadata, each checked with the contract's limits
 * (`contract/run-labels.ts`). Both stores persist exactly what these return. Tags and metadata
 * are the app's labels, not runner activity: a change raises the run's version (a new `ETag`, an
 * `update` event) but leaves `updatedAt` alone, so neither the stale-run sweep nor retention
 * counts it. A change that changes nothing is a `duplicate` and writes nothing.
 */
import { metadataTooLarge, type RunMetadataPatch, type RunTagsChange, tooManyTags } from '../contract/run-labels.js'
import type { RunState } from './state.js'

/** What a tag or metadata change does. */
export type LabelDecision =
  | { outcome: 'applied' | 'duplicate'; run: RunState }
  /** The result breaks a limit: 400 `validation_failed` naming `field`; nothing changes. */
  | { outcome: 'invalid'; field: 'tags' | 'metadata'; message: string }

/** Tags without repeats, in the order first seen. */
export function distinctTags(tags: readonly string[]): string[] {
  return [...new Set(tags)]
}

/** Decides a tag change: `remove` applies first, then `add`; more than 20 tags afterwards is invalid. */
export function decideTags(run: RunState, change: RunTagsChange): LabelDecision {
  const current = run.tags ?? []
  const removed = new Set(change.remove ?? [])
  const tags = distinctTags([...current.filter((tag) => !removed.has(tag)), ...(change.add ?? [])])
  const problem = tooManyTags(tags)
  if (problem) return { outcome: 'invalid', field: 'tags', message: problem }
  if (tags.length === current.length && tags.every((tag, index) => tag === current[index])) return { outcome: 'duplicate', run }
  return { outcome: 'applied', run: { ...run, tags } }
}

/** Decides a metadata change: `patch` merged into the run's metadata (RFC 7396), at most 16 KiB afterwards. */
export function decideMetadataPatch(run: RunState, patch: RunMetadataPatch): LabelDecision {
  const current = run.metadata ?? {}
  const metadata = mergePatch(current, patch) as Record<string, unknown>
  const problem = metadataTooLarge(metadata)
  if (problem) return { outcome: 'invalid', field: 'metadata', message: problem }
  if (JSON.stringify(metadata) === JSON.stringify(current)) return { outcome: 'duplicate', run }
  return { outcome: 'applied', run: { ...run, metadata } }
}

/**
 * RFC 7396 §2 MergePatch(target, patch): a patch that is not an object replaces the target; an
 * object patch merges member by member into the target (an empty object when the target is not
 * one), `null` removing a member. Neither argument is changed.
 */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return patch
  const result: Record<string, unknown> = isObject(target) ? { ...target } : {}
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key]
    // Defined, not assigned: a member named `__proto__` stays a member (as JSON.parse makes it).
    else Object.defineProperty(result, key, { value: mergePatch(Object.hasOwn(result, key) ? result[key] : undefined, value), enumerable: true, writable: true, configurable: true })
  }
  return result
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
