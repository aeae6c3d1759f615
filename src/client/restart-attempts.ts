/**
 * The rules of a restarted runner (docs/design.md "Timing, attempts and streamed output";
 * issue 27; docs/llm-pipelines.md "Restarting a runner"): a stage an earlier process left
 * PROCESSING runs again as a new attempt, the stage's attempt as the earlier process left it plus
 * one; a stage an earlier process COMPLETED is not run again, and its output is read back for the
 * later stages. Both are read from two places, because an earlier process's reports may not have
 * landed yet: the run as the server holds it (`GET /status`) and the earlier process's updates
 * still waiting in the outbox, as they were when this process opened it (they are delivered
 * before any of this process's updates of the run, in order), less those the outbox has
 * dead-lettered since ({@link notDeadLettered}, the one rule for both questions below: they never
 * land, so a dead-lettered `COMPLETED` left its stage unfinished on the server, and the stage runs
 * again; a dead-lettered FAILED, CANCELLED or `/complete` did not end the run, and it is resumed).
 * Reading both makes the answer the same whether the redelivery lands before or after the read.
 * A run whose stages all completed before the earlier process's `/complete` is still resumed
 * ({@link completedByItsStages}): every stage skipped, then that `/complete`. An earlier process
 * whose pending updates of the run hold a FAILED or CANCELLED stage update or a `/complete` has
 * already ended the run ({@link inheritedEnds}): it is not resumed at all. Internal.
 */
import type { PipelineRunRecord } from '../contract/records.js'
import { type FinalStatus, isFinalStatus, type StageStatus } from '../contract/status.js'
import type { OutboxEntry } from './outbox/entry.js'
import type { RunFinishedEvent } from './run-finished.js'

/** What an earlier process's pending stage updates say of one stage. */
export interface InheritedStage {
  /** The status of its last pending stage update. */
  status: string
  /** The highest attempt among its pending PROCESSING updates (1 for one without `attempt`); 0 when none is PROCESSING. */
  attempt: number
  /** The `output` of its last pending stage update, as sent (`null` when it had none). */
  output: string | null
}

/**
 * The updates an earlier process left in the outbox that still say something of the run (the
 * entries as loaded, oldest first): all but those the outbox dead-lettered since (`deadLettered`:
 * their ids). Those never reach the server, so they say nothing of what it holds or will hold:
 * neither that a stage completed ({@link inheritedStages}) nor that the run ended
 * ({@link inheritedEnds}). Taken when the run is read: one dead-lettered later is too late to
 * change what `runPipeline` did, and counts against `delivered` when it relied on it
 * (pipeline-summary.ts `countsAgainstDelivered`).
 */
export function notDeadLettered(entries: readonly OutboxEntry[], deadLettered: ReadonlySet<string>): OutboxEntry[] {
  return entries.filter((entry) => !deadLettered.has(entry.id))
}

/**
 * Per run, per stage, what the stage updates left in the outbox by an earlier process say (the
 * entries as loaded, oldest first, less those dead-lettered since: {@link notDeadLettered}).
 * Progress reports are PROCESSING updates too: they count. A body that is not a stage update's
 * JSON is skipped (it is redelivered as it is all the same).
 */
export function inheritedStages(entries: readonly OutboxEntry[]): Map<string, Map<number, InheritedStage>> {
  const runs = new Map<string, Map<number, InheritedStage>>()
  for (const entry of entries) {
    if (entry.route !== 'stageUpdate') continue
    let body: { stageNumber?: unknown; status?: unknown; attempt?: unknown; output?: unknown }
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
    stages.set(body.stageNumber, {
      status: body.status,
      attempt: Math.max(before?.attempt ?? 0, attempt),
      output: typeof body.output === 'string' ? body.output : null,
    })
  }
  return runs
}

/** How an earlier process's updates still waiting in the outbox end a run. */
export interface InheritedEnd {
  /** The status the first ending update gives the run: its stage's FAILED or CANCELLED, or the `/complete`'s status. */
  status: FinalStatus
  /** The run's error that update gives it: the failed stage's output, the `/complete`'s `error`; `null` when none. */
  reason: string | null
  /** When it ended the run: the `/complete`'s `completedAt`, else when the update entered the outbox (ISO 8601). */
  at: string
  /** Each ending update, in order, as a warning names it: `stage 2 FAILED ("boom")`, `its /complete (COMPLETED)`. */
  updates: string[]
}

