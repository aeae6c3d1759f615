/**
 * The write routes: `POST /runs`, `/{runId}/stage-update`, `/complete`, `/heartbeat`, `/cancel`.
 * Each reads its body through the authentication (`auth.writeBody`, or `auth.cancelBody`),
 * validates it, checks its text is storable, applies the operation and answers JSON. Internal.
 */
import { CompleteRun, CreateRun } from '../../contract/complete.js'
import type {
  CancelRunResponse,
  CompleteRunResponse,
  CreateRunResponse,
  HeartbeatResponse,
  StageUpdateResponse,
} from '../../contract/records.js'
import { CancelRun } from '../../contract/runner-control.js'
import { CONFLICT_CAUSE_AND_FIX } from '../../internal/conflict-cause.js'
import { OncePerKey } from '../../internal/once-per-key.js'
import { applyStageUpdate, cancelRun, completeRun, createRun, recordHeartbeat, stageAsShown, stageNumberRuleOfStoredRun } from '../../core/operations.js'
import { type ClampedInstant, describeClampedInstant } from '../../core/runner-instants.js'
import { toRunRecord, toStageWriteResponse } from '../../core/state-to-records.js'
import { newRunOf } from '../run-api.js'
import type { RequestAuth } from '../auth/authenticate.js'
import { escapeControls, type Exchange, type Plumbing, type RouteHandler } from '../http/exchange.js'
import { jsonResponse } from '../http/problem-response.js'
import { accepted, assertStorable, validate, validateStageNumbered } from '../http/validate.js'
import type { HandlerSettings } from '../settings.js'
import { parseTraceparent } from '../../core/stage-trace.js'
import { pipelineOf, reportRunTransition, reportStagesEnded } from '../instrumentation.js'

/** The write routes' handlers, by route name. */
export interface WriteRoutes {
  readonly createRun: RouteHandler
  readonly stageUpdate: RouteHandler
  readonly complete: RouteHandler
  readonly heartbeat: RouteHandler
  readonly cancel: RouteHandler
}

