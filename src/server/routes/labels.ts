/**
 * The routes of a run's labels: `POST /{runId}/tags` and `POST /{runId}/metadata` (the app's
 * writes; the webhook secret or signature, else the `authorize` hook with `action: 'tag'` or
 * `'metadata'`), both answering `{ run }`. Internal.
 */
import type { RunLabelsResponse } from '../../contract/records.js'
import { RunMetadataPatch, RunTagsChange } from '../../contract/run-labels.js'
import { changeRunTags, patchRunMetadata } from '../../core/label-operations.js'
import { toRunRecord } from '../../core/state-to-records.js'
import type { RequestAuth } from '../auth/authenticate.js'
import type { Plumbing, RouteHandler } from '../http/exchange.js'
import { jsonResponse } from '../http/problem-response.js'
import { accepted, validate } from '../http/validate.js'
import type { HandlerSettings } from '../settings.js'

/** The label routes' handlers, by route name. */
export interface LabelRoutes {
  readonly runTags: RouteHandler
  readonly runMetadata: RouteHandler
}

/** Builds the label routes of one handlers instance. */
export function createLabelRoutes(settings: HandlerSettings, plumbing: Plumbing, auth: RequestAuth): LabelRoutes {
  const { store } = settings

  const runTags = plumbing.route('runTags', async (exchange, { runId }) => {
    const change = validate(RunTagsChange, await auth.appWriteBody(exchange, 'runTags', runId, 'tag'))
    const result = accepted(await changeRunTags(store, runId, change))
    return jsonResponse({ run: toRunRecord(result.run) } satisfies RunLabelsResponse)
  })

  const runMetadata = plumbing.route('runMetadata', async (exchange, { runId }) => {
    const patch = validate(RunMetadataPatch, await auth.appWriteBody(exchange, 'runMetadata', runId, 'metadata'))
    const result = accepted(await patchRunMetadata(store, runId, patch))
    return jsonResponse({ run: toRunRecord(result.run) } satisfies RunLabelsResponse)
  })

  return { runTags, runMetadata }
}
