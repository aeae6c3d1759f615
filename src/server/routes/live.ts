/**
 * The live routes: `GET /{runId}/events`, a run's status as Server-Sent Events, `GET /events`, a
 * set of runs as one stream (the list's filters or `run=` ids), and the streams' lifecycle (the
 * registries, their run watcher and the set streams' windows, created on the first stream;
 * `close`; the counts). Internal.
 */
import { bearerReadToken, type RequestAuth, type RunReadAccess, verifySignature } from '../auth/authenticate.js'
import { authorizeRunSet } from '../auth/list-access.js'
import { acceptsDirectEvents, directEventsResponse } from '../http/direct-events.js'
import type { Exchange, Plumbing, RouteHandler } from '../http/exchange.js'
import { HttpProblemError, isHttpProblemError } from '../http/problem-response.js'
import { readBodyLimited } from '../http/read-body.js'
import { runNotFound } from '../http/validate.js'
import { HEADERS } from '../../contract/headers.js'
import { errorMessage } from '../../internal/error-message.js'
import { PROBLEM_CODES } from '../../contract/problem.js'
import { parseSetStreamQuery } from '../../contract/run-list-query.js'
import { catalogueOfRun } from '../../core/run-catalogue.js'
import { applyScope, matchesRunFilter, summarizeRun, toRunListItem } from '../../core/run-list.js'
import { EventStreams, type LiveStreamStats, OUTPUTS_PARAMETER, resumeVersion, type StreamClosed, zeroClosedStreams } from '../live/event-stream.js'
import type { EventStreamBody } from '../live/event-sink.js'
import { CredentialExpiry } from '../live/credential-expiry.js'
import { type ReplayTooLong, RunWatcher } from '../live/run-watcher.js'
import { presentedVersion } from '../../core/known-versions.js'
import { RunWindows } from '../live/run-window.js'
import { type ListedRun, ListedRunNotFound, SetStreams } from '../live/set-stream.js'
import type { HandlerSettings } from '../settings.js'

/** The headers of every event stream. */
const STREAM_HEADERS = {
  'Content-Type': 'text/event-stream; charset=utf-8',
  // no-transform: a compressing proxy or middleware must not buffer the events.
  'Cache-Control': 'no-cache, no-transform',
  // nginx buffers proxied responses unless told otherwise.
  'X-Accel-Buffering': 'no',
} as const

/**
 * The answer of an open stream, a run's or a set's: a `Request` the Node bridge marked gets a
 * bodiless `Response` carrying the stream, which the bridge writes to its response itself (no Web
 * stream to hold per stream); any other caller gets the Web stream body.
 */
function eventsResponse(request: Request, body: EventStreamBody): Response {
  const init: ResponseInit = { status: 200, headers: STREAM_HEADERS }
  return acceptsDirectEvents(request) ? directEventsResponse(body, init) : new Response(body.readable(), init)
}

/**
 * The grant of a listed run that the secret or a signature covers. One object for all: closures
 * made per request would keep that request's context (its `Request`, signal and headers) alive
 * for as long as the set stream is open (~1.5 KB per idle stream; bench/README.md, "Idle streams").
 */
const GRANTED: RunReadAccess = { load: (load) => load(), admits: () => true }

/** The live routes and what their streams need at shutdown and for metrics. */
export interface LiveRoutes {
  readonly events: RouteHandler
  readonly runSetEvents: RouteHandler
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
  let sets: SetStreams | undefined
  let windows: RunWindows | undefined
  let closed = false

  // A catch-up past live.maxReplayedChunks got a snapshot instead: the first of each cause is logged.
  const replayLogged = new Set<ReplayTooLong['cause']>()
  const onReplayTooLong = ({ cause, runId, from, version, maxReplayedChunks }: ReplayTooLong): void => {
    if (replayLogged.has(cause)) return
    replayLogged.add(cause)
    const what =
      cause === 'resume'
        ? `a reconnect of run ${runId} with Last-Event-ID ${from} had more than live.maxReplayedChunks = ${maxReplayedChunks} streamed output chunks to replay (after version ${from}, up to ${version})`
        : `a live stream of run ${runId} was more than live.maxReplayedChunks = ${maxReplayedChunks} streamed output chunks behind (after version ${from}, up to ${version}): the process read the run's changes less often than they were written (slow or failed reads)`
    logger.warn(
      `pipeline-status: ${what}, so it got a fresh snapshot with the text so far instead; nothing is lost. Raise live.maxReplayedChunks to replay longer catch-ups chunk by chunk (each chunk is one row read and one event). Logged once per process for this cause`,
      { cause, runId, from, version, maxReplayedChunks },
    )
  }

