/**
 * The heartbeat: `POST {base}/{runId}/heartbeat` while `runPipeline` runs a stage, one at a time,
 * one attempt each, never queued nor retried (the next one follows an interval later). Internal.
 */
import { HeartbeatResponse } from '../contract/records.js'
import { failureReason } from './failure-reason.js'
import type { Logger } from './logger.js'
import { type RunFinishedObserver, safeJson } from './run-finished.js'
import type { Transport } from './transport.js'

/** Sends heartbeats and runs one loop per run whose stage `runPipeline` is running. */
export class Heartbeats {
  readonly #intervalMs: number
  readonly #transport: Transport
  readonly #observer: RunFinishedObserver
  readonly #logger: Logger
  readonly #url: (runId: string) => string
  /** The loop of each run whose stage is running: its stop. */
  readonly #loops = new Map<string, () => void>()

  constructor(options: { intervalMs: number; transport: Transport; observer: RunFinishedObserver; logger: Logger; url: (runId: string) => string }) {
    this.#intervalMs = options.intervalMs
    this.#transport = options.transport
    this.#observer = options.observer
    this.#logger = options.logger
    this.#url = options.url
  }

  /** Starts the heartbeat of a run's running stage: one now, then one per interval; returns its stop. */
  start(runId: string, stageNumber: number): () => void {
    this.stop(runId)
    let inFlight: AbortController | undefined
    const beat = () => {
      if (inFlight) return // the previous one has not answered: one at a time
      const controller = new AbortController()
      inFlight = controller
      // No heartbeat may outlive its interval: the next one replaces it.
      const deadline = setTimeout(() => controller.abort(new Error('heartbeat interval elapsed')), this.#intervalMs)
      void this.send(runId, stageNumber, controller.signal).finally(() => {
        clearTimeout(deadline)
        if (inFlight === controller) inFlight = undefined
      })
    }
    const timer = setInterval(beat, this.#intervalMs)
    // A heartbeat must never keep a finished runner's process alive.
    timer.unref()
    const stop = () => {
      clearInterval(timer)
      inFlight?.abort(new Error('heartbeat stopped'))
      inFlight = undefined
      if (this.#loops.get(runId) === stop) this.#loops.delete(runId)
    }
    this.#loops.set(runId, stop)
    beat()
    return stop
  }

  /** Stops the run's heartbeat, if one runs. */
  stop(runId: string): void {
    this.#loops.get(runId)?.()
  }

  /** Stops every heartbeat. */
  stopAll(): void {
    for (const stop of [...this.#loops.values()]) stop()
  }

  /** One heartbeat, one attempt; `undefined` when it got no usable answer (logged at debug). */
  async send(runId: string, stageNumber: number | undefined, signal: AbortSignal | undefined): Promise<HeartbeatResponse | undefined> {
    const body = JSON.stringify({ ...(stageNumber === undefined ? {} : { stageNumber }), intervalMs: this.#intervalMs })
    try {
      const response = await this.#transport.send(
        { method: 'POST', url: this.#url(runId), body, idempotencyKey: crypto.randomUUID(), what: `Run ${runId}: heartbeat` },
        { retry: false, signal },
      )
      const parsed = HeartbeatResponse.safeParse(safeJson(response.text))
      if (!parsed.success) return undefined
      this.#observer.observe(runId, parsed.data.run, 'heartbeat', false)
      return parsed.data
    } catch (error) {
      if (await this.#observer.learnFromRefusal(runId, error)) return undefined
      this.#observer.noteWaited(runId)
      // A missed heartbeat is not worth replaying: the next one follows an interval later.
      this.#logger.debug?.(`Run ${runId}: heartbeat not delivered: ${failureReason(error)}`, { runId })
      return undefined
    }
  }
}
