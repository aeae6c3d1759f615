/**
 * A small fake server for `runPipeline` on the wire: the client's `fetch`, answering the create,
 * stage-update and complete routes for runs that all live in one pipeline with a two-stage
 * catalogue (`Fetch`, `Summarise`), and recording every request body.
 */
import { type Logger, PrismaAPIClient, type PrismaAPIClientOptions, silentLogger } from 'pipeline-status-sdk/client'

const ORIGIN = 'http://pipelines.test'
const SECRET = 'pipelines-secret'
const NOW = '2026-01-08T00:00:00.000Z'

const runRecord = (id: string, pipeline: string, status = 'PROCESSING') => ({
  id, status, error: null, completedAt: null, completionReceivedAt: null, createdAt: NOW, updatedAt: NOW,
  lastActivityAt: null, heartbeatIntervalMs: null, pipeline, tags: [], metadata: {}, startedAt: null,
})

/**
 * A client whose runs all live in `pipeline` with a two-stage catalogue. `created: false` answers
 * `POST /runs` like the server does for an id that exists (200, `created: false`); `logger`
 * replaces the silent one; `client` adds client options; `answer` may answer a request first (`undefined`: the default
 * answer); a streamed output chunk is answered `applied` with its `seq` as `outputSeq`.
 */
export function fakePipelineServer(
  pipeline: string,
  options: { created?: boolean; logger?: Logger; client?: PrismaAPIClientOptions; answer?: (path: string, body: Record<string, unknown>) => Response | undefined } = {},
) {
  const created = options.created ?? true
  const bodies: { path: string; body: Record<string, unknown> }[] = []
  const fetch = async (input: string, init: RequestInit): Promise<Response> => {
    const { pathname } = new URL(input)
    const body = JSON.parse(String(init.body ?? '{}')) as Record<string, unknown>
    bodies.push({ path: pathname, body })
    const answered = options.answer?.(pathname, body)
    if (answered) return answered
    const json = (value: unknown, status = 200) => new Response(JSON.stringify(value), { status, headers: { 'content-type': 'application/json' } })
    if (pathname.endsWith('/runs')) {
      const catalogue = [{ stageNumber: 1, stageName: 'Fetch' }, { stageNumber: 2, stageName: 'Summarise' }]
      return json({ created, run: runRecord(String(body['id']), pipeline, 'PENDING'), catalogue }, created ? 201 : 200)
    }
    const runId = decodeURIComponent(pathname.split('/')[3] ?? '')
    if (pathname.endsWith('/complete')) return json({ outcome: 'applied', run: runRecord(runId, pipeline, 'COMPLETED') })
    const chunkOf = /\/stages\/(\d+)\/output$/.exec(pathname)
    if (chunkOf) return json({ outcome: 'applied', stage: { stageNumber: Number(chunkOf[1]), outputSeq: body['seq'] }, run: runRecord(runId, pipeline) })
    const stage = { stageNumber: body['stageNumber'], stageName: body['stageName'], status: body['status'], output: null, completedAt: null, progress: null, createdAt: NOW, updatedAt: NOW }
    return json({ outcome: 'applied', stage, run: runRecord(runId, pipeline) })
  }
  const client = new PrismaAPIClient({ baseUrl: ORIGIN, secret: SECRET, fetch, logger: options.logger ?? silentLogger, heartbeatIntervalMs: 60_000, ...options.client })
  return { client, bodies }
}
