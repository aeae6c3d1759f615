/**
 * What the run-end watch tests share: a stage that runs 60 s unless its signal aborts, and the
 * test server's requests of one run's stream and heartbeats.
 */
import { setTimeout as delay } from 'node:timers/promises'
import type { StageContext } from 'pipeline-status-sdk/client'
import type { RecordedRequest, TestServer } from './test-server.js'

/** A 60 s stage that stops when its signal aborts, and records why in `seen.reason`. */
export function sixtySeconds(seen: { reason?: unknown }) {
  return async ({ signal }: StageContext) => {
    try {
      await delay(60_000, undefined, { signal })
    } catch (error) {
      seen.reason = signal.reason
      throw error
    }
    return 'never'
  }
}

/** The runner's stream: the set stream of its one run in the summary view (no outputs echoed back); the run's own stream only on an older server. */
export const summaryPath = (runId: string) => `/api/pipeline/events?run=${encodeURIComponent(runId)}&view=summary`

/** The requests that opened run `runId`'s stream, either form. */
export function streamRequestsOf(server: TestServer, runId: string): RecordedRequest[] {
  return server.requests.filter((r) => r.method === 'GET' && (r.url === summaryPath(runId) || r.url === `/api/pipeline/${runId}/events`))
}

/** The heartbeats of run `runId`. */
export function heartbeatsOf(server: TestServer, runId: string): RecordedRequest[] {
  return server.requestsTo(`/${runId}/heartbeat`)
}
