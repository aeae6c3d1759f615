/**
 * The live route: `GET /{runId}/events`, a run's status as Server-Sent Events, and the streams'
 * lifecycle (the registry and its run watcher, created on the first stream; `close`; the
 * counts). Internal.
 */
import type { RequestAuth } from '../auth/authenticate.js'
import type { Plumbing, RouteHandler } from '../http/exchange.js'
import { acceptsDirectEvents, directEventsResponse } from '../http/direct-events.js'
import { HttpProblemError } from '../http/problem-response.js'
import { runNotFound } from '../http/validate.js'
import { HEADERS } from '../../contract/headers.js'
import { EventStreams, type LiveStreamStats, OUTPUTS_PARAMETER } from '../live/event-stream.js'
import { RunWatcher } from '../live/run-watcher.js'
import type { HandlerSettings } from '../settings.js'

/** The live route and what its streams need at shutdown and for metrics. */
export interface LiveRoutes {
  readonly events: RouteHandler
  /** Ends every open stream and stops the watcher; later stream requests are answered 503. */
  close(): Promise<void>
  /** Open streams and slow streams closed so far. */
  liveStats(): LiveStreamStats
}

/** Builds the live route of one handlers instance. */
export function createLiveRoutes(settings: HandlerSettings, plumbing: Plumbing, auth: RequestAuth): LiveRoutes {
  const { store, logger, live } = settings
  // Created on the first stream, so handlers that never stream poll nothing and hold no connection.
  let streams: EventStreams | undefined
  let watcher: RunWatcher | undefined
  let closed = false

  const openStreams = (): EventStreams => {
    if (streams) return streams
    watcher = new RunWatcher({
      store,
      pollIntervalMs: live.pollIntervalMs,
      safetyPollIntervalMs: live.safetyPollIntervalMs,
      source: live.listen,
      logger,
    })
    streams = new EventStreams(watcher, {
      keepAliveMs: live.keepAliveMs,
      retryMs: live.retryMs,
      maxBufferedBytes: live.maxBufferedBytes,
      onSlowStream: ({ runId, bufferedBytes }) =>
        logger.warn(
          `pipeline-status: closed a live stream of run ${runId} whose reader fell ${bufferedBytes} bytes behind (limit live.maxBufferedBytes = ${live.maxBufferedBytes} beyond its snapshot); it reconnects with a fresh snapshot. A client that stops reading, or a link slower than the run's changes, does this; raise live.maxBufferedBytes if the link is just slow`,
          { runId, bufferedBytes, maxBufferedBytes: live.maxBufferedBytes },
        ),
      statusDocument: settings.statusDocument,
      onStreamsChanged: settings.instrumentation.streamsChanged,
    })
    return streams
  }

  const streamsUnavailable = (detail: string): HttpProblemError =>
    new HttpProblemError('too_many_streams', { detail }, { [HEADERS.retryAfter]: settings.retryAfter })

  const events = plumbing.route('events', async (exchange, { runId }) => {
    const access = await auth.read(exchange, 'events', runId, 'stream')
    if (closed) throw streamsUnavailable('The server is shutting down; reconnect shortly')
    const registry = openStreams()
    if (registry.size >= live.maxStreams) {
      throw streamsUnavailable(`This server holds its limit of ${live.maxStreams} open streams; retry later`)
    }
    const { request } = exchange
    // Last-Event-ID needs nothing more: every connection starts with a fresh snapshot.
    const omitUnchangedOutputs = new URL(request.url).searchParams.get(OUTPUTS_PARAMETER) === 'changed'
    const body = await registry.open(runId, () => access.load(() => store.getRun(runId)), request.signal, omitUnchangedOutputs, access.admits)
    if (!body) throw runNotFound()
    const init: ResponseInit = {
      status: 200,
      headers: {
        'Content-Type': 'text/event-stream; charset=utf-8',
        // no-transform: a compressing proxy or middleware must not buffer the events.
        'Cache-Control': 'no-cache, no-transform',
        // nginx buffers proxied responses unless told otherwise.
        'X-Accel-Buffering': 'no',
      },
    }
    // The Node bridge writes the stream to its response itself: no Web stream to hold per stream.
    return acceptsDirectEvents(request) ? directEventsResponse(body, init) : new Response(body.readable(), init)
  })

  const close = async (): Promise<void> => {
    closed = true
    streams?.close()
    await watcher?.close()
  }

  const liveStats = (): LiveStreamStats => streams?.stats() ?? { openStreams: 0, slowStreamsClosed: 0 }

  return { events, close, liveStats }
}
