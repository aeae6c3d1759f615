/**
 * Streamed stage output on the runner's side (docs/design.md "Timing, attempts and streamed
 * output"): `write(text)` puts text in a buffer and returns; the buffer goes out as chunks
 * `{ seq, text }` through the run's delivery lane (so in order with the stage's updates, and into
 * the outbox like them), batched by time and size, one chunk in flight per stream. A refusal ends
 * the stream with one log line. Internal, except the types `PrismaAPIClient.streamStageOutput`
 * returns.
 */
import { MAX_OUTPUT_CHUNK_BYTES, StageOutputChunkResponse } from '../contract/output-chunks.js'
import { REPLACEMENT_CHARACTER, toStorableText } from '../contract/storable-text.js'
import type { Delivered } from './delivery.js'
import { failureReason } from './failure-reason.js'
import type { Logger } from './logger.js'
import { safeJson } from './run-finished.js'
import { utf8Bytes } from './stage-output.js'

/** The default of {@link StageOutputStreamOptions.flushIntervalMs}. */
export const DEFAULT_OUTPUT_FLUSH_INTERVAL_MS = 250
/** The default of {@link StageOutputStreamOptions.flushBytes}: 16 KiB. */
export const DEFAULT_OUTPUT_FLUSH_BYTES = 16 * 1024
/** The default of {@link StageOutputStreamOptions.maxBufferedBytes}: 1 MiB, the server's default limit of one stage attempt's text. */
export const DEFAULT_OUTPUT_MAX_BUFFERED_BYTES = 1024 * 1024

/**
 * How a stage's streamed output is batched and bounded (see {@link PrismaAPIClient.streamStageOutput}).
 *
 * @example
 * ```ts
 * import { PrismaAPIClient } from 'pipeline-status-sdk/client'
 * const client = new PrismaAPIClient()
 * const stream = client.streamStageOutput('run_1', 4, { flushIntervalMs: 500 })
 * stream.write('## Findings\n')
 * await stream.close()
 * ```
 */
export interface StageOutputStreamOptions {
  /**
   * How long written text may wait before it is sent, in milliseconds, counted from the first
   * write since the last chunk left. While a chunk is in flight the next one waits for it, so a
   * slow server gets fewer, larger chunks. A model writing 50 tokens a second makes about
   * `1000 / flushIntervalMs` requests a second (4 by default).
   * @default 250
   */
  flushIntervalMs?: number | undefined
  /**
   * Buffered text of at least this many UTF-8 bytes is sent at once, without waiting out
   * `flushIntervalMs`. Each chunk carries at most 64 KiB (`MAX_OUTPUT_CHUNK_BYTES`), cut between
   * characters (a surrogate pair is never split).
   * @default 16_384
   */
  flushBytes?: number | undefined
  /**
   * The bound of the text waiting to be sent, in UTF-8 bytes (besides the one chunk in flight,
   * at most 64 KiB). A `write` that would pass it is dropped, and so is every later `write`
   * (one warning): the server is then far behind, or that one write was larger than the bound
   * (the warning says which), and a stage's streamed text is limited to 1 MiB by default on the
   * server anyway. The text accepted before is still sent, before the stage's final status.
   * @default 1_048_576
   */
  maxBufferedBytes?: number | undefined
}

/** What a stage's output stream did, resolved by {@link StageOutputStream.close}. */
export interface StageOutputSummary {
  /** Chunks delivered or queued in the outbox. */
  chunks: number
  /** Their text, in UTF-8 bytes. */
  bytes: number
  /** Why the stream stopped early (a 409 or 413, a failed delivery, the buffer bound), when it did. */
  stopped?: string | undefined
}

/**
 * A stage's streamed output (`POST {base}/{runId}/stages/{stageNumber}/output`), made by
 * {@link PrismaAPIClient.streamStageOutput}; `runPipeline` gives each stage attempt its `write`.
 */
