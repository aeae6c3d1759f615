/**
 * The streamed output route: `POST /{runId}/stages/{stageNumber}/output` `{ seq, text }`, one
 * chunk of a running stage's text (DESIGN.md "Timing, attempts and streamed output"). The body is
 * read through the authentication like every runner write, validated (`StageOutputChunk`), and
 * decided by the core rule (`appendOutputChunk`). Internal.
 */
import { fieldMessage } from '../../contract/field-messages.js'
import { buildRoutePath } from '../../contract/routes.js'
import { parseStageNumberParam, StageOutputChunk, type StageOutputChunkResponse } from '../../contract/output-chunks.js'
import { appendOutputChunk, stageNumberRuleOfStoredRun } from '../../core/operations.js'
import { toRunRecord } from '../../core/state-to-records.js'
import type { RequestAuth } from '../auth/authenticate.js'
import { escapeControls, type Plumbing, type RouteHandler } from '../http/exchange.js'
import { HttpProblemError, jsonResponse } from '../http/problem-response.js'
import { accepted, validate, validationFailed } from '../http/validate.js'
import { OncePerKey } from '../../internal/once-per-key.js'
import type { HandlerSettings } from '../settings.js'

/** The streamed output route of one handlers instance. */
export function createOutputRoutes(settings: HandlerSettings, plumbing: Plumbing, auth: RequestAuth): { readonly stageOutput: RouteHandler } {
  const { store, pipelines, clock, logger, maxStreamedOutputBytes } = settings
  const warnedConflict = new OncePerKey()

  const stageOutput = plumbing.route('stageOutput', async (exchange, { runId, stageNumber: stageParam }) => {
    // Authenticated first, like every write: an unauthenticated caller learns nothing of the path.
    // Signed over the path after the base path, decoded, as the client signs it: webhookRoute
    // names one run id only and threw (a 500) for this route's second parameter.
    const signedPath = decodeURIComponent(buildRoutePath('stageOutput', { runId, stageNumber: stageParam }, '').slice(1))
    const json = await auth.writeBody(exchange, { path: signedPath }, { allowEmpty: false })
    const stageNumber = parseStageNumberParam(stageParam)
    if (stageNumber === undefined) {
      // Not a number of the path's form (0, -1, 1.5, 01, ten digits): the run's rule, in the words a
      // number outside its catalogue gets (`stageNumberOutside`), read from the run for its N.
      const rule = await stageNumberRuleOfStoredRun(store, runId, { pipelines })
      throw validationFailed([{ field: 'stageNumber', message: fieldMessage('stageNumber', rule) }])
    }
    const chunk = validate(StageOutputChunk, json)
    if (!store.getOutputChunk) {
      throw new HttpProblemError('not_implemented', { detail: "This server's store does not implement Store.getOutputChunk, so it cannot store streamed output" })
    }
    // A stage outside the run's catalogue is 400 naming `stageNumber`, as a stage update's (`accepted`).
    const result = accepted(await appendOutputChunk(store, runId, stageNumber, chunk, { now: clock(), maxBytes: maxStreamedOutputBytes, pipelines }))
    if (result.outcome === 'refused') {
      const { outcome: _outcome, code, detail, ...members } = result
      throw new HttpProblemError(code, { detail, ...members })
    }
    if (result.outcome === 'conflict' && warnedConflict.first(runId)) {
      logger.warn(
        `pipeline-status: run ${escapeControls(runId)}: stage ${stageNumber} output chunk ${chunk.seq} was sent again with another text; ` +
          'the stored text stays and the chunk was answered 200 outcome "conflict" (logged once per run). A runner that numbers ' +
          "two attempts' chunks alike without sending the higher attempt first does this: send PROCESSING with the new attempt before its chunks",
        { runId, stageNumber, seq: chunk.seq, outcome: 'conflict' },
      )
    }
    const body: StageOutputChunkResponse = {
      outcome: result.outcome,
      stage: { stageNumber, outputSeq: result.stage.outputSeq ?? -1 },
      run: toRunRecord(result.run),
    }
    return jsonResponse(body)
  })

  return { stageOutput }
}
