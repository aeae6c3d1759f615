/**
 * The one backoff formula: exponential, capped, jittered. The runner's client (its retries and
 * outbox), the live status subscriber and the `pg` LISTEN connection all take their waits from
 * here, so they only differ in the numbers and the jitter they pass.
 *
 * The jitter modes are the ones named in "Exponential Backoff And Jitter" (AWS Architecture Blog):
 * - `full`: anywhere in `[0, ceiling]`; spreads clients furthest apart (the client's retries);
 * - `equal`: in `[ceiling / 2, ceiling]`; never much shorter than asked (the subscriber, which
 *   starts from the server's `retry:` delay);
 * - `none`: the ceiling itself (the single LISTEN connection of a process, nobody to spread from).
 */

/** How a wait is drawn below its ceiling; see the module comment. */
export type BackoffJitter = 'full' | 'equal' | 'none'

/** The numbers of one backoff schedule. */
export interface BackoffOptions {
  /** The ceiling of the first wait, in milliseconds; each later attempt doubles it. Not negative. */
  baseMs: number
  /** The highest ceiling, in milliseconds: doubling stops here, before jitter is drawn. */
  maxMs: number
  /** How the wait is drawn below the ceiling. */
  jitter: BackoffJitter
}

/**
 * Exponents above this are the cap anyway for any base ≥ 2^-1000 ms; bounding the exponent keeps
 * `0 * 2^n` from becoming `0 * Infinity = NaN`.
 */
const MAX_EXPONENT = 1000

/**
 * The wait before attempt `attempt` (1 for the first wait after a failure), in milliseconds:
 * the ceiling `min(maxMs, baseMs * 2^(attempt - 1))`, jittered as `jitter` says. An attempt
 * below 1 counts as 1.
 *
 * @param random a source of uniform numbers in `[0, 1)`, injected by tests; `Math.random` otherwise.
 */
export function backoffDelay(attempt: number, options: BackoffOptions, random: () => number = Math.random): number {
  const exponent = Math.min(MAX_EXPONENT, Math.max(0, attempt - 1))
  const ceiling = Math.min(options.maxMs, options.baseMs * 2 ** exponent)
  switch (options.jitter) {
    case 'full':
      return random() * ceiling
    case 'equal':
      return ceiling / 2 + (random() * ceiling) / 2
    case 'none':
      return ceiling
  }
}