  // Streams opened with a credential that expires (read tokens, a session `authorize` gave an
  // `expiresAt`) end at its expiry: one timer for every stream of this instance, armed for the
  // earliest expiry (the handlers' clock decides).
  const expiry = new CredentialExpiry(() => settings.clock().getTime())

  // A stream the server ended before its run's end (besides shutdown and slow readers): each is
  // counted by cause (liveStats().closedStreams), and the first of each cause is logged, a warning
  // for every cause (the server never logs at info, which the default logger drops), saying
  // whether it is expected and the fix.
  const closedLogged = new Set<StreamClosed['cause']>()
  const closedStreams = zeroClosedStreams()
  const onClosed = (closed: StreamClosed): void => {
    const { cause, runId, stream } = closed
    closedStreams[cause] += 1
    settings.instrumentation.streamClosed({ cause, stream })
    if (closedLogged.has(cause)) return
    closedLogged.add(cause)
    if (closed.cause === 'credential-expired') {
      const which = stream === 'run' ? `a live stream of run ${runId}` : 'a set stream'
      const expiresAt = new Date(closed.expiresAt).toISOString()
      logger.warn(
        `pipeline-status: ended ${which} because the credential it was opened with expired (${expiresAt}): a read token, or the app's session whose expiresAt the authorize hook answered with. A credential stops admitting at its expiry, whether or not the run changes. The subscriber got ': closed credential-expired'; its reconnect with the same token is refused (401 invalid_read_token, expired), and with a session authorize is asked again. Expected when a page outlives its token or session; if the page should keep following, give it a new token before the old one expires (or a longer expiresInSeconds), or have authorize answer the renewed session's expiresAt. Logged once per process for this cause`,
        { cause, runId, expiresAt, stream },
      )
      return
    }
    if (closed.cause === 'membership-failed') {
      logger.warn(
        `pipeline-status: ended a set stream because the new membership of its filter's window could not be applied after its start (${errorMessage(closed.error)}): the stream could no longer say which runs it follows. The subscriber got ': closed membership-failed' and reconnects to fresh snapshots, so nothing is lost, but this should not happen: if it recurs, report it with the error logged here (the stream's runs, their pipelines and the store in use). Logged once per process for this cause`,
        { cause, stream, error: closed.error },
      )
      return
    }
    if (closed.cause === 'deleted') {
      const which = stream === 'run' ? `a live stream of run ${runId}` : `a set stream following run ${runId}`
      logger.warn(
        `pipeline-status: ended ${which} because the run is no longer stored: it was deleted while unfinished (by the app or by hand; the retention sweep deletes finished runs only, whose own streams have ended). The subscriber got ': closed deleted'; its reconnect is answered 404 run_not_found. Expected when the app deletes runs that are still running; otherwise find what deleted it. Logged once per process for this cause`,
        { cause, runId, stream },
      )
      return
    }
    const { version } = closed
    const which = stream === 'run' ? `a live stream of run ${runId}` : `a set stream following run ${runId}`
    const details = { cause, runId, version, stream }
    if (cause === 'update-unavailable') {
      logger.warn(
        `pipeline-status: ended ${which} because its next update (version ${version}) could not be made: a stage was created or restarted, streamed and finished between two reads of the run, and the read without the streamed text cannot carry that stage's whole text. The subscriber got ': closed update-unavailable' and reconnects (a resume or a fresh snapshot), so nothing is lost, but this race should be rare: if it recurs, this process reads runs' changes late (look for 'reading run … failed' warnings, a slow database, or LISTEN falling back to polling). Logged once per process for this cause`,
        details,
      )
    } else {
      logger.warn(
        `pipeline-status: ended ${which} because the request's credential no longer covers the run as it now is (a tag read token whose tag the run no longer carries, or a run that left the app's listScope), so version ${version} was not sent. The subscriber got ': closed not-admitted'; its reconnect is judged afresh and refused. Expected when a run's tags change; if the page should keep following the run, keep the tag on it or give the page a credential that covers it. Logged once per process for this cause`,
        details,
      )
    }
  }

