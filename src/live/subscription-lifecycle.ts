/**
 * The lifecycle every browser subscription shares (`subscribeToRun` on its own connection or the
 * page's shared one, and `subscribeToRuns`): the caller's `signal` wired to one abort, the
 * connection state with its error and the one rule for reporting a change, the `done` promise that
 * never rejects, and the handle's `state`, `error`, `done` and `close`. What differs (what a
 * subscription receives, how it reconnects: `reconnect.ts`) stays with each subscriber. Internal.
 */

/** The states of a subscription: `final` is how it ends by itself (`finished`, `closed`). */
export type LifecycleState<F extends string> = 'connecting' | 'live' | 'reconnecting' | F | 'error'

/** What the lifecycle takes from a subscriber's options. */
export interface LifecycleOptions<S extends string> {
  /** Aborting it closes the subscription. */
  readonly signal?: AbortSignal | undefined
  /** Called on each reported state change. */
  readonly onStateChange?: ((state: S, error: Error | undefined) => void) | undefined
}

/** What every subscription handle has. */
export interface SubscriptionHandle<S extends string> {
  readonly state: S
  readonly error: Error | undefined
  readonly done: Promise<void>
  close(): void
}

/** One subscription's lifecycle; see {@link createSubscriptionLifecycle}. */
export interface SubscriptionLifecycle<F extends string> {
  /** Aborted once the subscription is closed (`close()` or the caller's `signal`); ends every request and wait. */
  readonly signal: AbortSignal
  /** The current state; `connecting` at first. */
  readonly state: LifecycleState<F>
  /** The error of the last state set (the cause of `reconnecting`, the failure of `error`). */
  readonly error: Error | undefined
  /**
   * Sets the state and reports it when it changed or comes with an error. Once closed, only the
   * final states (`final`, `error`) are still reported.
   */
  setState(next: LifecycleState<F>, error?: Error): void
  /** Closes the subscription (aborts {@link signal}); again is a no-op. */
  close(): void
  /**
   * Runs `fn` once the subscription is closed: at once when it already is (its `signal` was
   * aborted before it started).
   */
  onClose(fn: () => void): void
  /**
   * The handle's `done`: settles when `work` does, never rejects (a throw is state `error`), and
   * lets go of the caller's `signal` then.
   */
  settle(work: Promise<void>): Promise<void>
  /** The subscription's handle: `state`, `error`, `done`, `close` and the subscriber's own members (`extra`, getters kept). */
  handle<T extends object>(done: Promise<void>, extra: T): T & SubscriptionHandle<LifecycleState<F>>
}

/**
 * A fresh lifecycle in state `connecting`, closed at once when `options.signal` is already
 * aborted. `final` names the state a subscription ends in by itself.
 */
export function createSubscriptionLifecycle<F extends string>(
  options: LifecycleOptions<LifecycleState<F>>,
  final: F,
): SubscriptionLifecycle<F> {
  const controller = new AbortController()
  const close = () => controller.abort()
  if (options.signal?.aborted) close()
  else options.signal?.addEventListener('abort', close, { once: true })
  const signal = controller.signal

  let state: LifecycleState<F> = 'connecting'
  let lastError: Error | undefined

  function setState(next: LifecycleState<F>, error?: Error): void {
    if (signal.aborted && next !== final && next !== 'error') return
    lastError = error
    if (next === state && error === undefined) return
    state = next
    options.onStateChange?.(next, error)
  }

  return {
    signal,
    get state() {
      return state
    },
    get error() {
      return lastError
    },
    setState,
    close,
    onClose(fn) {
      if (signal.aborted) fn()
      else signal.addEventListener('abort', fn, { once: true })
    },
    settle(work) {
      return work.catch((error: unknown) => setState('error', error as Error)).finally(() => options.signal?.removeEventListener('abort', close))
    },
    handle(done, extra) {
      const base: SubscriptionHandle<LifecycleState<F>> = {
        get state() {
          return state
        },
        get error() {
          return lastError
        },
        done,
        close,
      }
      return Object.defineProperties(base, Object.getOwnPropertyDescriptors(extra)) as typeof extra & typeof base
    },
  }
}