export interface StageOutputStream {
  /**
   * Appends text to the stage's output. Never blocks and never throws: the text is buffered and
   * sent in batches (see {@link StageOutputStreamOptions}). NUL characters and lone surrogates
   * are replaced with U+FFFD (a high surrogate at the end of one write pairs with a low one at
   * the start of the next). Dropped silently once the stream is closed or stopped.
   */
  write(text: string): void
  /** Sends everything written so far; resolves when it was delivered or queued (or the stream stopped). Never rejects. */
  flush(): Promise<void>
  /**
   * Flushes, then ends the stream: later writes are dropped. Send the stage's final status only
   * after this resolves, so the text arrives before it. Never rejects; each chunk's delivery is
   * bounded by the client's timeout and retries (or goes to the outbox).
   */
  close(): Promise<StageOutputSummary>
  /** Why the stream stopped early, or `undefined` while it has not. */
  readonly stopped: string | undefined
}

/**
 * How a chunk went, as a stream sees it: a stop carries its cause (`reason`) and, unless the
 * reason says it already, the `fix` the one log line names. Internal.
 */
export type ChunkResult = { state: 'sent' } | { state: 'stopped'; reason: string; fix?: string | undefined; quiet?: boolean }

/** Sends chunk `seq`; never rejects. Internal. */
export type ChunkSender = (seq: number, text: string) => Promise<ChunkResult>

/** What a delivered (or undelivered) chunk means for its stream. Internal. */
export function chunkResult(seq: number, outcome: Delivered): ChunkResult {
  switch (outcome.state) {
    case 'queued':
      return { state: 'sent' }
    case 'delivered': {
      const answer = StageOutputChunkResponse.safeParse(safeJson(outcome.text))
      if (answer.success && answer.data.outcome === 'conflict') {
        return { state: 'stopped', reason: conflictReason(seq) }
      }
      return { state: 'sent' }
    }
    case 'run-finished':
      // The client has logged the run's end already.
      return { state: 'stopped', reason: outcome.error.message, quiet: true }
    case 'refused':
      return { state: 'stopped', reason: `chunk ${seq} was refused: ${failureReason(outcome.error)}`, fix: refusalFix(outcome.error.status, outcome.error.problem?.code) }
    default:
      return { state: 'stopped', reason: `chunk ${seq} was not delivered: ${failureReason(outcome.error)}`, fix: UNDELIVERED_FIX }
  }
}

/** The fix of a chunk that could not be delivered (no outbox, the server unreachable past the retries). Internal. */
export const UNDELIVERED_FIX =
  "give the client an outbox (outbox: { dir }) so that chunks wait on disk while the server cannot take them, or check that the server is reachable from the runner"

/**
 * The fix of a chunk refused with 409 `run_finished` when this runner's own report finished the
 * run, e.g. stages run in parallel and the catalogue's last one completed first (shared wording
 * with the Python client). Internal.
 */
export const RUN_FINISHED_BY_THIS_RUNNER_FIX =
  "the run was already finished by this runner's own report (the catalogue's last stage COMPLETED, or a stage FAILED or CANCELLED): a runner with parallel stages must report the last stage COMPLETED only after every other stage finished (after a FAILED or CANCELLED stage there is nothing to fix)"

/** The fix of a chunk the server refused for good, by its status and problem `code` (shared wording with the Python client). Internal. */
export function refusalFix(status: number, code: string | undefined): string {
  if (status === 413) {
    return "stream less text per stage attempt, or raise the server's maxStreamedOutputBytes (its limit of one stage attempt's streamed text)"
  }
  switch (code) {
    case 'output_out_of_order':
      return 'let one stream write a stage attempt (one per stage and attempt); a process that restarts a stage must report it as a new attempt first (runPipeline does)'
    case 'stage_not_started':
      return 'report the stage PROCESSING before streaming its output (runPipeline does)'
    case 'stage_finished':
      return (
        "close the stream before sending the stage's final status (runPipeline does); if the server held the stage final before it started " +
        '(an earlier process of this run, or another runner on the same run id, finished it), do not run it again: runPipeline skips a stage an earlier process completed'
      )
    case 'run_finished':
      // A run finished elsewhere stops the stream quietly (`run-finished`): this one was finished by the runner itself.
      return RUN_FINISHED_BY_THIS_RUNNER_FIX
    default:
      return 'the server refused the chunk itself: report this line as a bug of pipeline-status-sdk'
  }
}