  const openStreams = (): EventStreams => {
    if (streams) return streams
    watcher ??= new RunWatcher({
      store,
      pollIntervalMs: live.pollIntervalMs,
      safetyPollIntervalMs: live.safetyPollIntervalMs,
      source: live.listen,
      logger,
      onVersion: settings.reads.note,
      maxReplayedChunks: live.maxReplayedChunks,
      onReplayTooLong,
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
      maxReplayedChunks: live.maxReplayedChunks,
      onReplayTooLong,
      onClosed,
      expiry,
    })
    return streams
  }

  const openSets = (): SetStreams => {
    if (sets) return sets
    openStreams()
    const runWatcher = watcher as RunWatcher
    windows = new RunWindows({ store, watcher: runWatcher, pollIntervalMs: live.pollIntervalMs, safetyPollIntervalMs: live.safetyPollIntervalMs, logger })
    sets = new SetStreams(
      runWatcher,
      windows,
      {
        keepAliveMs: live.keepAliveMs,
        retryMs: live.retryMs,
        maxBufferedBytes: live.maxBufferedBytes,
        onSlowStream: ({ bufferedBytes }) =>
          logger.warn(
            `pipeline-status: closed a set stream whose reader fell ${bufferedBytes} bytes behind (limit live.maxBufferedBytes = ${live.maxBufferedBytes} beyond its first snapshots); it reconnects with fresh snapshots. A client that stops reading, or a link slower than the runs' changes, does this; raise live.maxBufferedBytes if the link is just slow`,
            { bufferedBytes, maxBufferedBytes: live.maxBufferedBytes },
          ),
        statusDocument: settings.statusDocument,
        // The run's own catalogue, else its pipeline's current one (as GET /runs counts it).
        summary: (snapshot) =>
          summarizeRun(toRunListItem(snapshot.run, snapshot.version ?? 0, snapshot.stages), catalogueOfRun(snapshot.run, settings.pipelines)?.length ?? 0),
        onStreamsChanged: settings.instrumentation.streamsChanged,
        onClosed,
        expiry,
      },
      (runId) => settings.reads.getRun(runId, 'snapshot'),
    )
    return sets
  }

  /** 503 while shutting down or at the cap, which single-run and set streams share. */
  const checkCapacity = (): void => {
    if (closed) throw streamsUnavailable('The server is shutting down; reconnect shortly')
    if ((streams?.size ?? 0) + (sets?.size ?? 0) >= live.maxStreams) {
      throw streamsUnavailable(`This server holds its limit of ${live.maxStreams} open streams; retry later`)
    }
  }

  const streamsUnavailable = (detail: string): HttpProblemError =>
    new HttpProblemError('too_many_streams', { detail }, { [HEADERS.retryAfter]: settings.retryAfter })

  const events = plumbing.route('events', async (exchange, { runId }) => {
    const access = await auth.read(exchange, 'events', runId, 'stream')
    checkCapacity()
    const registry = openStreams()
    const { request } = exchange
    const omitUnchangedOutputs = new URL(request.url).searchParams.get(OUTPUTS_PARAMETER) === 'changed'
    // A reconnect resumes exactly after its Last-Event-ID when the store keeps streamed output
    // chunks and the version is one the run had (checked against the run as read); anything else
    // (no id, a malformed one, one past the run's version) starts with a fresh snapshot. The run is
    // read from the replica only when its copy is not older than that id (settings.reads).
    const lastEventId = presentedVersion(request.headers.get('last-event-id'))
    const from = resumeVersion(request.headers.get('Last-Event-ID'))
    const { getOutputChunksSince } = store
    const resume =
      from !== undefined && getOutputChunksSince
        ? { from, chunksSince: (version: number, limit: number) => getOutputChunksSince.call(store, runId, version, limit) }
        : undefined
    const body = await registry.open(
      runId,
      () => access.load(() => settings.reads.getRun(runId, 'snapshot', lastEventId)),
      request.signal,
      omitUnchangedOutputs,
      access.admits,
      resume,
      access.expiresAt,
    )
    if (!body) throw runNotFound()
    return eventsResponse(request, body)
  })

