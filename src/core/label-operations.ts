/**
 * The writes of a run's tags and metadata (`POST /tags`, `POST /metadata` and the server API):
 * read the run, decide with `run-labels.ts`, write only if the run's version is unchanged (else
 * again), or, on a store without that path, under the run's lock. They apply to finished runs too.
 */
import type { RunMetadataPatch, RunTagsChange } from '../contract/run-labels.js'
import { decideMetadataPatch, decideTags, type LabelDecision } from './run-labels.js'
import type { RunState } from './state.js'
import type { Store } from './store.js'
import { storeWrites } from './store-writes.js'

/** Result of a tag or metadata change: the decision, or `not_found` for an unknown run. */
export type LabelResult = LabelDecision | { outcome: 'not_found' }

/** Changes a run's tags: `remove` first, then `add` (see `decideTags`). */
export function changeRunTags<Tx>(store: Store<Tx>, runId: string, change: RunTagsChange): Promise<LabelResult> {
  return applyLabels(store, runId, (run) => decideTags(run, change))
}

/** Merges a JSON Merge Patch (RFC 7396) into a run's metadata (see `decideMetadataPatch`). */
export function patchRunMetadata<Tx>(store: Store<Tx>, runId: string, patch: RunMetadataPatch): Promise<LabelResult> {
  return applyLabels(store, runId, (run) => decideMetadataPatch(run, patch))
}

async function applyLabels<Tx>(store: Store<Tx>, runId: string, decide: (run: RunState) => LabelDecision): Promise<LabelResult> {
  const attempt = await storeWrites(store).onRun(runId, ({ run }) => {
    const decision = decide(run)
    return decision.outcome === 'applied' ? { write: decision.run, result: decision } : { done: decision }
  })
  if (attempt) return attempt.found ? attempt.result : { outcome: 'not_found' }
  return store.transaction(async (tx) => {
    const run = await tx.lockRun(runId)
    if (!run) return { outcome: 'not_found' }
    const decision = decide(run)
    if (decision.outcome === 'applied') await tx.saveRun(decision.run)
    return decision
  })
}
