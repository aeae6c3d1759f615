/**
 * A small real HTTP server that speaks the live status protocol of DESIGN.md ("Live status"):
 * `text/event-stream` with `event: snapshot | update | end`, `id:` = run version, `retry:`,
 * comment lines. Each connection is scripted by the test, which also sees the request headers,
 * so it can drop a connection mid-run and check `Last-Event-ID` on the reconnect.
 */
import { once } from 'node:events'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { PipelineRunRecord, RunStatusResponse, RunSummary, StageOutputRecord } from 'pipeline-status-sdk'

/** One connection to the events route, as the script sees it. */
export interface StreamConnection {
  /** The request's headers, lower-case names. */
  headers: IncomingMessage['headers']
  /** Writes raw SSE text. */
  write(text: string): void
  /** Writes one event. */
  event(name: string, id: number, data: unknown): void
  /** Ends the response cleanly (the stream ends without `end`). */
  end(): void
  /** Destroys the socket mid-stream, as a proxy or a network failure would. */
  drop(): void
  /** Resolves when the client closed the connection. */
  closed: Promise<void>
}

/** What the fixture does with the n-th request of a path (0-based); `undefined` is a 404 route_not_found. */
export type Script = (request: IncomingMessage, response: ServerResponse, index: number) => void | Promise<void>

/** A started fixture server. */
export interface SseFixture {
  /** Base URL of the routes, e.g. `http://127.0.0.1:1234/api/pipeline`. */
  url: string
  /** Requests received, by path, in order. */
  requests: { method: string; path: string; search: string; headers: IncomingMessage['headers'] }[]
  close(): Promise<void>
}

/** Starts a server whose routes under `/api/pipeline/{runId}/…` are scripted per action (`events`, `status`). */
export async function startSseFixture(scripts: Partial<Record<'events' | 'status', Script>>): Promise<SseFixture> {
  const counts = new Map<string, number>()
  const requests: SseFixture['requests'] = []
  const server = createServer((request, response) => {
    const [path = '/', query] = (request.url ?? '/').split('?', 2)
    requests.push({ method: request.method ?? 'GET', path, search: query === undefined ? '' : `?${query}`, headers: request.headers })
    const action = /^\/api\/pipeline\/[^/]+\/(events|status)$/.exec(path)?.[1] as 'events' | 'status' | undefined
    const script = action ? scripts[action] : undefined
    if (!script) {
      response.writeHead(404, { 'content-type': 'application/problem+json' })
      response.end(JSON.stringify({ type: 'urn:pipeline-status-sdk:problem:route-not-found', title: 'No such route', status: 404, code: 'route_not_found' }))
      return
    }
    const index = counts.get(path) ?? 0
    counts.set(path, index + 1)
    void script(request, response, index)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}/api/pipeline`,
    requests,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections()
        server.close((error) => (error ? reject(error) : resolve()))
      }),
  }
}

/** Opens an event stream on a response. */
export function openStream(request: IncomingMessage, response: ServerResponse): StreamConnection {
  response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' })
  response.flushHeaders()
  const closed = once(response, 'close').then(() => {})
  return {
    headers: request.headers,
    write: (text) => void response.write(text),
    event: (name, id, data) => void response.write(`event: ${name}\nid: ${id}\ndata: ${JSON.stringify(data)}\n\n`),
    end: () => void response.end(),
    drop: () => void request.socket.destroy(),
    closed,
  }
}

const T0 = '2026-01-01T00:00:00.000Z'

/** A run record in a status. */
export function runRecord(id: string, status: PipelineRunRecord['status'], at = T0): PipelineRunRecord {
  return {
    id,
    status,
    error: null,
    completedAt: status === 'COMPLETED' ? at : null,
    completionReceivedAt: null,
    createdAt: T0,
    updatedAt: at,
    lastActivityAt: null,
    heartbeatIntervalMs: null,
    pipeline: 'default',
    tags: [],
    metadata: {},
    startedAt: null,
  }
}

/** A stage record. */
export function stageRecord(stageNumber: number, status: StageOutputRecord['status'], output: string | null = null): StageOutputRecord {
  return {
    stageNumber,
    stageName: `Stage ${stageNumber}`,
    status,
    output,
    completedAt: status === 'COMPLETED' ? T0 : null,
    progress: null,
    createdAt: T0,
    updatedAt: T0,
    startedAt: T0,
    attempt: null,
    maxAttempts: null,
    lastError: null,
    nextRetryAt: null,
    outputSeq: null,
  }
}

/** A status document. */
export function statusDocument(run: PipelineRunRecord, stages: StageOutputRecord[]): RunStatusResponse {
  return { run, stages }
}

/** A list item created `minute` minutes after midnight. */
export function summary(id: string, minute: number, status: RunSummary['status'] = 'PROCESSING', version = 1): RunSummary {
  return {
    id,
    status,
    pipeline: 'default',
    tags: ['nightly'],
    metadata: {},
    createdAt: `2026-01-01T00:${String(minute).padStart(2, '0')}:00.000Z`,
    startedAt: null,
    completedAt: status === 'COMPLETED' ? '2026-01-01T01:00:00.000Z' : null,
    error: null,
    version,
    currentStage: status === 'PROCESSING' ? 1 : null,
    stageCounts: { PENDING: 2, PROCESSING: status === 'PROCESSING' ? 1 : 0, COMPLETED: status === 'COMPLETED' ? 3 : 0, FAILED: 0, CANCELLED: 0 },
  }
}
