/**
 * LISTEN mode's notifications, sent after commit and outside the write (DESIGN.md "Live status"):
 * the store hands every committed change (`runId`, new version) to the batcher, which keeps the
 * highest version per run and sends them every `intervalMs` in ONE statement
 * (`SELECT pg_notify($1, x) FROM unnest($2::text[]) x`). A NOTIFY inside the write transaction
 * takes a database-wide lock at commit and so serializes the writers' commits (measured 0.82× write
 * throughput, bench/README.md); a batch sent on its own costs one short statement per tick.
 *
 * It never blocks or fails a write: the queue is bounded (past `maxQueue` runs a change is dropped,
 * logged once and counted), a failed batch is logged once with its cause and fix, counted, and
 * its changes are put back for the next tick (backing off while it keeps failing). What is
 * dropped or lost with a crash is caught up by the readers' safety poll
 * (`live.safetyPollIntervalMs`). Edge-safe: timers only. Internal.
 */
import type { RunChange } from '../../core/run-changes.js'
import type { Logger } from '../../internal/logger.js'
import { unrefTimer } from '../../internal/unref-timer.js'

/** The statement of one batch: `$1` the channel, `$2` the `runId:version` payloads. */
export const NOTIFY_BATCH_SQL = `SELECT count(pg_notify($1, x))::integer AS "sent" FROM unnest($2::text[]) x`

/** The defaults of the batch options, in milliseconds and runs. */
export const NOTIFY_BATCH_DEFAULTS = { intervalMs: 5, maxQueue: 10_000 } as const

/** The longest wait between two tries while batches keep failing, in milliseconds. */
const MAX_RETRY_DELAY_MS = 5_000

/**
 * Counters of the notifications since the store was created. A batch is counted when its
 * statement returns to this process, which can be after a listener on another connection has
 * already received its notifications (PostgreSQL delivers them at the commit, before the reply).
 */
export interface NotifyCounts {
  /** Notifications sent (one per run and batch, after deduplication). */
  sent: number
  /** Batches sent, one statement each. */
  batches: number
  /** Batches whose statement failed (their changes were put back for the next tick). */
  failedBatches: number
  /** Changes dropped because the queue already held `notifyMaxQueue` runs (the safety poll catches them up). */
  dropped: number
}

/** Options of {@link NotifyBatcher}. */
export interface NotifyBatcherOptions {
  channel: string
  intervalMs: number
  maxQueue: number
  /** Sends one batch: the channel and the payloads. */
  send: (channel: string, payloads: string[]) => Promise<void>
  logger: () => Logger
  /** The option naming the batches' own connection, when they have one (for the failure's fix). */
  connection?: string | undefined
}

/** See the module comment. */
export class NotifyBatcher {
  readonly #options: NotifyBatcherOptions
  /** The highest version per run not sent yet. */
  #queue = new Map<string, number>()
  #timer: ReturnType<typeof setTimeout> | undefined
  #sending: Promise<void> | undefined
  #failuresInRow = 0
  #overflowLogged = false
  #failureLogged = false
  #closed = false
  readonly counts: NotifyCounts = { sent: 0, batches: 0, failedBatches: 0, dropped: 0 }

  constructor(options: NotifyBatcherOptions) {
    this.#options = options
  }

  /** Records a committed change; sent with the next batch. Never throws. */
  add(change: RunChange): void {
    const queued = this.#queue.get(change.runId)
    if (queued !== undefined) {
      if (change.version > queued) this.#queue.set(change.runId, change.version)
      return
    }
    if (this.#queue.size >= this.#options.maxQueue) {
      this.counts.dropped += 1
      if (!this.#overflowLogged) {
        this.#overflowLogged = true
        this.#options.logger().warn(
          `pipeline-status: the LISTEN notification queue is full (${this.#options.maxQueue} runs waiting), so changes are dropped ` +
            'and other instances\' streams catch them up with their safety poll (live.safetyPollIntervalMs) instead. ' +
            'The database is not taking the batches fast enough: check that it is reachable, or raise notifyMaxQueue / lower notifyIntervalMs. ' +
            'Logged once per store (docs/live-status.md)',
          { runId: change.runId, version: change.version },
        )
      }
      return
    }
    this.#queue.set(change.runId, change.version)
    if (!this.#closed) this.#arm(this.#options.intervalMs)
  }

  /** Sends what is queued now and stops; gives up after `deadlineMs` (the safety poll covers the rest). */
  async close(deadlineMs: number): Promise<void> {
    this.#closed = true
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
    let deadline: ReturnType<typeof setTimeout> | undefined
    const flushed = (async () => {
      await this.#sending
      if (this.#queue.size > 0) await this.#flush()
    })()
    await Promise.race([flushed, new Promise<void>((resolve) => (deadline = unrefTimer(setTimeout(resolve, deadlineMs))))])
    clearTimeout(deadline)
  }

  #arm(ms: number): void {
    if (this.#timer !== undefined || this.#sending) return
    this.#timer = unrefTimer(
      setTimeout(() => {
        this.#timer = undefined
        void this.#flush()
      }, ms),
    )
  }

  /** Sends the queue as one batch; one batch at a time, so a slow database never stacks them up. */
  #flush(): Promise<void> {
    if (this.#sending) return this.#sending
    const batch = this.#queue
    this.#queue = new Map()
    if (batch.size === 0) return Promise.resolve()
    const payloads = [...batch].map(([runId, version]) => `${runId}:${version}`)
    this.#sending = (async () => {
      try {
        await this.#options.send(this.#options.channel, payloads)
        this.counts.batches += 1
        this.counts.sent += payloads.length
        this.#failuresInRow = 0
      } catch (error) {
        this.counts.failedBatches += 1
        this.#failuresInRow += 1
        this.#requeue(batch)
        if (!this.#failureLogged) {
          this.#failureLogged = true
          this.#options.logger().warn(
            `pipeline-status: sending a batch of ${payloads.length} LISTEN notifications failed; it is tried again with backoff, and other instances' ` +
              'streams catch up meanwhile with their safety poll (live.safetyPollIntervalMs). ' +
              (this.#options.connection === undefined
                ? 'Check that the store\'s database is reachable; '
                : `Check that the database behind ${this.#options.connection} (the direct URL, DIRECT_DATABASE_URL) is reachable and accepts one more connection; `) +
              'writes are not affected. Logged once per store (docs/live-status.md)',
            { error },
          )
        }
      } finally {
        this.#sending = undefined
      }
      if (this.#queue.size > 0 && !this.#closed) {
        const delay = this.#failuresInRow === 0 ? this.#options.intervalMs : Math.min(MAX_RETRY_DELAY_MS, this.#options.intervalMs * 2 ** this.#failuresInRow)
        this.#arm(delay)
      }
    })()
    return this.#sending
  }

  /** Puts a failed batch back, keeping newer versions queued since and the queue's bound. */
  #requeue(batch: Map<string, number>): void {
    for (const [runId, version] of batch) {
      const queued = this.#queue.get(runId)
      if (queued !== undefined) {
        if (version > queued) this.#queue.set(runId, version)
      } else if (this.#queue.size < this.#options.maxQueue) this.#queue.set(runId, version)
      else this.counts.dropped += 1
    }
  }
}
