/**
 * The run-end watch: while `runPipeline` runs a stage, the client follows its own run's live
 * stream in the set stream's summary view (`GET {base}/events?run={runId}&view=summary`: the
 * run's `end` without its stages' outputs or streamed chunks; on an older server without that
 * route, `GET {base}/{runId}/events`), an outbound connection authenticated like its other
 * requests, and aborts the stage within a second of the run ending elsewhere (a cancel from the
 * web app, the stale-run sweeper, another runner), instead of at the next heartbeat. At most one
 * stream per run, shared by its stages, closed when the run's pipeline ends. The stream is read
 * by the package's one stream reader (`src/contract/event-stream.ts`), with its connect deadline
 * and keep-alive watchdog. Heartbeats go on all along: they are the fallback when the stream is
 * unavailable (a server without the route, a proxy that refuses long requests). Internal.
 */
import type { EventSourceMessage } from 'eventsource-parser/stream'
import { type StreamErrors, readProblem, streamOnce } from '../contract/event-stream.js'
import { closedStops, LIVE_EVENTS, type StreamClosedComment } from '../contract/live-status.js'
import { PipelineRunRecord } from '../contract/records.js'
import { isFinalStatus, type RunStatus } from '../contract/status.js'
import { DEFAULT_SERVER_KEEP_ALIVE_MS } from '../internal/attempt-deadline.js'
import { backoffDelay } from '../internal/backoff.js'
import { sleep } from '../internal/sleep.js'
import { failureReason } from './failure-reason.js'
import type { Logger } from './logger.js'
import type { RunFinishedObserver } from './run-finished.js'
import type { Transport } from './transport.js'

/** The first wait after a failed stream attempt (full jitter, doubling), in milliseconds. */
const RECONNECT_BASE_MS = 1000
/** The longest wait between two stream attempts, in milliseconds. */
const RECONNECT_MAX_MS = 30_000

/** One pipeline's hold on its run's stream. */
export interface RunStreamHold {
  /** A stage runs: a run seen finished on the stream now aborts it. */
  arm(): void
  /** No stage runs (the runner is about to send its own final status): a finished run is not news. */
  disarm(): void
  /** The pipeline ended: the stream closes when no other hold of the run is left. */
  release(): void
}

/** A stream attempt's refusal, with the status that decides whether to try again. */
class StreamRefusedError extends Error {
  override readonly name = 'StreamRefusedError'
  constructor(
    message: string,
    readonly status: number,
    /** The problem's `code`, when the answer was one. */
    readonly code?: string,
  ) {
    super(message)
  }
}

/**
 * A refusal of the runner's credential itself (a wrong secret or signature): every update of the
 * run is refused the same way, and delivery logs that cause once, as an error with its fix.
 */
function isCredentialRefusal(error: unknown): boolean {
  return error instanceof StreamRefusedError && error.status === 401 && (error.code === 'unauthorized' || error.code === 'invalid_signature')
}

/** The run-end watch's errors: plain messages for its log lines, a status on refusals. */
const WATCH_ERRORS: StreamErrors = {
  silent: (silentMs) => new Error(`the stream sent nothing, not even a keep-alive, for ${silentMs} ms`),
  connect: (connectMs) => new Error(`no answer headers within ${connectMs} ms`),
  refused: async (response) => {
    const problem = await readProblem(response)
    return new StreamRefusedError(`HTTP ${response.status}${problem ? ` ${problem.code}${problem.detail ? `: ${problem.detail}` : ''}` : ''}`, response.status, problem?.code)
  },
  notEventStream: (type, status) => new StreamRefusedError(`HTTP ${status} answered ${type || 'no content type'}, not text/event-stream (a proxy's page?)`, status),
}

/** Whether another attempt may succeed: everything but a 4xx other than 408 and 429 (401, 403, an unknown run). */
function isRetriable(error: unknown): boolean {
  if (!(error instanceof StreamRefusedError)) return true
  const { status } = error
  return !(status >= 400 && status < 500 && status !== 408 && status !== 429)
}

/** One run's stream: its holds, its armed stages, its loop. */
interface Watch {
  holds: number
  armed: number
  readonly controller: AbortController
  /** Whether its loop was started (at the first `arm`); it is never started twice. */
  following: boolean
}

