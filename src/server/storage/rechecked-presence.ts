/**
 * Whether a database object the store can do without is there (the package's functions,
 * `function-calls.ts`; the catalogue table, `catalogue-table.ts`), by one rule: asked the first
 * time it matters; while it is missing, asked again at most every `recheckMs`, so that a
 * migration applied while the app runs takes effect without a restart; marked missing at once
 * when a statement finds it gone. Each change between the two is said once (`onMissing`,
 * `onPresentAgain`). Internal.
 */
import { StoreUnavailableError } from '../../core/store.js'
import { errorMessage } from '../../internal/error-message.js'

/** Options of {@link RecheckedPresence}. */
export interface RecheckedPresenceOptions {
  /**
   * Asks the database: `true` when the object is there, else why not (a sentence's clause).
   * May throw: a `StoreUnavailableError` propagates (and the next call asks again); any other
   * error counts as missing, its cause `asking the database for <what> failed (<message>)`.
   */
  probe(): Promise<true | string>
  /** What is asked for, in the cause of a failed probe ("its functions"). */
  what: string
  /** Told the cause when the object is found missing, once per change from present (or unknown). */
  onMissing(cause: string): void
  /** Told when the object is there again after `onMissing`. */
  onPresentAgain(): void
  /** While missing, how often it is asked for again, in milliseconds. */
  recheckMs: number
  now: () => number
}

/** See the module's description. */
export class RecheckedPresence {
  readonly #options: RecheckedPresenceOptions
  /** The last answer to "is it there?", or the question in flight. */
  #present: Promise<boolean> | undefined
  /** Since when it is known to be missing (`now()`), while it is. */
  #missingSince: number | undefined
  /** Whether the last thing said was that it is missing. */
  #saidMissing = false
  /** How many times it was marked missing: a probe's "there" from before the latest mark is stale. */
  #marks = 0

  constructor(options: RecheckedPresenceOptions) {
    this.#options = options
  }

  /** Whether it is there now: asked the first time, and again at most every `recheckMs` while missing. */
  present(): Promise<boolean> {
    const stale = this.#missingSince !== undefined && this.#options.now() - this.#missingSince >= this.#options.recheckMs
    if (this.#present === undefined || stale) {
      this.#missingSince = undefined
      const asked: Promise<boolean> = this.#probe().catch((error: unknown) => {
        // Unreachable: asked again next time (unless a statement marked it missing meanwhile).
        if (this.#present === asked) this.#present = undefined
        throw error
      })
      this.#present = asked
    }
    return this.#present
  }

  /** Marks it missing now (a statement found it gone), saying `cause` unless missing was said already. */
  missing(cause: string): void {
    this.#marks++
    this.#present = Promise.resolve(false)
    this.#missingSince = this.#options.now()
    if (this.#saidMissing) return
    this.#saidMissing = true
    this.#options.onMissing(cause)
  }

  async #probe(): Promise<boolean> {
    const marks = this.#marks
    let answer: true | string
    try {
      answer = await this.#options.probe()
    } catch (error) {
      if (error instanceof StoreUnavailableError) throw error
      answer = `asking the database for ${this.#options.what} failed (${errorMessage(error)})`
    }
    if (answer !== true) {
      this.missing(answer)
      return false
    }
    // A statement found it gone while the database was asked: that is the newer word, and it stays
    // missing until the next recheck; saying it is there again would be false for that long.
    if (this.#marks !== marks) return false
    if (this.#saidMissing) {
      this.#saidMissing = false
      this.#options.onPresentAgain()
    }
    return true
  }
}
