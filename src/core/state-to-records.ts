import type { PipelineRunRecord, RunStatusResponse, StageOutputRecord } from '../contract/records.js'
import { DEFAULT_PIPELINE } from '../contract/stages.js'
import type { RunSnapshot, RunState, StageState } from './state.js'

const iso = (date: Date | null): string | null => (date ? date.toISOString() : null)

/** A run as sent on the wire. */
export function toRunRecord(run: RunState): PipelineRunRecord {
  return {
    id: run.id,
    status: run.status,
    error: run.error,
    completedAt: iso(run.completedAt),
    completionReceivedAt: iso(run.completionReceivedAt),
    createdAt: run.createdAt.toISOString(),
    updatedAt: run.updatedAt.toISOString(),
    lastActivityAt: iso(run.lastActivityAt ?? null),
    heartbeatIntervalMs: run.heartbeatIntervalMs ?? null,
    pipeline: run.pipeline ?? DEFAULT_PIPELINE,
    tags: [...(run.tags ?? [])],
    metadata: { ...run.metadata },
    startedAt: iso(run.startedAt ?? null),
  }
}

/** A stage as sent on the wire. */
export function toStageRecord(stage: StageState): StageOutputRecord {
  return {
    stageNumber: stage.stageNumber,
    stageName: stage.stageName,
    status: stage.status,
    output: stage.output,
    completedAt: iso(stage.completedAt),
    progress: stage.progress ?? null,
    createdAt: stage.createdAt.toISOString(),
    updatedAt: stage.updatedAt.toISOString(),
    startedAt: (stage.startedAt ?? stage.createdAt).toISOString(),
    attempt: stage.attempt ?? null,
    maxAttempts: stage.maxAttempts ?? null,
    lastError: stage.lastError ?? null,
    nextRetryAt: iso(stage.nextRetryAt ?? null),
    outputSeq: stage.outputSeq ?? null,
  }
}

/** A run and its stages as sent by `GET /status`. */
export function toStatusResponse(snapshot: RunSnapshot): RunStatusResponse {
  return { run: toRunRecord(snapshot.run), stages: snapshot.stages.map(toStageRecord) }
}

/**
 * The answer of a write that touched one stage (a stage update, a heartbeat): what it did, the
 * stage as stored (`null` when there is none) and the run as stored.
 */
export function toStageWriteResponse<Outcome>(result: {
  outcome: Outcome
  stage?: StageState | null | undefined
  run: RunState
}): { outcome: Outcome; stage: StageOutputRecord | null; run: PipelineRunRecord } {
  return { outcome: result.outcome, stage: result.stage ? toStageRecord(result.stage) : null, run: toRunRecord(result.run) }
}