/**
 * Per run, how the updates an earlier process left in the outbox end it (the entries as loaded,
 * oldest first, less those dead-lettered since: {@link notDeadLettered}; a dead-lettered one never
 * ended the run, so the run is resumed): a pending FAILED or CANCELLED stage update, or a pending
 * `/complete`. Those are delivered before any of this process's updates of the run, in order, so the run is already
 * ended, whether or not their redelivery has landed when the run is read: a restarted
 * `runPipeline` runs no stage and sends nothing (a stage run again would be stored on a run its
 * earlier process failed; a second `/complete` would be answered `duplicate`). The first of them
 * decides the status. A body that is not JSON is skipped.
 */
export function inheritedEnds(entries: readonly OutboxEntry[]): Map<string, InheritedEnd> {
  const runs = new Map<string, InheritedEnd>()
  for (const entry of entries) {
    if (entry.route === 'stageOutput') continue
    let body: { stageNumber?: unknown; status?: unknown; output?: unknown; error?: unknown; completedAt?: unknown }
    try {
      body = JSON.parse(entry.body) as typeof body
    } catch {
      continue
    }
    let end: Omit<InheritedEnd, 'updates'> & { update: string }
    if (entry.route === 'complete') {
      if (typeof body.status !== 'string' || !isFinal(body.status)) continue
      end = {
        status: body.status as FinalStatus,
        reason: typeof body.error === 'string' ? body.error : null,
        at: typeof body.completedAt === 'string' ? body.completedAt : entry.queuedAt,
        update: `its /complete (${body.status})`,
      }
    } else {
      if ((body.status !== 'FAILED' && body.status !== 'CANCELLED') || typeof body.stageNumber !== 'number') continue
      const output = typeof body.output === 'string' ? body.output : null
      end = { status: body.status, reason: output, at: entry.queuedAt, update: `stage ${body.stageNumber} ${body.status}${output === null ? '' : ` (${JSON.stringify(output)})`}` }
    }
    const before = runs.get(entry.runId)
    if (before) before.updates.push(end.update)
    else runs.set(entry.runId, { status: end.status, reason: end.reason, at: end.at, updates: [end.update] })
  }
  return runs
}

/**
 * The "finished elsewhere" event of a run an earlier process's pending updates end
 * ({@link inheritedEnds}), `learnedFrom: 'outbox'`, the same whether their redelivery landed
 * before the run was read or not: its status and reason are the ending update's; its `run` is
 * the run as read at start with that status, error and (when it had none) `completedAt`, or,
 * when it was not read, a record of the run id with them (the fields the outbox does not tell
 * at their defaults: `pipeline`, the one given, else `default`; `createdAt` and `updatedAt`, `at`).
 */
export function inheritedEndEvent(runId: string, end: InheritedEnd, read: PipelineRunRecord | undefined, pipeline = 'default'): RunFinishedEvent {
  const run: PipelineRunRecord = read
    ? { ...read, status: end.status, error: end.reason, completedAt: read.completedAt ?? end.at }
    : {
        id: runId,
        status: end.status,
        error: end.reason,
        completedAt: end.at,
        completionReceivedAt: null,
        createdAt: end.at,
        updatedAt: end.at,
        lastActivityAt: null,
        heartbeatIntervalMs: null,
        pipeline,
        tags: [],
        metadata: {},
        startedAt: null,
      }
  return { runId, status: end.status, reason: end.reason, run, learnedFrom: 'outbox' }
}

/** A stage as `GET /status` answers it (the fields the rules read). */
export interface StoredStage {
  stageNumber: number
  status: string
  attempt?: number | null | undefined
  output?: string | null | undefined
}

/** A stage an earlier process completed, which a restarted `runPipeline` does not run again. */
export interface CompletedStage {
  /** Its output as stored (or as its pending `COMPLETED` carries it): `null` when it has none. */
  output: string | null
  /** Where that was read: the server holds the stage COMPLETED, or the earlier process's last pending update of it is COMPLETED. */
  from: 'server' | 'outbox'
}

