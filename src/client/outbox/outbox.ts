/**
 * The durable outbox: updates that could not be delivered wait on disk (the files: see
 * `entry.ts`) and are redelivered in order per run, in the background and on `flush()`, also by
 * a later process on the same directory.
 */
import { mkdirSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import type { Logger } from '../logger.js'
import { type ResolvedRetryPolicy, resolveRetryPolicy, retryDelay } from '../retry-policy.js'
import { Ack, type DeadLetter, type Deliver, type DeliveryResult, type FlushResult, type LeftQueue, OutboxEntry, type OutboxOptions, type PendingEntry, EARLIER_CHUNK_DEAD_LETTERED, describeEntry, subjectOf, toDeadLetter } from './entry.js'
import { JsonlJournal } from './journal.js'
import { type OutboxLock, acquireOutboxLock } from './lock.js'
import { reportDeadLetter, trackOutbox } from '../../internal/client-telemetry.js'

/** The default of {@link OutboxOptions.maxAgeMs}: 72 hours. */
const DEFAULT_MAX_AGE = 72 * 60 * 60 * 1000

/** One pending update in memory. */
interface QueuedEntry {
  entry: OutboxEntry
  /** Position in the journal across runs, to rewrite it in the original order. */
  seq: number
  /** Left in the directory by an earlier process (loaded when this outbox was opened), not queued by this one. */
  inherited?: boolean
}

/** How one run's part of a flush pass went. */
interface RunOutcome {
  delivered: number
  rejected: number
  /** The run's head failed and waits for the next pass. */
  retry?: { entry: OutboxEntry; reason: string; retryAfterMs?: number | undefined; slow: boolean } | undefined
}

/** The chunks of one stage dead-lettered unsent behind a chunk the server refused for good, until logged. */
interface ChunkCascade {
  /** The refused chunk. */
  first: OutboxEntry
  /** Its `seq`. */
  firstSeq: number
  /** Its refusal. */
  cause: string
  /** The `seq` of each chunk dead-lettered behind it, not logged yet. */
  seqs: number[]
}

/** Acks that may pile up in the journal before it is rewritten without them. */
const COMPACT_AFTER_ACKS = 1000

/** The outbox of one client. Internal: the client exposes `flush`, `pendingCount`, `deadLetters` and `close`. */
export class Outbox {
  readonly dir: string
  readonly #deliver: Deliver
  readonly #logger: Logger
  /** Every dead letter written: one that left the queue, and one refused on its first delivery ({@link deadLetter}). */
  readonly #onDeadLetter: ((letter: DeadLetter) => void) | undefined
  /** A queued entry left the queue (its ack is on disk); `inherited`: an earlier process's. Must not throw. */
  readonly #onLeft: ((entry: OutboxEntry, left: LeftQueue, inherited: boolean) => void) | undefined
  readonly #maxRetryDelay: number
  /** The background redelivery's backoff, as a retry policy: one formula for every wait. */
  readonly #policy: ResolvedRetryPolicy
  /** Where the backoff's jitter is drawn from ({@link OutboxOptions.random}). */
  readonly #random: () => number
  readonly #maxAge: number
  readonly #journal: JsonlJournal
  readonly #acks: JsonlJournal
  readonly #deadLetters: JsonlJournal
  readonly #lock: OutboxLock
  readonly #releaseOnExit: () => void
  /** Stops the depth metric's reading of this outbox (`pipeline-status-sdk/otel`). */
  #untrack: () => void = () => {}
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
  /** The entries being delivered right now; a newer progress report must not replace them. */
  readonly #inFlight = new Set<QueuedEntry>()
  #timer: NodeJS.Timeout | undefined
  #timerDue = 0
  #failures = 0
  #closed = false
  readonly #stop = new AbortController()
  /** Runs whose superseded updates were logged: one line per run. */
  readonly #supersededRuns = new Set<string>()
  /** The entries an earlier process left pending, as loaded, until {@link takeInherited} hands them over. */
  #inherited: OutboxEntry[] = []

  constructor(
    options: OutboxOptions & {
      deliver: Deliver
      logger: Logger
      onDeadLetter?: ((letter: DeadLetter) => void) | undefined
      onLeft?: ((entry: OutboxEntry, left: LeftQueue, inherited: boolean) => void) | undefined
    },
  ) {
    this.dir = resolve(options.dir)
    this.#deliver = options.deliver
    this.#logger = options.logger
    this.#onDeadLetter = options.onDeadLetter
    this.#onLeft = options.onLeft
    const baseDelayMs = options.retryDelayMs ?? 1_000
    this.#maxRetryDelay = options.maxRetryDelayMs ?? 60_000
    this.#maxAge = options.maxAgeMs ?? DEFAULT_MAX_AGE
    if (!(baseDelayMs >= 0) || !(this.#maxRetryDelay >= baseDelayMs)) {
      throw new RangeError('outbox.retryDelayMs must be >= 0 and outbox.maxRetryDelayMs >= outbox.retryDelayMs (milliseconds)')
    }
    this.#policy = resolveRetryPolicy({ limit: 0, baseDelayMs, maxDelayMs: this.#maxRetryDelay, maxRetryAfterMs: this.#maxRetryDelay })
    this.#random = options.random ?? Math.random
    if (!(this.#maxAge > 0)) throw new RangeError('outbox.maxAgeMs must be a positive number of milliseconds')
    mkdirSync(this.dir, { recursive: true })
    this.#lock = acquireOutboxLock(this.dir)
    this.#releaseOnExit = () => this.#lock.release()
    process.once('exit', this.#releaseOnExit)
    try {
      const journal = JsonlJournal.openSync(join(this.dir, 'journal.jsonl'))
      const acks = JsonlJournal.openSync(join(this.dir, 'acks.jsonl'))
      this.#journal = journal.journal
      this.#acks = acks.journal
      this.#deadLetters = JsonlJournal.openSync(join(this.dir, 'dead-letters.jsonl')).journal
      this.#load(journal.contents, acks.contents)
    } catch (error) {
      this.#release()
      throw error
    }
    this.#untrack = trackOutbox(() => this.#pending)
    if (this.#pending > 0) {
      this.#logger.info?.(`Outbox ${this.dir}: ${this.#pending} update(s) left by an earlier process, redelivering`, {
        pending: this.#pending,
      })
      this.#schedule(0)
    }
  }

  /**
   * The updates an earlier process left pending, oldest first per run, as they were when this
   * outbox was opened (before any redelivery); handed over once, then forgotten. The client
   * reads a restarted runner's attempts from them (`restart-attempts.ts`).
   */
  takeInherited(): OutboxEntry[] {
    const inherited = this.#inherited
    this.#inherited = []
    return inherited
  }

  /** Updates waiting, for one run or for all. */
  pendingCount(runId?: string): number {
    return runId === undefined ? this.#pending : (this.#queues.get(runId)?.length ?? 0)
  }

  /** Updates waiting per run; runs with none are absent. */
  pendingByRun(): Record<string, number> {
    return Object.fromEntries([...this.#queues].map(([runId, queue]) => [runId, queue.length]))
  }

  /**
   * Queues an update durably (written and fsynced before this resolves) behind the run's
   * earlier ones, and schedules a background redelivery (after the longest delay when `slow`).
   * With `takesPlaceOf`, the entry may replace one of the run's pending entries instead (the
   * caller's rule, e.g. a newer progress report over an older one): it is given them oldest
   * first, each marked when it is being delivered right now, and returns the one to replace.
   */
  async append(
    entry: OutboxEntry,
    options: { slow?: boolean; takesPlaceOf?: ((pending: readonly PendingEntry[]) => OutboxEntry | undefined) | undefined } = {},
  ): Promise<void> {
    if (this.#closed) throw new Error('The outbox is closed')
    if (options.takesPlaceOf) {
      const queue = this.#queues.get(entry.runId) ?? []
      const chosen = options.takesPlaceOf(queue.map((queued) => ({ entry: queued.entry, inFlight: this.#inFlight.has(queued) })))
      const older = chosen && queue.find((queued) => queued.entry === chosen && !this.#inFlight.has(queued))
      if (older) {
        await this.#supersede(older, entry)
        return
      }
    }
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
    // A secret mismatch will not fix itself in a second: `slow` waits the longest delay.
    if (!this.#timer) this.#schedule(options.slow ? this.#maxRetryDelay : retryDelay(this.#policy, Math.max(1, this.#failures), undefined, this.#random))
  }

  /**
   * Keeps an update that never entered the queue (refused on its first delivery) as a dead
   * letter, logged as an error. Throws when the disk write fails.
   */
  async deadLetter(entry: OutboxEntry, refusal: { status?: number | undefined; code?: string | undefined; reason: string }): Promise<void> {
    await this.#file(() => this.#writeDeadLetter(entry, refusal))
  }

  /** The dead letters on disk (also those of earlier processes), oldest first; for one run or all. */
  async deadLetters(runId?: string): Promise<DeadLetter[]> {
    const path = join(this.dir, 'dead-letters.jsonl')
    return this.#file(async () => {
      let text = ''
      try {
        text = await readFile(path, 'utf8')
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
      }
      const letters: DeadLetter[] = []
      for (const line of text.split('\n')) {
        if (line === '') continue
        try {
          const letter = JSON.parse(line) as DeadLetter
          if (runId === undefined || letter.runId === runId) letters.push(letter)
        } catch {
          // A torn last line from a crash: the letter before it is intact.
        }
      }
      return letters
    })
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
    await Promise.all([this.#journal.close(), this.#acks.close(), this.#deadLetters.close()])
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
    // Every entry's place in the queue, acked ones included, so a replacement takes the place
    // of the entry it replaces rather than going to the back.
    const places = new Map<string, number>()
    const seen = new Set<string>()
    for (const record of journal.records) {
      const parsed = OutboxEntry.safeParse(record)
      if (!parsed.success) {
        invalid++
        continue
      }
      const entry = parsed.data
      if (entry.replaces === entry.id) {
        // The entry as it now is (marked `unanswered` by a redelivery), in its own place; dead weight once applied.
        this.#ackedInJournal++
        const queued = seen.has(entry.id) && !acked.has(entry.id) ? this.#queues.get(entry.runId)?.find((q) => q.entry.id === entry.id) : undefined
        if (queued) {
          const { replaces: _self, ...now } = entry
          queued.entry = queued.entry.replaces === undefined ? now : { ...now, replaces: queued.entry.replaces }
        }
        continue
      }
      const replaced = entry.replaces === undefined ? undefined : places.get(entry.replaces)
      const seq = replaced ?? this.#seq++
      places.set(entry.id, seq)
      if (acked.has(entry.id) || seen.has(entry.id)) {
        this.#ackedInJournal++
        continue
      }
      // A crash between writing a replacement and acking the original: the replacement wins.
      if (entry.replaces !== undefined && seen.delete(entry.replaces)) {
        const queue = this.#queues.get(entry.runId) ?? []
        const index = queue.findIndex((queued) => queued.entry.id === entry.replaces)
        if (index !== -1) {
          queue.splice(index, 1)
          this.#pending--
          this.#ackedInJournal++
        }
      }
      seen.add(entry.id)
      const queue = this.#queues.get(entry.runId) ?? []
      queue.push({ entry, seq, inherited: true })
      this.#queues.set(entry.runId, queue)
      this.#pending++
    }
    for (const queue of this.#queues.values()) queue.sort((a, b) => a.seq - b.seq)
    this.#inherited = [...this.#queues.values()].flatMap((queue) => queue.map((queued) => queued.entry))
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
    const failed: NonNullable<RunOutcome['retry']>[] = []
    for (const outcome of outcomes) {
      result.delivered += outcome.delivered
      result.rejected += outcome.rejected
      if (outcome.retry) failed.push(outcome.retry)
    }
    result.pending = this.#pending
    if (result.delivered + result.rejected > 0) {
      this.#logger.info?.(`Outbox ${this.dir}: delivered ${result.delivered}, dead-lettered ${result.rejected}, ${result.pending} pending`, { ...result })
    }
    await this.#compact()
    const stopped = this.#closed || signal.aborted
    let next: number | undefined
    if (!stopped && this.#pending > 0) {
      if (failed.length > 0) {
        this.#failures++
        const retryAfters = failed.flatMap((f) => (f.retryAfterMs === undefined ? [] : [f.retryAfterMs]))
        // A secret mismatch will not fix itself in a second: wait the longest delay.
        next = failed.some((f) => f.slow)
          ? this.#maxRetryDelay
          : retryDelay(this.#policy, this.#failures, retryAfters.length > 0 ? Math.max(...retryAfters) : undefined, this.#random)
      } else {
        // Updates arrived during the pass; they can go now.
        next = 0
      }
    }
    if (this.#pending === 0) this.#failures = 0
    for (const failure of failed) this.#logRetry(failure, next)
    if (next !== undefined) this.#schedule(next)
    return result
  }

  /** One line per run whose head failed: a warning, or an error for 401/403 (it needs a person). */
  #logRetry(failure: NonNullable<RunOutcome['retry']>, next: number | undefined): void {
    const { entry, reason, slow } = failure
    const when = next === undefined ? 'it stays in the outbox' : `next attempt in ${Math.round(next)} ms`
    const details = { runId: entry.runId, idempotencyKey: entry.id, reason, nextDelayMs: next }
    if (slow) {
      this.#logger.error(
        `Outbox: run ${entry.runId}: ${describeEntry(entry)} refused (${reason}); check that the runner's secret matches the web app's. ` +
          `Kept queued, retried slowly: ${when}`,
        details,
      )
    } else {
      this.#logger.warn(`Outbox: run ${entry.runId}: redelivery of ${describeEntry(entry)} failed (${reason}); ${when}`, details)
    }
  }

  async #flushRun(runId: string, signal: AbortSignal): Promise<RunOutcome> {
    /**
     * Per stage, the streamed output chunk of this run the server refused for good in this pass,
     * and the cascade behind it. The server applies a stage attempt's chunks only in order, so the
     * later chunks of that attempt queued behind it (up to the stage's next status change, which
     * may start a new attempt) cannot be applied: they are dead-lettered without being sent
     * (`EARLIER_CHUNK_DEAD_LETTERED`), instead of each being refused `output_out_of_order`, and
     * logged as one line once the cascade ends, not one line per chunk. Not after an expired
     * chunk: an unanswered attempt of it may have been stored, and the next one applied.
     */
    const cascades = new Map<string, ChunkCascade>()
    try {
      return await this.#flushRunEntries(runId, signal, cascades)
    } finally {
      for (const cascade of cascades.values()) this.#logCascade(cascade)
    }
  }

  async #flushRunEntries(runId: string, signal: AbortSignal, cascades: Map<string, ChunkCascade>): Promise<RunOutcome> {
    let delivered = 0
    let rejected = 0
    for (;;) {
      const head = this.#queues.get(runId)?.[0]
      if (!head) return { delivered, rejected }
      if (signal.aborted) return { delivered, rejected, retry: { entry: head.entry, reason: 'the outbox is closing', slow: false } }
      const age = Date.now() - Date.parse(head.entry.firstAttemptAt ?? head.entry.queuedAt)
      const subject = subjectOf(head.entry)
      if (subject.kind === 'status') {
        // The stage's status change ends its cascade: said now, before the updates after it.
        const cascade = cascades.get(subject.stageNumber)
        if (cascade) this.#logCascade(cascade)
        cascades.delete(subject.stageNumber)
      }
      const refusedSeq = subject.kind === 'output' ? cascades.get(subject.stageNumber)?.firstSeq : undefined
      const afterRefusedChunk = subject.kind === 'output' && refusedSeq !== undefined && Number(subject.seq) > refusedSeq
      let outcome: DeliveryResult
      this.#inFlight.add(head)
      try {
        outcome =
          age > this.#maxAge
            ? { result: 'rejected', reason: `expired: undelivered ${Math.round(age / 1000)} s after its first attempt (maxAgeMs ${this.#maxAge})` }
            : afterRefusedChunk
              ? { result: 'rejected', reason: EARLIER_CHUNK_DEAD_LETTERED }
              : await this.#deliver(head.entry, signal)
      } finally {
        this.#inFlight.delete(head)
      }
      if (outcome.result === 'rejected' && outcome.status !== undefined && subject.kind === 'output' && refusedSeq === undefined) {
        cascades.set(subject.stageNumber, { first: head.entry, firstSeq: Number(subject.seq), cause: outcome.reason, seqs: [] })
      }
      if (outcome.result === 'retry') {
        if (outcome.unanswered !== undefined && head.entry.unanswered === undefined) await this.#markUnanswered(head, outcome.unanswered)
        return { delivered, rejected, retry: { entry: head.entry, reason: outcome.reason, retryAfterMs: outcome.retryAfterMs, slow: outcome.slow ?? false } }
      }
      let left: LeftQueue
      try {
        if (outcome.result === 'replace') {
          await this.#replace(head, outcome.entry)
          continue
        }
        if (outcome.result === 'rejected') {
          // A chunk of a cascade is kept and counted like any dead letter, and logged with the cascade's one line.
          left = { result: 'rejected', letter: await this.#file(() => this.#writeDeadLetter(head.entry, outcome, afterRefusedChunk)) }
          if (afterRefusedChunk && subject.kind === 'output') cascades.get(subject.stageNumber)?.seqs.push(Number(subject.seq))
          rejected++
        } else if (outcome.result === 'superseded') {
          await this.#file(() => this.#writeSuperseded(head.entry, outcome))
          left = { result: 'superseded', reason: outcome.reason }
        } else {
          left = { result: 'delivered', answer: outcome.answer }
          delivered++
        }
        await this.#file(() => this.#acks.append({ id: head.entry.id, result: outcome.result, at: new Date().toISOString() }))
      } catch (error) {
        // Not acked on disk: it stays queued and is sent again (the server drops the duplicate).
        this.#logger.error(`Outbox ${this.dir}: could not record a delivery`, { error: String(error) })
        return { delivered, rejected, retry: { entry: head.entry, reason: 'the outbox could not be written', slow: false } }
      }
      this.#forget(head)
      this.#ackedInJournal++
      this.#tellLeft(head, left)
    }
  }

  /** Tells the owner that `head` left the queue; a listener's exception is logged, never breaks the flush. */
  #tellLeft(head: QueuedEntry, left: LeftQueue): void {
    try {
      this.#onLeft?.(head.entry, left, head.inherited === true)
    } catch (error) {
      this.#logger.error(`Outbox ${this.dir}: a listener of an update that left the queue threw`, { error: String(error) })
    }
  }

  /**
   * Keeps that an attempt of `head` got no definite answer (the server may have received it): in
   * memory, and in the journal as the entry replacing itself, so a later process knows it too.
   * A failed write loses only that knowledge (logged), not the entry.
   */
  async #markUnanswered(head: QueuedEntry, cause: string): Promise<void> {
    head.entry = { ...head.entry, unanswered: cause }
    try {
      await this.#file(() => this.#journal.append({ ...head.entry, replaces: head.entry.id }))
      this.#ackedInJournal++
    } catch (error) {
      this.#logger.warn(`Outbox ${this.dir}: could not record that an attempt of ${describeEntry(head.entry)} got no answer`, { runId: head.entry.runId, error: String(error) })
    }
  }

  /** Puts `entry` in the place of `head`: journal first, then the ack, so a crash loses neither. */
  async #replace(head: QueuedEntry, entry: OutboxEntry): Promise<void> {
    const replacement: OutboxEntry = { ...entry, replaces: head.entry.id }
    await this.#file(() => this.#journal.append(replacement))
    await this.#file(() => this.#acks.append({ id: head.entry.id, result: 'replaced', at: new Date().toISOString() }))
    head.entry = replacement
    this.#ackedInJournal++
  }

  /**
   * A newer progress report takes the place of `older` (same run and stage): in memory at once,
   * then journal first and the ack second, like {@link #replace}, so a crash loses neither.
   */
  async #supersede(older: QueuedEntry, entry: OutboxEntry): Promise<void> {
    const previous = older.entry
    const replacement: OutboxEntry = { ...entry, replaces: previous.id, queuedAt: previous.queuedAt }
    if (previous.firstAttemptAt !== undefined) replacement.firstAttemptAt = previous.firstAttemptAt
    const inherited = older.inherited
    older.entry = replacement
    // This process's report now, not the earlier process's it took the place of.
    delete older.inherited
    try {
      await this.#file(() => this.#journal.append(replacement))
    } catch (error) {
      if (older.entry === replacement) {
        older.entry = previous
        if (inherited !== undefined) older.inherited = inherited
      }
      throw error
    }
    await this.#file(() => this.#acks.append({ id: previous.id, result: 'replaced', at: new Date().toISOString() }))
    this.#ackedInJournal++
  }

  /**
   * Appends a dead letter and logs it (`quiet`: a chunk of a cascade, logged with the cascade,
   * {@link #logCascade}); runs inside the file queue. Resolves the letter.
   */
  async #writeDeadLetter(entry: OutboxEntry, refusal: { status?: number | undefined; code?: string | undefined; reason: string }, quiet = false): Promise<DeadLetter> {
    const letter = toDeadLetter(entry, refusal)
    await this.#deadLetters.append(letter)
    if (!quiet) {
      this.#logger.error(
        `Outbox: run ${entry.runId}: ${describeEntry(entry)} dead-lettered (${refusal.reason}); kept in ${join(this.dir, 'dead-letters.jsonl')}, the run's later updates go on`,
        { runId: entry.runId, idempotencyKey: entry.id, status: refusal.status, code: refusal.code },
      )
    }
    this.#onDeadLetter?.(letter)
    reportDeadLetter(entry.route, 'dead_letter')
    return letter
  }

  /**
   * One error line for the chunks of a stage dead-lettered unsent behind a refused one (none when
   * no chunk followed it): the run, the stage, how many and which, the first chunk's refusal, and
   * what to do. Each chunk's dead letter is kept on disk all the same.
   */
  #logCascade(cascade: ChunkCascade): void {
    const { first, cause } = cascade
    const seqs = cascade.seqs.splice(0)
    if (seqs.length === 0) return
    const stage = first.stageNumber
    const range = seqs.length === 1 ? `chunk ${seqs[0]}` : `chunks ${Math.min(...seqs)} to ${Math.max(...seqs)}`
    const chunk = cascade.firstSeq
    const count = seqs.length
    this.#logger.error(
      `Outbox: run ${first.runId}: ${count} later chunk${count === 1 ? '' : 's'} of the streamed output of stage ${stage} (${range}) dead-lettered unsent, ` +
        `because stage ${stage} output chunk ${chunk} was (${cause}): the server applies a stage's chunks only in order, so none after a missing one can be stored. ` +
        `Kept in ${join(this.dir, 'dead-letters.jsonl')} (client.deadLetters()); the output sent with the stage's COMPLETED replaces the streamed text, ` +
        `so only the text streamed so far is lost: fix the cause of chunk ${chunk}'s refusal (logged above)`,
      { runId: first.runId, stageNumber: stage, chunks: count, firstSeq: Math.min(...seqs), lastSeq: Math.max(...seqs), cause },
    )
  }

  /**
   * Keeps an update refused because its run ended elsewhere, with `kind: 'superseded'`, beside
   * the dead letters; logged once per run as a warning (the run's end was already logged by the
   * client), not as an error; no `onDeadLetter`. Runs inside the file queue.
   */
  async #writeSuperseded(entry: OutboxEntry, refusal: { status?: number | undefined; code?: string | undefined; reason: string }): Promise<void> {
    await this.#deadLetters.append(toDeadLetter(entry, refusal, 'superseded'))
    reportDeadLetter(entry.route, 'superseded')
    if (this.#supersededRuns.has(entry.runId)) return
    this.#supersededRuns.add(entry.runId)
    this.#logger.warn(
      `Outbox: run ${entry.runId} ended elsewhere while its updates waited (${refusal.reason}); the updates the server refuses for it are superseded, ` +
        `not undelivered: kept in ${join(this.dir, 'dead-letters.jsonl')} with kind "superseded"`,
      { runId: entry.runId, status: refusal.status, code: refusal.code },
    )
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
    this.#untrack()
    process.removeListener('exit', this.#releaseOnExit)
    this.#lock.release()
  }
}