  /**
   * The grants of a `run=` stream's runs, each as its own stream would judge it (the first
   * refusal is thrown, answering the whole request). The secret covers all; a signature is
   * verified once, for this route (`events`), not once per run.
   */
  const listedGrants = async (exchange: Exchange, runIds: readonly string[]): Promise<RunReadAccess[]> => {
    const { request } = exchange
    const all = (): RunReadAccess[] => runIds.map(() => GRANTED)
    if (await settings.auth.secretMatches(request)) return all()
    if (settings.auth.isSigned(request) && bearerReadToken(request, settings.readTokenSecrets) === undefined) {
      await verifySignature(settings.auth, request, await readBodyLimited(request, settings.maxBodyBytes), { path: 'events' }, undefined)
      return all()
    }
    const grants: RunReadAccess[] = []
    for (const runId of runIds) grants.push(await namingRun(runId, () => auth.read(exchange, 'events', runId, 'stream')))
    return grants
  }

  /**
   * A refusal of one listed run (401, 403, 404) names it in the problem's `runId` member, so that
   * a page's shared connection hands that run its own answer and keeps the others together.
   */
  const namingRun = async <T>(runId: string, judge: () => Promise<T>): Promise<T> => {
    try {
      return await judge()
    } catch (error) {
      if (!isHttpProblemError(error) || ![401, 403, 404].includes(PROBLEM_CODES[error.code])) throw error
      throw new HttpProblemError(error.code, { ...error.extras, runId }, error.headers)
    }
  }

  const runSetEvents = plumbing.route('runSetEvents', async (exchange) => {
    const query = parseSetStreamQuery(new URL(exchange.request.url).searchParams)
    if (!query.ok) {
      throw new HttpProblemError(query.code, { detail: query.message, errors: [{ field: query.parameter, message: query.message }] })
    }
    const { signal } = exchange.request
    let body: EventStreamBody
    if (query.value.kind === 'runs') {
      const { runIds, view } = query.value
      const grants = await listedGrants(exchange, runIds)
      checkCapacity()
      const runs: ListedRun[] = runIds.map((runId, index) => {
        const grant = grants[index] as RunReadAccess
        return { runId, read: () => namingRun(runId, () => grant.load(() => settings.reads.getRun(runId, 'snapshot'))), admits: grant.admits }
      })
      // One credential judged each run: the stream ends when the first of their expiries passes.
      const expiresAt = Math.min(...grants.map((grant) => grant.expiresAt ?? Infinity))
      try {
        body = await openSets().openRuns(runs, view, signal, Number.isFinite(expiresAt) ? expiresAt : undefined)
      } catch (error) {
        if (error instanceof ListedRunNotFound) {
          throw new HttpProblemError('run_not_found', { detail: `No pipeline run has the id given as run=${JSON.stringify(error.runId.slice(0, 128))}`, runId: error.runId })
        }
        throw error
      }
    } else {
      const { filter, limit, view } = query.value
      const access = await authorizeRunSet(exchange, settings)
      if (access instanceof Response) return access
      if (!store.listRunWindow && !store.listRuns) {
        throw new HttpProblemError('not_implemented', { detail: "This server's store implements neither Store.listRunWindow nor Store.listRuns, so it cannot follow runs by filters" })
      }
      checkCapacity()
      const effective = applyScope(filter, access.scope)
      body = await openSets().openFilter(effective, limit, view, signal, (snapshot) => matchesRunFilter(snapshot.run, effective), access.expiresAt)
    }
    return eventsResponse(exchange.request, body)
  })

  const close = async (): Promise<void> => {
    closed = true
    streams?.close()
    sets?.close()
    expiry.close()
    windows?.close()
    await watcher?.close()
  }

  const liveStats = (): LiveStreamStats => {
    const single = streams?.stats() ?? { openStreams: 0, slowStreamsClosed: 0 }
    const set = sets?.stats() ?? { openStreams: 0, slowStreamsClosed: 0 }
    return {
      openStreams: single.openStreams + set.openStreams,
      slowStreamsClosed: single.slowStreamsClosed + set.slowStreamsClosed,
      closedStreams: { ...closedStreams },
    }
  }

  return { events, runSetEvents, close, liveStats }
}