/**
 * Why a write of `bytes` UTF-8 bytes passed the bound of the text waiting to be sent, and the fix
 * (shared wording with the Python client): a write larger than the bound on its own says so (no
 * server speed would have let it in); otherwise the server took the chunks slower than the
 * stage wrote them. Internal.
 */
export function bufferOverflow(bytes: number, maxBufferedBytes: number): { reason: string; fix: string } {
  if (bytes > maxBufferedBytes) {
    return {
      reason: `one write of ${bytes} bytes is larger than maxBufferedBytes (${maxBufferedBytes} bytes), the most text that may wait to be sent`,
      fix:
        "write the text in pieces as it is produced, or raise maxBufferedBytes (the server keeps at most its maxStreamedOutputBytes of a stage attempt's streamed text, 1 MiB by default)",
    }
  }
  return {
    reason: `more than ${maxBufferedBytes} bytes waited to be sent (the server takes the chunks slower than the stage writes them)`,
    fix: 'write less often or in larger pieces, or raise maxBufferedBytes',
  }
}

/** Why a `conflict` answer stopped a stream (shared wording with the Python client). Internal. */
export function conflictReason(seq: number): string {
  return (
    `the server holds other text for chunk ${seq} of this attempt (outcome "conflict"): another process, or an earlier run of this ` +
    `process with the same runId, streamed different text for the same seq of this stage attempt. ` +
    `Fix: let one process stream a stage attempt; a runner that restarts a stage must report it as a new attempt (runPipeline does so)`
  )
}

/** One stage attempt's output stream. Internal: made by the client. */
export class OutputStream implements StageOutputStream {
  readonly #send: ChunkSender
  readonly #logger: Logger
  readonly #label: string
  readonly #flushIntervalMs: number
  readonly #flushBytes: number
  readonly #maxBufferedBytes: number
  #buffer = ''
  #bufferedBytes = 0
  /** A high surrogate that ended the last write, waiting for its low half. */
  #held = ''
  /** When the oldest buffered text was written (`performance.now()`). */
  #firstWriteAt = 0
  #seq = 0
  #inFlight: Promise<void> | undefined
  #timer: ReturnType<typeof setTimeout> | undefined
  #closed = false
  #stopped: string | undefined
  /** Why writes are dropped after one passed `maxBufferedBytes`; what was accepted before is still sent. */
  #overflowed: string | undefined
  #chunks = 0
  #bytes = 0
  /** Whether the stream's one log line was written. */
  #logged = false