/** Builds the write routes of one handlers instance. */
export function createWriteRoutes(settings: HandlerSettings, plumbing: Plumbing, auth: RequestAuth): WriteRoutes {
  const { store, pipelines, clock, clockSkewToleranceMs, onRunCompleted, onRunEnded, logger, instrumentation } = settings
  // One warning per run for each kind of degradation, whatever the number of updates; bounded.
  const warnedSkew = new OncePerKey()
  const warnedConflict = new OncePerKey()

  /** Logs a runner-sent instant stored clamped, once per run. */
  function warnClamped(runId: string, clamped: ClampedInstant, where: string): void {
    if (!warnedSkew.first(runId)) return
    logger.warn(`pipeline-status: ${describeClampedInstant(escapeControls(runId), clamped)} (${where}; logged once per run)`, {
      runId,
      field: clamped.field,
      sent: clamped.sent.toISOString(),
      stored: clamped.stored.toISOString(),
      bound: clamped.bound,
      skewMs: clamped.skewMs,
      toleranceMs: clamped.toleranceMs,
    })
  }

  /** Reports a stage update's outcome, the stage it ended and the run's transition, if any. */
  function reportStageUpdate(result: Awaited<ReturnType<typeof applyStageUpdate>>): void {
    if (result.outcome !== 'applied' && result.outcome !== 'duplicate' && result.outcome !== 'stale' && result.outcome !== 'conflict') return
    if (!('run' in result)) return
    instrumentation.stageUpdate({ pipeline: pipelineOf(result.run), outcome: result.outcome })
    if (result.outcome !== 'applied') return
    reportStagesEnded(instrumentation, result.run, [result.stage])
    if (result.statusChanged) reportRunTransition(instrumentation, result.run)
  }

  /** The stage-number rule of run `runId` in words (`must be a whole number from 1 to 5`), read when a body's number was refused. */
  const stageRuleOf = (runId: string) => (): Promise<string> => stageNumberRuleOfStoredRun(store, runId, { pipelines })

  /**
   * A write route of one run: the body read (authenticated, parsed, validated, its text checked
   * storable) by `read`, then the operation `act`, answered as JSON.
   */
  const runWrite = <Input>(
    route: 'stageUpdate' | 'complete' | 'heartbeat' | 'cancel',
    read: (exchange: Exchange, runId: string) => Promise<Input>,
    act: (runId: string, input: Input) => Promise<object>,
  ): RouteHandler => plumbing.route(route, async (exchange, { runId }) => jsonResponse(await act(runId, await read(exchange, runId))))

  const stageUpdate = runWrite(
    'stageUpdate',
    async (exchange, runId) => {
      const body = await auth.writeBody(exchange, 'stageUpdate', { allowEmpty: false })
      const update = await validateStageNumbered(settings.stageUpdateSchema, body, stageRuleOf(runId))
      assertStorable({ stageName: update.stageName, output: update.output, 'progress.message': update.progress?.message })
      return { update, traceparent: parseTraceparent(exchange.request.headers.get('traceparent')) }
    },
    async (id, { update, traceparent }): Promise<StageUpdateResponse> => {
      const result = accepted(await applyStageUpdate(store, id, update, { pipelines, now: clock(), onRunEnded, clockSkewToleranceMs, traceparent }))
      reportStageUpdate(result)
      if (result.outcome === 'applied' && result.clamped) warnClamped(id, result.clamped, `stage ${update.stageNumber}`)
      if (result.outcome === 'conflict' && warnedConflict.first(id)) {
        logger.warn(
          `pipeline-status: run ${escapeControls(id)}: stage ${update.stageNumber} is already ${result.stage.status} with another output; ` +
            `the stored output stays and the update was answered 200 outcome "conflict" (logged once per run). ${CONFLICT_CAUSE_AND_FIX}`,
          { runId: id, stageNumber: update.stageNumber, status: result.stage.status, outcome: 'conflict' },
        )
      }
      // The stage as GET /status shows it: a stage showing its streamed text answers with it.
      return toStageWriteResponse({ ...result, stage: result.stage && (await stageAsShown(store, id, result.stage)) })
    },
  )

  const complete = runWrite(
    'complete',
    async (exchange) => {
      const payload = validate(CompleteRun, await auth.writeBody(exchange, 'complete', { allowEmpty: false }))
      assertStorable({ error: payload.error })
      return payload
    },
    async (id, payload): Promise<CompleteRunResponse> => {
      const result = accepted(await completeRun(store, id, payload, { now: clock(), onRunCompleted, onRunEnded, clockSkewToleranceMs }))
      if (result.outcome === 'applied' && result.clamped) warnClamped(id, result.clamped, 'completion')
      if (result.outcome === 'applied' && result.statusChanged) reportRunTransition(instrumentation, result.run)
      return { outcome: result.outcome, run: toRunRecord(result.run) }
    },
  )

  const heartbeat = runWrite(
    'heartbeat',
    async (exchange, runId) => {
      // The body is optional: an empty one (with or without Content-Type) is a bare "still alive".
      const json = await auth.writeBody(exchange, 'heartbeat', { allowEmpty: true })
      const input = await validateStageNumbered(settings.heartbeatSchema, json === undefined ? {} : json, stageRuleOf(runId))
      assertStorable({ 'progress.message': input.progress?.message })
      return input
    },
    async (id, input): Promise<HeartbeatResponse> => {
      const result = accepted(await recordHeartbeat(store, id, input, { now: clock(), pipelines }))
      // The stage as GET /status shows it, like a stage update's answer; read only for a stage showing streamed text.
      return toStageWriteResponse({ ...result, stage: result.stage && (await stageAsShown(store, id, result.stage)) })
    },
  )

  const cancel = runWrite(
    'cancel',
    async (exchange, id) => {
      const input = validate(CancelRun, await auth.cancelBody(exchange, id))
      assertStorable({ reason: input.reason })
      return input
    },
    async (id, input): Promise<CancelRunResponse> => {
      const result = accepted(await cancelRun(store, id, input, { now: clock(), pipelines, onRunEnded }))
      if (result.outcome === 'applied') {
        reportStagesEnded(instrumentation, result.run, result.stages)
        reportRunTransition(instrumentation, result.run)
      }
      return { outcome: result.outcome, run: toRunRecord(result.run) }
    },
  )

  const createRunRoute = plumbing.route('createRun', async (exchange) => {
    // Only an empty body means "no options"; a JSON `null` is a body, and not an object.
    const json = await auth.writeBody(exchange, 'createRun', { allowEmpty: true })
    const input = validate(CreateRun, json === undefined ? {} : json)
    const result = await createRun(store, { ...newRunOf(input, pipelines), now: clock() })
    if (result.created) reportRunTransition(instrumentation, result.run)
    const catalogue = settings.catalogues.entriesOf(result.run)
    const body: CreateRunResponse = { created: result.created, run: toRunRecord(result.run), ...(catalogue ? { catalogue } : {}) }
    return jsonResponse(body, result.created ? 201 : 200)
  })

  return { createRun: createRunRoute, stageUpdate, complete, heartbeat, cancel }
}
