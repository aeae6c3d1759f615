/**
 * The durable outbox: updates that could not be delivered wait on disk and are redelivered in
 * order per run, in the background and on `flush()`, also by a later process on the same
 * directory.
 *
 * On disk (all JSON Lines, see `outbox-journal.ts`):
 * - `journal.jsonl`: every queued update, in the order it was queued;
 * - `acks.jsonl`: the ids that were delivered (or rejected for good);
 * - `rejected.jsonl`: updates the server refused with a 4xx, kept for a human to look at;
 * - `outbox.lock`: the pid of the one process that owns the directory.
 * An update is pending while its id is in the journal and not in the acks. When nothing is
 * pending both files are emptied; when many acks pile up the journal is rewritten atomically.
 */
import { mkdirSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { z } from 'zod'
import type { Logger } from './logger.js'
import { JsonlJournal } from './outbox-journal.js'
import { type OutboxLock, acquireOutboxLock } from './outbox-lock.js'

/**
 * Where and how the client keeps updates it could not deliver.
 *
 * @example
 * ```ts
 * import { PrismaAPIClient } from 'pipeline-status-sdk/client'
 * const client = new PrismaAPIClient({ outbox: { dir: './.pipeline-outbox' } })
 * ```
 */
export interface OutboxOptions {
  /**
   * Directory of the outbox files, created if missing. One process per directory: a second
   * live process gets an `OutboxLockedError`; a lock left by a dead process is taken over.
   */
  dir: string
  /**
   * First wait before the background redelivery after a failed one, in milliseconds; it
   * doubles per consecutive failure (with jitter) up to `maxRetryDelay`.
   * @default 1_000
   */
  retryDelay?: number | undefined
  /**
   * Longest wait between background redeliveries, in milliseconds; also caps a `Retry-After`.
   * @default 60_000
   */
  maxRetryDelay?: number | undefined
}

/** Which route a queued update goes to. */
export type OutboxRoute = 'stageUpdate' | 'complete'

/** One queued update, exactly as it will be sent again. */
export const OutboxEntry = z.object({
  v: z.literal(1),
  /** The update's idempotency key, sent unchanged on every delivery. */
  id: z.string().min(1),
  runId: z.string().min(1),
  route: z.enum(['stageUpdate', 'complete']),
  /** The JSON body as first sent, byte for byte (its `completedAt` included). */
  body: z.string(),
  /** When the update entered the outbox (ISO 8601). */
  queuedAt: z.string(),
})
/** One queued update, exactly as it will be sent again. */
export type OutboxEntry = z.infer<typeof OutboxEntry>

const Ack = z.object({ id: z.string(), result: z.enum(['delivered', 'rejected']), at: z.string() })

/** What one redelivery attempt came to. */
export type DeliveryResult =
  | { result: 'delivered' }
  /** The server refused it for good (4xx): it leaves the queue and goes to `rejected.jsonl`. */
  | { result: 'rejected'; status?: number | undefined; reason: string }
  /** Try again later; `retryAfterMs` is the server's `Retry-After`. */
  | { result: 'retry'; reason: string; retryAfterMs?: number | undefined }

/** Sends one queued update once. Must not throw. */
export type Deliver = (entry: OutboxEntry, signal: AbortSignal) => Promise<DeliveryResult>

/** What a flush did, and what is left. */
export interface FlushResult {
  /** Updates delivered by this flush. */
  delivered: number
  /** Updates the server refused for good (4xx), moved to `rejected.jsonl`. */
  rejected: number
  /** Updates still waiting (for all runs). */
  pending: number
}

interface QueuedEntry {
  entry: OutboxEntry
  /** Position in the journal across runs, to rewrite it in the original order. */
  seq: number
}

/** Acks that may pile up in the journal before it is rewritten without them. */
const COMPACT_AFTER_ACKS = 1000

/** The outbox of one client. Internal: the client exposes `flush`, `pendingCount` and `close`. */
export class Outbox {
  readonly dir: string
  readonly #deliver: Deliver
  readonly #logger: Logger
  readonly #retryDelay: number
  readonly #maxRetryDelay: number
  readonly #journal: JsonlJournal
  readonly #acks: JsonlJournal
  readonly #rejected: JsonlJournal
  readonly #lock: OutboxLock
  readonly #releaseOnExit: () => void
  /** Pending updates per run, oldest first. */
  readonly #queues = new Map<string, QueuedEntry[]>()
  #pending = 0
  #seq = 0
  /** Journal records that are acked, i.e. dead weight until the next compaction. */
  #ackedInJournal = 0
  /** Every file operation, one at a time, in call order. */
  #io: Promise<unknown> = Promise.resolve()
  /** Flush passes, one at a time. */
  #passes: Promise<unknown> = Promise.resolve()
  #timer: NodeJS.Timeout | undefined
  #timerDue = 0
  #failures = 0
  #closed = false
  readonly #stop = new AbortController()

  constructor(options: OutboxOptions & { deliver: Deliver; logger: Logger }) {
    this.dir = resolve(options.dir)
    this.#deliver = options.deliver
    this.#logger = options.logger
    this.#retryDelay = options.retryDelay ?? 1_000
    this.#maxRetryDelay = options.maxRetryDelay ?? 60_000
    if (!(this.#retryDelay >= 0) || !(this.#maxRetryDelay >= this.#retryDelay)) {
      throw new RangeError('outbox.retryDelay must be >= 0 and outbox.maxRetryDelay >= outbox.retryDelay (milliseconds)')
    }
    mkdirSync(this.dir, { recursive: true })
    this.#lock = acquireOutboxLock(this.dir)
    this.#releaseOnExit = () => this.#lock.release()
    process.once('exit', this.#releaseOnExit)
    try {
      const journal = JsonlJournal.openSync(join(this.dir, 'journal.jsonl'))
      const acks = JsonlJournal.openSync(join(this.dir, 'acks.jsonl'))
      this.#journal = journal.journal
      this.#acks = acks.journal
      this.#rejected = JsonlJournal.openSync(join(this.dir, 'rejected.jsonl')).journal
      this.#load(journal.contents, acks.contents)
    } catch (error) {
      this.#release()
      throw error
    }
    if (this.#pending > 0) {
      this.#logger.info?.(`Outbox ${this.dir}: ${this.#pending} update(s) left by an earlier process, redelivering`, {
        pending: this.#pending,
      })
      this.#schedule(0)
    }
  }

  /** Updates waiting, for one run or for all. */
  pendingCount(runId?: string): number {
    return runId === undefined ? this.#pending : (this.#queues.get(runId)?.length ?? 0)
  }

  /**
   * Queues an update durably (written and fsynced before this resolves) behind the run's
   * earlier ones, and schedules a background redelivery.
   */
  async append(entry: OutboxEntry): Promise<void> {
    if (this.#closed) throw new Error('The outbox is closed')
    // In memory first, synchronously: a later update of the run sees it and queues behind it.
    const queued: QueuedEntry = { entry, seq: this.#seq++ }
    const queue = this.#queues.get(entry.runId) ?? []
    queue.push(queued)
    this.#queues.set(entry.runId, queue)
    this.#pending++
    try {
      await this.#file(() => this.#journal.append(entry))
    } catch (error) {
      this.#forget(queued)
      throw error
    }
    if (!this.#timer) this.#schedule(this.#backoff(Math.max(1, this.#failures)))
  }

  /** The server answered: redeliver soon instead of waiting out the backoff. */
  nudge(): void {
    if (this.#pending === 0 || this.#closed) return
    this.#failures = 0
    this.#schedule(0)
  }

  /** Delivers what can be delivered now, in order per run; a failed run waits for the next pass. */
  flush(): Promise<FlushResult> {
    if (this.#closed) return Promise.resolve({ delivered: 0, rejected: 0, pending: this.#pending })
    return this.#enqueuePass()
  }

  /**
   * Flushes for at most `timeout` milliseconds, then stops the timer, closes the files and
   * releases the lock. What is left stays on disk for the next process.
   */
  async close(timeout: number): Promise<FlushResult> {
    if (this.#closed) return { delivered: 0, rejected: 0, pending: this.#pending }
    const deadline = setTimeout(() => this.#stop.abort(new Error('outbox close deadline')), timeout)
    deadline.unref()
    let result: FlushResult
    try {
      result = this.#pending > 0 ? await this.#enqueuePass() : { delivered: 0, rejected: 0, pending: 0 }
    } finally {
      clearTimeout(deadline)
      this.#closed = true
      this.#stop.abort(new Error('outbox closed'))
      this.#clearTimer()
    }
    await this.#passes
    await this.#io
    await Promise.all([this.#journal.close(), this.#acks.close(), this.#rejected.close()])
    this.#release()
    return { ...result, pending: this.#pending }
  }

  #load(journal: { records: unknown[]; corruptLines: number; tornTail: boolean }, acks: { records: unknown[]; corruptLines: number; tornTail: boolean }): void {
    const acked = new Set<string>()
    for (const record of acks.records) {
      const ack = Ack.safeParse(record)
      if (ack.success) acked.add(ack.data.id)
    }
    let invalid = journal.corruptLines
    const seen = new Set<string>()
    for (const record of journal.records) {
      const parsed = OutboxEntry.safeParse(record)
      if (!parsed.success) {
        invalid++
        continue
      }
      const entry = parsed.data
      if (acked.has(entry.id) || seen.has(entry.id)) {
        this.#ackedInJournal++
        continue
      }
      seen.add(entry.id)
      const queue = this.#queues.get(entry.runId) ?? []
      queue.push({ entry, seq: this.#seq++ })
      this.#queues.set(entry.runId, queue)
      this.#pending++
    }
    if (journal.tornTail || acks.tornTail) {
      this.#logger.warn(`Outbox ${this.dir}: ignored a record torn by a crash mid-write`, {
        journal: journal.tornTail,
        acks: acks.tornTail,
      })
    }
    if (invalid > 0 || acks.corruptLines > 0) {
      this.#logger.warn(`Outbox ${this.dir}: skipped ${invalid + acks.corruptLines} unreadable line(s)`)
    }
  }

  #enqueuePass(): Promise<FlushResult> {
    const pass = this.#passes.then(() => this.#pass())
    this.#passes = pass.catch(() => undefined)
    return pass
  }

  async #pass(): Promise<FlushResult> {
    this.#clearTimer()
    const signal = this.#stop.signal
    const runs = [...this.#queues.keys()]
    const outcomes = await Promise.all(runs.map((runId) => this.#flushRun(runId, signal)))
    const result: FlushResult = { delivered: 0, rejected: 0, pending: this.#pending }
    let failed = false
    let retryAfterMs = 0
    for (const outcome of outcomes) {
      result.delivered += outcome.delivered
      result.rejected += outcome.rejected
      if (outcome.retry) {
        failed = true
        retryAfterMs = Math.max(retryAfterMs, outcome.retryAfterMs ?? 0)
      }
    }
    result.pending = this.#pending
    if (result.delivered + result.rejected > 0) {
      this.#logger.info?.(`Outbox ${this.dir}: delivered ${result.delivered}, rejected ${result.rejected}, ${result.pending} pending`, { ...result })
    }
    await this.#compact()
    if (this.#closed || signal.aborted) return result
    if (this.#pending === 0) {
      this.#failures = 0
    } else if (failed) {
      this.#failures++
      this.#schedule(Math.max(this.#backoff(this.#failures), Math.min(retryAfterMs, this.#maxRetryDelay)))
    } else {
      // Updates arrived during the pass; they can go now.
      this.#schedule(0)
    }
    return result
  }

  async #flushRun(
    runId: string,
    signal: AbortSignal,
  ): Promise<{ delivered: number; rejected: number; retry: boolean; retryAfterMs?: number | undefined }> {
    let delivered = 0
    let rejected = 0
    for (;;) {
      const head = this.#queues.get(runId)?.[0]
      if (!head) return { delivered, rejected, retry: false }
      if (signal.aborted) return { delivered, rejected, retry: true }
      const outcome = await this.#deliver(head.entry, signal)
      if (outcome.result === 'retry') {
        this.#logger.debug?.(`Outbox: redelivery of ${head.entry.route} for run ${runId} failed, will retry`, {
          runId,
          id: head.entry.id,
          reason: outcome.reason,
        })
        return { delivered, rejected, retry: true, retryAfterMs: outcome.retryAfterMs }
      }
      try {
        if (outcome.result === 'rejected') {
          this.#logger.error(`Outbox: the server refused a queued ${head.entry.route} for run ${runId}; kept in rejected.jsonl`, {
            runId,
            id: head.entry.id,
            status: outcome.status,
            reason: outcome.reason,
          })
          await this.#file(() =>
            this.#rejected.append({ ...head.entry, rejectedAt: new Date().toISOString(), status: outcome.status, reason: outcome.reason }),
          )
          rejected++
        } else {
          delivered++
        }
        await this.#file(() => this.#acks.append({ id: head.entry.id, result: outcome.result, at: new Date().toISOString() }))
      } catch (error) {
        // Not acked on disk: it stays queued and is sent again (the server drops the duplicate).
        this.#logger.error(`Outbox ${this.dir}: could not record a delivery`, { error: String(error) })
        return { delivered, rejected, retry: true }
      }
      this.#forget(head)
      this.#ackedInJournal++
    }
  }

  /** Empties the files when nothing is pending; rewrites the journal when acks pile up. */
  async #compact(): Promise<void> {
    try {
      await this.#file(async () => {
        if (this.#pending === 0) {
          // Journal first: a crash between the two leaves acks without entries, which is harmless.
          await this.#journal.truncate()
          await this.#acks.truncate()
          this.#ackedInJournal = 0
        } else if (this.#ackedInJournal >= COMPACT_AFTER_ACKS) {
          const pending = [...this.#queues.values()].flat().sort((a, b) => a.seq - b.seq)
          await this.#journal.rewrite(pending.map((queued) => queued.entry))
          await this.#acks.truncate()
          this.#ackedInJournal = 0
        }
      })
    } catch (error) {
      this.#logger.warn(`Outbox ${this.dir}: compaction failed; will try again`, { error: String(error) })
    }
  }

  #forget(queued: QueuedEntry): void {
    const queue = this.#queues.get(queued.entry.runId)
    const index = queue?.indexOf(queued) ?? -1
    if (!queue || index === -1) return
    queue.splice(index, 1)
    if (queue.length === 0) this.#queues.delete(queued.entry.runId)
    this.#pending--
  }

  #file<T>(operation: () => Promise<T>): Promise<T> {
    const result = this.#io.then(operation)
    this.#io = result.catch(() => undefined)
    return result
  }

  /** Equal jitter: half the exponential delay plus a random half, so retries never bunch at zero. */
  #backoff(failures: number): number {
    const cap = Math.min(this.#maxRetryDelay, this.#retryDelay * 2 ** Math.max(0, failures - 1))
    return cap / 2 + Math.random() * (cap / 2)
  }

  #schedule(delay: number): void {
    if (this.#closed) return
    const due = Date.now() + delay
    if (this.#timer && this.#timerDue <= due) return
    this.#clearTimer()
    this.#timerDue = due
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      void this.#enqueuePass()
    }, delay)
    // A runner that is done must be able to exit; what is left stays on disk for next time.
    this.#timer.unref()
  }

  #clearTimer(): void {
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = undefined
  }

  #release(): void {
    process.removeListener('exit', this.#releaseOnExit)
    this.#lock.release()
  }
}
