/**
 * `runPipeline`'s stage retries (docs/contract.md "Timing, attempts and streamed output"): the
 * options, their defaults, and the one loop that runs a stage's attempts, reports each retry
 * and each attempt's start, and waits between them until the stage's signal aborts.
 */
import { MAX_LAST_ERROR_LENGTH } from '../contract/stage-update.js'
import { toStorableText } from '../contract/storable-text.js'
import { backoffDelay } from '../internal/backoff.js'
import { isErrorNamed } from '../internal/is-error-named.js'
import { ConfigurationError } from './errors.js'

/** The default ceiling of the first wait between attempts: 1 s (full jitter, doubling). */
export const DEFAULT_STAGE_RETRY_BASE_MS = 1000
/** The default highest ceiling of a wait between attempts: 30 s. */
export const DEFAULT_STAGE_RETRY_MAX_MS = 30_000

/**
 * How a stage is retried (`runPipeline`'s `retry`, or a stage's own `{ run, retry }`, which
 * replaces the pipeline's field by field).
 *
 * @example
 * ```ts
 * import type { StageRetryOptions } from 'pipeline-status-sdk/client'
 * const retry: StageRetryOptions = { attempts: 3, backoffMs: (attempt) => 5_000 * attempt, retryIf: (error) => !(error instanceof TypeError) }
 * ```
 */
export interface StageRetryOptions {
  /**
   * How many times the stage may run in all, the first attempt included: a whole number from 1
   * (no retry) to 100.
   * @default 1
   */
  attempts?: number | undefined
  /**
   * The wait after attempt `attempt` failed (1 for the first failure), before the next one, in
   * milliseconds: a number, or a function of the attempt that failed. Ends at once when the
   * stage's `signal` aborts (a cancel, the run finished elsewhere), which ends the stage. A
   * function's answer that is not a finite number ≥ 0 (NaN, negative, a string) is clamped to no
   * wait, with one warning per stage (the client's logger and the summary's `warnings`); a
   * number given here that is not one is a `ConfigurationError` before anything is sent.
   * @default full-jitter exponential backoff: a random wait up to 1 s, 2 s, 4 s, ... capped at 30 s
   */
  backoffMs?: number | ((attempt: number) => number) | undefined
  /**
   * Whether a failure is worth another attempt; gets the thrown value and the number of the
   * attempt that threw. An abort (the stage's `signal`, or an `AbortError`) is never retried.
   * @default every failure but an abort
   */
  retryIf?: ((error: unknown, attempt: number) => boolean) | undefined
}

/** The retry options resolved for one stage. */
export interface ResolvedStageRetry {
  readonly attempts: number
  /** The wait after `attempt` failed, in milliseconds. */
  delay(attempt: number): number
  retryIf(error: unknown, attempt: number): boolean
}

/** How a stage entry is named in messages: its index in `stages` and its stage number. */
const entryName = (index: number) => `stages[${index}] (stage ${index + 1})`

/** A value in a message: functions and objects by kind, the rest as JSON. */
function shown(value: unknown): string {
  if (typeof value === 'function') return 'a function'
  if (Array.isArray(value)) return 'an array'
  if (typeof value === 'object' && value !== null) return `an object with ${Object.keys(value).length === 0 ? 'no keys' : `the keys ${Object.keys(value).join(', ')}`}`
  return typeof value === 'string' ? JSON.stringify(value) : String(value)
}

/** Checks retry options given as an object: the field types the resolution does not check. */
function checkRetryOptions(retry: unknown, where: string): StageRetryOptions | undefined {
  if (retry === undefined) return undefined
  if (typeof retry !== 'object' || retry === null || Array.isArray(retry)) {
    throw new ConfigurationError(`${where}: retry must be an object { attempts?, backoffMs?, retryIf? }, got ${shown(retry)}`)
  }
  const { backoffMs, retryIf } = retry as StageRetryOptions
  if (backoffMs !== undefined && typeof backoffMs !== 'number' && typeof backoffMs !== 'function') {
    throw new ConfigurationError(`${where}: retry.backoffMs must be a number of milliseconds or a function of the failed attempt, got ${shown(backoffMs)}`)
  }
  if (retryIf !== undefined && typeof retryIf !== 'function') {
    throw new ConfigurationError(`${where}: retry.retryIf must be a function, got ${shown(retryIf)}`)
  }
  return retry as StageRetryOptions
}

/** A checked stage entry: its function and its resolved retry. */
export interface ResolvedStageEntry<F> {
  readonly run: F
  readonly retry: ResolvedStageRetry
}

/**
 * Checks every stage entry of `runPipeline` before anything is sent: each is a function, or an
 * object `{ run, retry? }` whose `run` is a function and whose `retry` holds valid options (the
 * pipeline's `retry` too). Throws {@link ConfigurationError} naming the entry's index and what is
 * wrong. `warn` gets the one warning per stage of a `backoffMs` function's unusable answer.
 */
export function resolveStageEntries<F extends (...args: never[]) => unknown>(
  entries: readonly unknown[],
  pipeline: StageRetryOptions | undefined,
  warn: (message: string) => void,
): ResolvedStageEntry<F>[] {
  const shared = checkRetryOptions(pipeline, 'runPipeline')
  // The pipeline's own values are named as the pipeline's, not as the first stage's.
  if (shared !== undefined) resolveStageRetry(shared, undefined, 'runPipeline')
  return entries.map((entry, index) => {
    const where = entryName(index)
    if (typeof entry === 'function') return { run: entry as F, retry: resolveStageRetry(shared, undefined, where, warn) }
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
      throw new ConfigurationError(`${where} must be a stage function or { run, retry }, got ${shown(entry)}`)
    }
    const { run, retry } = entry as { run?: unknown; retry?: unknown }
    if (typeof run !== 'function') {
      throw new ConfigurationError(`${where}: { run, retry } needs \`run\`, the stage's function, got ${run === undefined ? 'no run' : shown(run)}`)
    }
    return { run: run as F, retry: resolveStageRetry(shared, checkRetryOptions(retry, where), where, warn) }
  })
}

