/**
 * Ends open streams when the credential they were opened with expires (a run or tag read token,
 * or the app's session when its `authorize` answered `{ allow: true, expiresAt }`):
 * one timer per handlers instance, armed for the earliest expiry of the open streams that have
 * one, so a stream ends at its credential's expiry however many streams there are. Streams
 * whose credential has no expiry (the webhook secret, a signature, an `authorize` that answered
 * `true`) are never registered and pay nothing; those that have one pay one map entry, no timer
 * and no closure of their own. Edge-safe: timers only. Not importable outside this package.
 */
import { unrefTimer } from '../../internal/unref-timer.js'

/** A stream that ends when its credential expires (a run's stream, a set stream). */
export interface ExpiringStream {
  /** The credential expired at `expiresAt` (ms since the epoch): the stream ends, saying why. */
  expire(expiresAt: number): void
}

/** The longest delay a timer takes (2^31 - 1 ms, ~24.8 days); a later expiry re-arms on the way. */
const MAX_TIMER_DELAY_MS = 2_147_483_647

/** The expiries of one handlers instance's open streams, and the one timer that ends them. */
export class CredentialExpiry {
  readonly #expiries = new Map<ExpiringStream, number>()
  readonly #now: () => number
  #timer: ReturnType<typeof setTimeout> | undefined
  /** The expiry the timer is armed for (`Infinity`: none). */
  #armedFor = Infinity

  /** `now`: the handlers' clock, in ms since the epoch (the one read tokens are checked with). */
  constructor(now: () => number) {
    this.#now = now
  }

  /** How many open streams have an expiry. */
  get size(): number {
    return this.#expiries.size
  }

  /** Ends `stream` at `expiresAt` (ms since the epoch), unless it closes first ({@link delete}). */
  add(stream: ExpiringStream, expiresAt: number): void {
    this.#expiries.set(stream, expiresAt)
    if (expiresAt < this.#armedFor) this.#arm(expiresAt)
  }

  /** `stream` closed: forgotten; the timer stops with the last one. */
  delete(stream: ExpiringStream): void {
    if (!this.#expiries.delete(stream) || this.#expiries.size > 0) return
    this.#disarm()
  }

  /**
   * The expiry of `stream`'s credential when it has passed, else `undefined`: a change that
   * reaches the stream after its expiry, before the timer ran, is not sent either.
   */
  expiredAt(stream: ExpiringStream): number | undefined {
    if (this.#expiries.size === 0) return undefined
    const expiresAt = this.#expiries.get(stream)
    return expiresAt !== undefined && expiresAt <= this.#now() ? expiresAt : undefined
  }

  /** Forgets every stream and stops the timer (shutdown). */
  close(): void {
    this.#expiries.clear()
    this.#disarm()
  }

  #arm(expiresAt: number): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#armedFor = expiresAt
    const delay = Math.min(Math.max(expiresAt - this.#now(), 0), MAX_TIMER_DELAY_MS)
    this.#timer = unrefTimer(setTimeout(this.#run, delay))
  }

  #disarm(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
    this.#armedFor = Infinity
  }

  /** Ends every stream whose credential expired, then arms the timer for the next expiry. */
  readonly #run = (): void => {
    this.#timer = undefined
    this.#armedFor = Infinity
    const now = this.#now()
    const due: Array<[ExpiringStream, number]> = []
    for (const entry of this.#expiries) if (entry[1] <= now) due.push(entry)
    for (const [stream, expiresAt] of due) {
      this.#expiries.delete(stream)
      stream.expire(expiresAt)
    }
    let next = Infinity
    for (const expiresAt of this.#expiries.values()) if (expiresAt < next) next = expiresAt
    if (next !== Infinity && this.#timer === undefined) this.#arm(next)
  }
}