/** Holds one stream per run for the client's pipelines. */
export class RunEndWatches {
  readonly #transport: Transport
  readonly #observer: RunFinishedObserver
  readonly #logger: Logger
  readonly #url: (runId: string) => string
  readonly #summaryUrl: ((runId: string) => string) | undefined
  /** The deadline of a stream's answer headers, in milliseconds (the client's `timeoutMs`). */
  readonly #connectMs: number
  readonly #heartbeatIntervalMs: number
  readonly #watches = new Map<string, Watch>()
  /** Each degradation is logged once per client at warn, later ones at debug. */
  readonly #logged = new Set<'no-stream' | 'refused' | 'failing'>()

  /**
   * `url`: the run's own stream; `summaryUrl`: the set stream of that one run in the summary view,
   * followed first (no outputs sent back to the runner), `url` when the server has no such route.
   */
  constructor(options: {
    transport: Transport
    observer: RunFinishedObserver
    logger: Logger
    url: (runId: string) => string
    summaryUrl?: ((runId: string) => string) | undefined
    connectMs: number
    heartbeatIntervalMs: number
  }) {
    this.#transport = options.transport
    this.#observer = options.observer
    this.#logger = options.logger
    this.#url = options.url
    this.#summaryUrl = options.summaryUrl
    this.#connectMs = options.connectMs
    this.#heartbeatIntervalMs = options.heartbeatIntervalMs
  }

  /**
   * Shares the run's stream until the hold is released. The stream opens when a stage first
   * runs (`arm`): a run that ended before its first stage costs no stream.
   */
  hold(runId: string): RunStreamHold {
    let watch = this.#watches.get(runId)
    if (watch === undefined) {
      watch = { holds: 0, armed: 0, controller: new AbortController(), following: false }
      this.#watches.set(runId, watch)
    }
    const held = watch
    held.holds += 1
    let armed = false
    let released = false
    return {
      arm: () => {
        if (armed || released) return
        armed = true
        held.armed += 1
        if (!held.following && !held.controller.signal.aborted) {
          held.following = true
          // Once its loop ends (the run ended, no stream route), the run is not followed again until released.
          void this.#follow(runId, held)
        }
      },
      disarm: () => {
        if (!armed) return
        armed = false
        held.armed -= 1
      },
      release: () => {
        if (released) return
        released = true
        if (armed) held.armed -= 1
        armed = false
        held.holds -= 1
        if (held.holds === 0) this.#close(runId, held)
      },
    }
  }

  /** The runs whose stream is held (open, connecting or waiting to reconnect). */
  get size(): number {
    return this.#watches.size
  }

  /** Stops following the run (it was learned finished another way). */
  stop(runId: string): void {
    const watch = this.#watches.get(runId)
    if (watch) this.#close(runId, watch)
  }