/**
 * The stage's retry: its own options over the pipeline's, over the defaults. Throws
 * {@link ConfigurationError} naming `where` (the stage entry). A `backoffMs` function's answer
 * that is not a finite number ≥ 0 (NaN, negative, not a number) waits nothing: the stage goes on,
 * and `warn` gets one warning per stage saying so.
 */
export function resolveStageRetry(pipeline: StageRetryOptions | undefined, stage: StageRetryOptions | undefined, where: string, warn: (message: string) => void = () => {}): ResolvedStageRetry {
  const attempts = stage?.attempts ?? pipeline?.attempts ?? 1
  if (!Number.isInteger(attempts) || attempts < 1 || attempts > 100) {
    throw new ConfigurationError(`${where}: retry.attempts must be a whole number from 1 to 100, got ${shown(attempts)}`)
  }
  const backoff = stage?.backoffMs ?? pipeline?.backoffMs
  if (typeof backoff === 'number' && !(Number.isFinite(backoff) && backoff >= 0)) {
    throw new ConfigurationError(`${where}: retry.backoffMs must be a number of milliseconds ≥ 0, got ${String(backoff)}`)
  }
  const retryIf = stage?.retryIf ?? pipeline?.retryIf
  let warned = false
  return {
    attempts,
    delay: (attempt) => {
      if (typeof backoff !== 'function') return backoff ?? backoffDelay(attempt, { baseMs: DEFAULT_STAGE_RETRY_BASE_MS, maxMs: DEFAULT_STAGE_RETRY_MAX_MS, jitter: 'full' })
      const wait: unknown = backoff(attempt)
      if (typeof wait === 'number' && Number.isFinite(wait) && wait >= 0) return wait
      // Mid-run, a bad answer is clamped, not thrown: throwing would fail a stage that could still succeed.
      if (!warned) {
        warned = true
        warn(`${where}: retry.backoffMs(${attempt}) returned ${shown(wait)}, not a number of milliseconds ≥ 0; retrying without a wait`)
      }
      return 0
    },
    retryIf: (error, attempt) => !isErrorNamed(error, 'AbortError') && (retryIf === undefined || retryIf(error, attempt)),
  }
}

/** A failed attempt that will be retried, as reported. */
export interface StageRetry {
  /** The attempt about to run (the failed one plus one). */
  readonly attempt: number
  readonly maxAttempts: number
  /** The failed attempt's error message, at most {@link MAX_LAST_ERROR_LENGTH} code units. */
  readonly lastError: string
  /** When the next attempt starts. */
  readonly nextRetryAt: Date
  /** The wait, in milliseconds. */
  readonly delayMs: number
}

/** What the loop tells `runPipeline`. */
export interface StageAttemptHooks<T> {
  /** Runs one attempt (1 for the first). */
  run(attempt: number): Promise<T>
  /** Attempt `retry.attempt - 1` failed and will be retried: reported before the wait. */
  retrying(retry: StageRetry): Promise<void>
  /** Attempt `attempt` (2 or more) starts: reported before it runs. */
  starting(attempt: number): Promise<void>
}

/**
 * Runs the stage's attempts until one succeeds, the last one fails, `retryIf` refuses, or
 * `signal` aborts (during an attempt or a wait): resolves the successful attempt's result,
 * rejects with the last failure (or the signal's reason).
 */
export async function runStageAttempts<T>(policy: ResolvedStageRetry, signal: AbortSignal, hooks: StageAttemptHooks<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    if (attempt > 1) {
      await hooks.starting(attempt)
      signal.throwIfAborted()
    }
    try {
      return await hooks.run(attempt)
    } catch (error) {
      if (signal.aborted || attempt >= policy.attempts || !policy.retryIf(error, attempt)) throw error
      const delayMs = policy.delay(attempt)
      await hooks.retrying({ attempt: attempt + 1, maxAttempts: policy.attempts, lastError: lastErrorOf(error), nextRetryAt: new Date(Date.now() + delayMs), delayMs })
      await abortableWait(delayMs, signal)
    }
  }
}

/** The error's message for `lastError`: cut to {@link MAX_LAST_ERROR_LENGTH} code units with `…`, a surrogate pair never split. */
export function lastErrorOf(error: unknown): string {
  // Stored like an output: characters PostgreSQL cannot store (NUL, lone surrogates) are replaced first.
  const message = toStorableText(error instanceof Error ? error.message || error.name : String(error)).text
  if (message.length <= MAX_LAST_ERROR_LENGTH) return message
  let end = MAX_LAST_ERROR_LENGTH - 1
  const last = message.charCodeAt(end - 1)
  if (last >= 0xd800 && last <= 0xdbff) end -= 1
  return `${message.slice(0, end)}…`
}

/** Waits `ms`, rejecting with the signal's reason as soon as it aborts. */
function abortableWait(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason as Error)
    const onAbort = () => {
      clearTimeout(timer)
      reject(signal.reason as Error)
    }
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal.addEventListener('abort', onAbort, { once: true })
  })
}
