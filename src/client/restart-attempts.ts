/**
 * The one rule of a restarted runner (docs/design.md "Timing, attempts and streamed output";
 * issue 27): a stage an earlier process left PROCESSING runs again as a new attempt, the stage's
 * attempt as the earlier process left it plus one. "Left PROCESSING" is read from two places,
 * because an earlier process's reports may not have landed yet: the run as the server holds it
 * (`GET /status`) and the earlier process's updates still waiting in the outbox, as they were
 * when this process opened it (they are delivered before any of this process's updates of the
 * run, in order). Reading both makes the answer the same whether the redelivery lands before or
 * after the read. Internal.
 */
import { isFinalStatus, type StageStatus } from '../contract/status.js'
import type { OutboxEntry } from './outbox/entry.js'

/** What an earlier process's pending stage updates say of one stage. */
export interface InheritedStage {
  /** The status of its last pending stage update. */
  status: string
  /** The highest attempt among its pending PROCESSING updates (1 for one without `attempt`); 0 when none is PROCESSING. */
  attempt: number
}

/**
 * Per run, per stage, what the stage updates left in the outbox by an earlier process say (the
 * entries as loaded, oldest first). Progress reports are PROCESSING updates too: they count.
 * A body that is not a stage update's JSON is skipped (it is redelivered as it is all the same).
 */
export function inheritedStages(entries: readonly OutboxEntry[]): Map<string, Map<number, InheritedStage>> {
  const runs = new Map<string, Map<number, InheritedStage>>()
  for (const entry of entries) {
    if (entry.route !== 'stageUpdate') continue
    let body: { stageNumber?: unknown; status?: unknown; attempt?: unknown }
    try {
      body = JSON.parse(entry.body) as typeof body
    } catch {
      continue
    }
    if (typeof body.stageNumber !== 'number' || typeof body.status !== 'string') continue
    const stages = runs.get(entry.runId) ?? new Map<number, InheritedStage>()
    runs.set(entry.runId, stages)
    const before = stages.get(body.stageNumber)
    const attempt = body.status === 'PROCESSING' ? (typeof body.attempt === 'number' ? body.attempt : 1) : 0
    stages.set(body.stageNumber, { status: body.status, attempt: Math.max(before?.attempt ?? 0, attempt) })
  }
  return runs
}

/** A stage as `GET /status` answers it (the fields the rule reads). */
export interface StoredStage {
  stageNumber: number
  status: string
  attempt?: number | null | undefined
}

/**
 * Stage number → the attempt an earlier process left running, for the stages it left
 * PROCESSING: the server holds the stage PROCESSING or the earlier process's last pending update
 * of it is PROCESSING, and neither holds it final (a pending final status lands before this
 * process's updates). The attempt is the higher of the stored one (1 when the server holds none)
 * and the pending ones. `runPipeline` reports such a stage as attempt (that + 1).
 */
export function stagesLeftProcessing(stored: readonly StoredStage[], inherited: ReadonlyMap<number, InheritedStage> | undefined): Map<number, number> {
  const left = new Map<number, number>()
  const numbers = new Set([...stored.map((stage) => stage.stageNumber), ...(inherited?.keys() ?? [])])
  for (const stageNumber of numbers) {
    const server = stored.find((stage) => stage.stageNumber === stageNumber)
    const pending = inherited?.get(stageNumber)
    if ((server !== undefined && isFinal(server.status)) || (pending !== undefined && isFinal(pending.status))) continue
    const serverAttempt = server?.status === 'PROCESSING' ? (server.attempt ?? 1) : 0
    const attempt = Math.max(serverAttempt, pending?.attempt ?? 0)
    if (attempt > 0) left.set(stageNumber, attempt)
  }
  return left
}

/**
 * The contract's one rule of a final status ({@link isFinalStatus}), for a status read as a string:
 * the server's is parsed as a `StageStatus` already; a pending update's is whatever the outbox
 * file says (this client writes only `StageUpdateStatus`), and one it does not know is not final.
 */
function isFinal(status: string): boolean {
  return isFinalStatus(status as StageStatus)
}