  constructor(options: StageOutputStreamOptions & { send: ChunkSender; logger: Logger; label: string }) {
    this.#send = options.send
    this.#logger = options.logger
    this.#label = options.label
    this.#flushIntervalMs = options.flushIntervalMs ?? DEFAULT_OUTPUT_FLUSH_INTERVAL_MS
    this.#flushBytes = Math.min(options.flushBytes ?? DEFAULT_OUTPUT_FLUSH_BYTES, MAX_OUTPUT_CHUNK_BYTES)
    this.#maxBufferedBytes = options.maxBufferedBytes ?? DEFAULT_OUTPUT_MAX_BUFFERED_BYTES
    if (!(this.#flushIntervalMs >= 0) || !(this.#flushBytes >= 1) || !(this.#maxBufferedBytes >= 1)) {
      throw new RangeError('flushIntervalMs must be >= 0 and flushBytes, maxBufferedBytes >= 1')
    }
  }

  get stopped(): string | undefined {
    return this.#stopped ?? this.#overflowed
  }

  write(text: string): void {
    if (this.#closed || this.#stopped !== undefined || this.#overflowed !== undefined) return
    let piece = this.#held + (typeof text === 'string' ? text : String(text))
    this.#held = ''
    const last = piece.charCodeAt(piece.length - 1)
    if (last >= 0xd800 && last <= 0xdbff) {
      this.#held = piece.slice(-1)
      piece = piece.slice(0, -1)
    }
    if (piece === '') return
    this.#append(toStorableText(piece).text)
  }

  async flush(): Promise<void> {
    for (;;) {
      if (this.#inFlight) {
        await this.#inFlight
        continue
      }
      if (this.#stopped !== undefined || this.#bufferedBytes === 0) return
      this.#pump()
    }
  }

  async close(): Promise<StageOutputSummary> {
    if (!this.#closed) {
      this.#closed = true
      // A high surrogate whose low half never came is not storable.
      if (this.#held !== '' && this.#stopped === undefined && this.#overflowed === undefined) this.#append(REPLACEMENT_CHARACTER, true)
      this.#held = ''
    }
    await this.flush()
    this.#clearTimer()
    return this.#summary()
  }

  /** Ends the stream without sending what waits (the run ended elsewhere); resolves after the chunk in flight. */
  async discard(): Promise<StageOutputSummary> {
    this.#closed = true
    this.#buffer = ''
    this.#bufferedBytes = 0
    this.#held = ''
    this.#clearTimer()
    await this.#inFlight
    return this.#summary()
  }

  #summary(): StageOutputSummary {
    const stopped = this.stopped
    return { chunks: this.#chunks, bytes: this.#bytes, ...(stopped === undefined ? {} : { stopped }) }
  }

  #append(text: string, closing = false): void {
    const bytes = utf8Bytes(text)
    if (this.#bufferedBytes + bytes > this.#maxBufferedBytes) {
      // The text accepted so far stays and is still sent; this write and later ones are dropped.
      const overflow = bufferOverflow(bytes, this.#maxBufferedBytes)
      this.#overflowed = overflow.reason
      this.#held = ''
      this.#logOnce(
        `${this.#label}: streamed output truncated: ${overflow.reason}. This write and later ones are dropped; the text written before is still sent, then the stage's final status. Fix: ${overflow.fix}`,
      )
      return
    }
    if (this.#bufferedBytes === 0) this.#firstWriteAt = performance.now()
    this.#buffer += text
    this.#bufferedBytes += bytes
    if (closing) return
    if (this.#bufferedBytes >= this.#flushBytes) this.#pump()
    else this.#arm()
  }

  /** A timer for the oldest buffered text's deadline, unless a chunk is in flight (its end re-arms). */
  #arm(): void {
    if (this.#timer !== undefined || this.#inFlight !== undefined || this.#bufferedBytes === 0) return
    const wait = Math.max(0, this.#firstWriteAt + this.#flushIntervalMs - performance.now())
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      this.#pump()
    }, wait)
    // A stage that is done must not be kept alive by its stream; `close` sends the rest.
    this.#timer.unref?.()
  }

  /** Sends the next chunk unless one is in flight. */
  #pump(): void {
    this.#clearTimer()
    if (this.#inFlight !== undefined || this.#stopped !== undefined || this.#bufferedBytes === 0) return
    const { text, bytes } = this.#take()
    const seq = this.#seq++
    this.#inFlight = this.#send(seq, text)
      // A sender never rejects: this is a bug, said so in the one line.
      .catch((error: unknown): ChunkResult => ({ state: 'stopped', reason: failureReason(error), fix: 'report this line as a bug of pipeline-status-sdk' }))
      .then((result) => {
        this.#inFlight = undefined
        if (result.state === 'stopped') {
          this.#stop(result.reason, result.fix, result.quiet)
          return
        }
        this.#chunks++
        this.#bytes += bytes
        if (this.#bufferedBytes === 0) return
        if (this.#closed || this.#bufferedBytes >= this.#flushBytes) this.#pump()
        else this.#arm()
      })
  }

  /** The next chunk off the buffer: at most 64 KiB of UTF-8, cut between code points. */
  #take(): { text: string; bytes: number } {
    if (this.#bufferedBytes <= MAX_OUTPUT_CHUNK_BYTES) {
      const taken = { text: this.#buffer, bytes: this.#bufferedBytes }
      this.#buffer = ''
      this.#bufferedBytes = 0
      return taken
    }
    const end = utf8CutIndex(this.#buffer, MAX_OUTPUT_CHUNK_BYTES)
    const text = this.#buffer.slice(0, end.index)
    this.#buffer = this.#buffer.slice(end.index)
    this.#bufferedBytes -= end.bytes
    if (this.#bufferedBytes > 0) this.#firstWriteAt = performance.now() - this.#flushIntervalMs
    return { text, bytes: end.bytes }
  }

  #stop(reason: string, fix: string | undefined, quiet = false): void {
    if (this.#stopped !== undefined) return
    this.#stopped = reason
    this.#buffer = ''
    this.#bufferedBytes = 0
    this.#held = ''
    this.#clearTimer()
    if (!quiet) {
      this.#logOnce(
        `${this.#label}: streamed output stopped: ${reason}. Later write() calls are dropped; the stage's final status and output are still sent${fix === undefined ? '' : `. Fix: ${fix}`}`,
      )
    }
  }

  /** The stream's one log line: its first cause (a later one is in the summary's `stopped`). */
  #logOnce(line: string): void {
    if (this.#logged) return
    this.#logged = true
    this.#logger.warn(line)
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
  }
}

/**
 * Where to cut `text` so that its head is at most `maxBytes` of UTF-8, between code points (a
 * surrogate pair stays whole): the head's length in code units and its bytes. Internal.
 */
export function utf8CutIndex(text: string, maxBytes: number): { index: number; bytes: number } {
  let bytes = 0
  let index = 0
  while (index < text.length) {
    const unit = text.charCodeAt(index)
    let size: number
    let width = 1
    if (unit < 0x80) size = 1
    else if (unit < 0x800) size = 2
    else if (unit >= 0xd800 && unit <= 0xdbff && index + 1 < text.length && isLowSurrogate(text.charCodeAt(index + 1))) {
      size = 4
      width = 2
    } else size = 3
    if (bytes + size > maxBytes) break
    bytes += size
    index += width
  }
  return { index, bytes }
}

function isLowSurrogate(unit: number): boolean {
  return unit >= 0xdc00 && unit <= 0xdfff
}

/**
 * `runPipeline`'s streamed output of one stage: a stream per attempt, opened on the first
 * `write`, settled before each report of the stage (a retry's or the final status). Internal.
 */
export class StageOutputs {
  readonly #open: () => OutputStream
  readonly #warn: (message: string) => void
  readonly #stageNumber: number
  #current: { stream?: OutputStream; settled: boolean } | undefined

  constructor(stageNumber: number, open: () => OutputStream, warn: (message: string) => void) {
    this.#stageNumber = stageNumber
    this.#open = open
    this.#warn = warn
  }

  /** The `write` of a new attempt: its own stream (the server restarts `seq` at 0 for a higher attempt). */
  writer(): (text: string) => void {
    const attempt: { stream?: OutputStream; settled: boolean } = { settled: false }
    this.#current = attempt
    return (text) => {
      // A write after its attempt was settled (a stage that ignores its signal) is dropped.
      if (attempt.settled) return
      attempt.stream ??= this.#open()
      attempt.stream.write(text)
    }
  }

  /** Flushes and closes the attempt's stream (drops what waits when `discard`); notes an early stop. */
  async settle(discard = false): Promise<void> {
    const attempt = this.#current
    this.#current = undefined
    if (attempt === undefined) return
    attempt.settled = true
    if (attempt.stream === undefined) return
    const summary = discard ? await attempt.stream.discard() : await attempt.stream.close()
    if (summary.stopped !== undefined) this.#warn(`Stage ${this.#stageNumber} streamed output stopped: ${summary.stopped}`)
  }
}