/**
 * Stage number → what an earlier process completed: the stages the server holds COMPLETED (with
 * the stored output), and those whose earlier process's last pending update is COMPLETED while
 * the server holds them unfinished (with the output that update carries; it lands before this
 * process's updates). A stage the server holds FAILED or CANCELLED is not one of them, nor one
 * whose pending COMPLETED the outbox dead-lettered before this was asked (`inherited` leaves it
 * out, {@link notDeadLettered}): the server never stored it, so the stage runs again. One
 * dead-lettered afterwards is too late to run the stage: `runPipeline` counts it against
 * `delivered` (pipeline-summary.ts `countsAgainstDelivered`).
 */
export function stagesCompleted(stored: readonly StoredStage[], inherited: ReadonlyMap<number, InheritedStage> | undefined): Map<number, CompletedStage> {
  const completed = new Map<number, CompletedStage>()
  const numbers = new Set([...stored.map((stage) => stage.stageNumber), ...(inherited?.keys() ?? [])])
  for (const stageNumber of [...numbers].sort((a, b) => a - b)) {
    const server = stored.find((stage) => stage.stageNumber === stageNumber)
    const pending = inherited?.get(stageNumber)
    if (server?.status === 'COMPLETED') completed.set(stageNumber, { output: server.output ?? null, from: 'server' })
    else if (pending?.status === 'COMPLETED' && (server === undefined || !isFinal(server.status))) completed.set(stageNumber, { output: pending.output, from: 'outbox' })
  }
  return completed
}

/** A run as `GET /status` answers it (the fields {@link completedByItsStages} reads). */
export interface StoredRun {
  status: string
  /** When the server stored the run's first accepted `/complete`; `null` before. */
  completionReceivedAt: string | null
}

/**
 * Whether a run the server holds finished is one a restarted runner still resumes: `COMPLETED`
 * by its stages alone (its last stage's `COMPLETED`), every stage `1..stageCount` held
 * `COMPLETED`, and no `/complete` received yet (`completionReceivedAt` is set only by an
 * accepted `/complete`; a cancel, the stale-run sweeper and a failed stage never complete a run).
 * That is an earlier process of the run that died after its last stage's `COMPLETED` was
 * delivered and before its `/complete`: the results, which travel only with `/complete`, have not
 * reached the app's `onRunCompleted` hook, and the server takes that first `/complete` on a run
 * its stages completed (`applied`, the hook runs once; later ones answer `duplicate`). Any other
 * finished run (`FAILED`, `CANCELLED`, completed by a received `/complete`, or completed by its
 * last stage while another stage is not `COMPLETED`) was finished elsewhere.
 */
export function completedByItsStages(run: StoredRun, stored: readonly StoredStage[], stageCount: number): boolean {
  if (run.status !== 'COMPLETED' || run.completionReceivedAt !== null || stageCount < 1) return false
  for (let stageNumber = 1; stageNumber <= stageCount; stageNumber++) {
    if (stored.find((stage) => stage.stageNumber === stageNumber)?.status !== 'COMPLETED') return false
  }
  return true
}

/**
 * A completed stage's output as a later stage gets it in `previousOutputs`, read back from the
 * text sent (`serialiseOutput`: a string as it is, anything else as JSON): text that is the JSON
 * of an object or an array (it starts with `{` or `[` and parses) is parsed; any other text is
 * the string itself (a number, `true` or `null` returned by the stage come back as their JSON
 * text); no output is `undefined` (a stage that streamed text and returned `undefined` has that
 * text stored as its output). An output cut to the server's body limit (it ends with
 * `TRUNCATION_MARKER`) or the placeholder of one JSON could not hold does not parse: it is that text.
 */
export function resumedOutput(text: string | null): unknown {
  if (text === null) return undefined
  if (text.startsWith('{') || text.startsWith('[')) {
    try {
      return JSON.parse(text) as unknown
    } catch {
      // Not JSON: a string the stage returned, a cut output, the placeholder.
    }
  }
  return text
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