  /** Closes every stream (the client closes). */
  stopAll(): void {
    for (const [runId, watch] of [...this.#watches]) this.#close(runId, watch)
  }

  #close(runId: string, watch: Watch): void {
    watch.controller.abort()
    if (this.#watches.get(runId) === watch) this.#watches.delete(runId)
  }

  /** Follows the run's stream until it ends, the run is seen finished, the watch closes, or the stream cannot be had. */
  async #follow(runId: string, watch: Watch): Promise<void> {
    const { signal } = watch.controller
    // The summary view first; the run's own stream (which echoes every chunk) on an older server.
    let summary = this.#summaryUrl !== undefined
    let url = summary ? (this.#summaryUrl as (runId: string) => string)(runId) : this.#url(runId)
    let keepAliveMs = DEFAULT_SERVER_KEEP_ALIVE_MS
    let failures = 0
    /** Applies one event; `true` when the stream has nothing more to tell (`end`, or the run seen finished). */
    const onEvent = (message: EventSourceMessage): boolean => {
      failures = 0
      const end = message.event === LIVE_EVENTS.end
      if (!end && message.event !== LIVE_EVENTS.snapshot && message.event !== LIVE_EVENTS.update) return false
      const run = finishedRun(message.data)
      if (run === undefined) return end
      // Seen while no stage runs, a finished run is the runner's own final status (or is learned
      // from the next report's answer); while this client's own finishing update is delivered,
      // that update's answer says who finished the run.
      if (watch.armed > 0 && !this.#observer.ownFinishPending(runId)) this.#observer.observe(runId, run, 'stream', false)
      return true
    }
    while (!signal.aborted) {
      let failure: unknown
      // The server's `: closed <cause>` comment of this attempt, when it said why it ended the stream.
      let closed: StreamClosedComment | undefined
      try {
        const { headers, fetch } = await this.#transport.openRequest(url, 'text/event-stream')
        const outcome = await streamOnce({
          url,
          fetch,
          signal,
          headers,
          connectMs: this.#connectMs,
          errors: WATCH_ERRORS,
          keepAliveMs: () => keepAliveMs,
          onKeepAlive: (ms) => {
            keepAliveMs = ms
          },
          onOpen: () => {
            this.#logger.debug?.(`Run ${runId}: following the run's live stream (a cancel reaches the running stage within a second)`, { runId })
          },
          onClosed: (comment) => {
            // A `run=` stream of this one run, or the run's own: a comment naming another run is not about it.
            if (comment.runId === undefined || comment.runId === runId) closed = comment
          },
          onEvent,
        })
        if (outcome === 'ended') return
        // The subscribers' one rule (the contract's `closedStops`, judged by the request's own
        // credential: the webhook secret or a signature, never a read token): stop where
        // reconnecting cannot help; otherwise reconnect as after any drop.
        if (closed !== undefined && closedStops(closed.cause, new Headers(headers).get('authorization'))) {
          // The run is gone: its pipeline is told (it stops the stage and sends nothing more), which also stops this watch.
          if (closed.cause === 'deleted') return this.#observer.deleted(runId)
          return this.#degraded(runId, 'refused', `the server ended GET ${url} with ': closed ${closed.cause}' (the runner's credential no longer covers the run as it now is) and reconnecting cannot help`)
        }
        if (outcome === 'no-stream' && summary) {
          // An older server (no set stream route) is normal: a debug note, no warning.
          this.#logger.debug?.(`Run ${runId}: GET ${url} answered 404 or 405 (a server without the set stream); following GET ${this.#url(runId)} instead`, { runId })
          summary = false
          url = this.#url(runId)
          continue
        }
        if (outcome === 'no-stream') return this.#degraded(runId, 'no-stream', `GET ${url} answered 404 or 405: the server has no live stream route`)
        // A clean drop (a proxy's idle timeout, a server restart): reconnect after a short wait.
      } catch (error) {
        if (signal.aborted) return
        if (isCredentialRefusal(error)) {
          // One cause, one line: the updates' error already says it; the heartbeat stays the fallback.
          this.#logger.debug?.(`Run ${runId}: live stream: GET ${url} was refused (${failureReason(error)}), as are the run's updates`, { runId })
          return
        }
        if (!isRetriable(error)) return this.#degraded(runId, 'refused', `GET ${url} was refused (${failureReason(error)})`)
        failure = error
      }
      failures += 1
      if (failure !== undefined) this.#degraded(runId, 'failing', `GET ${url} failed (${failureReason(failure)}); retrying with backoff`)
      await sleep(backoffDelay(failures, { baseMs: RECONNECT_BASE_MS, maxMs: RECONNECT_MAX_MS, jitter: 'full' }), signal)
    }
  }

  /** Logs a degradation with its cause and fix: once per client and kind at warn, then at debug. */
  #degraded(runId: string, kind: 'no-stream' | 'refused' | 'failing', cause: string): void {
    const fallback = `a cancel (or the stale-run sweeper) reaches a running stage at its next heartbeat (every ${this.#heartbeatIntervalMs} ms) instead of within a second`
    const fix = {
      'no-stream': 'Fix: serve the events route (upgrade the web app\'s pipeline-status-sdk; a Next.js app needs the [runId]/events route file, docs/quick-start.md), or turn the stream off with followRunStream: false.',
      refused: 'Fix: let the webhook secret read the run (an authorize hook that refuses the runner\'s reads), or turn the stream off with followRunStream: false.',
      failing: 'Fix: let the runner hold a long GET to the web app open (a proxy that buffers text/event-stream or cuts long requests), or turn the stream off with followRunStream: false.',
    }[kind]
    const line = `Run ${runId}: live stream: ${cause}; ${fallback}. ${fix}`
    if (this.#logged.has(kind)) this.#logger.debug?.(line, { runId })
    else {
      this.#logged.add(kind)
      this.#logger.warn(line, { runId })
    }
  }
}

/** The run of a `snapshot`, `update` or `end` event when it is finished; `undefined` otherwise (a running run is read no further). */
function finishedRun(data: string): PipelineRunRecord | undefined {
  let event: unknown
  try {
    event = JSON.parse(data)
  } catch {
    return undefined
  }
  const run = (event as { run?: { status?: unknown } } | null)?.run
  if (typeof run?.status !== 'string' || !isFinalStatus(run.status as RunStatus)) return undefined
  const parsed = PipelineRunRecord.safeParse(run)
  return parsed.success ? parsed.data : undefined
}
