/**
 * The keep-alive figures every request of a live stream subscriber is bounded by (the browser's
 * `subscribeToRun` and the runner's run-end watch alike), and the abort controller that carries
 * one request's deadline.
 */

/**
 * The keep-alive interval assumed until the server announces its own (`: keep-alive-ms N`, sent
 * first on every stream; docs/contract.md): 15 s, the handlers' default.
 */
export const DEFAULT_SERVER_KEEP_ALIVE_MS = 15_000
/** How many keep-alive intervals without a byte make a stream count as lost: 3. */
export const SILENT_KEEP_ALIVES = 3

/** The comment that announces the server's keep-alive interval, e.g. `: keep-alive-ms 15000`. */
const KEEP_ALIVE_ANNOUNCEMENT = /^\s*keep-alive-ms\s+(\d+)\s*$/

/** The interval a `: keep-alive-ms N` comment announces, in milliseconds; `undefined` for any other comment. */
export function announcedKeepAliveMs(comment: string): number | undefined {
  const announced = KEEP_ALIVE_ANNOUNCEMENT.exec(comment)
  const value = announced ? Number(announced[1]) : 0
  return value > 0 ? value : undefined
}

/**
 * One request's abort controller: aborted when the subscription stops (its `signal`), or with
 * the error of its deadline once that passes. A stream pushes the deadline back with every byte
 * (`arm` again); a poll arms it once.
 */
export class AttemptDeadline {
  readonly #controller = new AbortController()
  readonly #subscription: AbortSignal
  readonly #forward: () => void
  #timer: ReturnType<typeof setTimeout> | undefined
  #expired: Error | undefined

  constructor(subscription: AbortSignal) {
    this.#subscription = subscription
    // By hand: AbortSignal.any is too recent for some browsers.
    this.#forward = () => this.#controller.abort(subscription.reason)
    if (subscription.aborted) this.#forward()
    else subscription.addEventListener('abort', this.#forward, { once: true })
  }

  /** The signal to hand `fetch`. */
  get signal(): AbortSignal {
    return this.#controller.signal
  }

  /** The error the deadline aborted the request with, once it passed. */
  get expired(): Error | undefined {
    return this.#expired
  }

  /** (Re)starts the deadline: `ms` from now the request is aborted with `error()`. */
  arm(ms: number, error: () => Error): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = setTimeout(() => {
      this.#expired = error()
      this.#controller.abort(this.#expired)
    }, ms)
  }

  /** Stops the timer and lets go of the subscription's signal. */
  dispose(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
    this.#subscription.removeEventListener('abort', this.#forward)
  }
}
