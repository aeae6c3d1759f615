import { HEADERS } from '../src/contract/headers.js'
import { PROBLEM_CODES, type ProblemCode, createProblem } from '../src/contract/problem.js'
import type { RouteName } from '../src/contract/routes.js'

/**
 * A failure the mock injects on one route, to test how a runner copes with a web app that is
 * slow, overloaded or gone. Faults apply before authentication and never touch stored data.
 */
export interface Fault {
  /** Answer with this HTTP status and a problem+json body instead of handling the request. */
  status?: number
  /** With `status`: the `Retry-After` header, in seconds. */
  retryAfterSeconds?: number
  /** Wait this many milliseconds before answering (or before handling, without `status`). */
  latencyMs?: number
  /** Drop the connection: a network error in-process, a destroyed socket over HTTP. */
  drop?: boolean
  /**
   * How many calls the fault applies to, then it is removed; `undefined` keeps it until cleared.
   * `{ status: 503, times: 2 }` fails the first two calls and lets the third through.
   */
  times?: number
}

/** What the fault layer decided for one request. */
export type FaultAction =
  | { kind: 'pass'; latencyMs: number }
  | { kind: 'respond'; status: number; retryAfterSeconds?: number; latencyMs: number }
  | { kind: 'drop'; latencyMs: number }

/** Faults by route (`'*'` for every route), consumed call by call. */
export class FaultRegistry {
  readonly #faults = new Map<RouteName | '*', Fault>()

  /** Sets (replacing) the fault of a route, or of every route with `'*'`. */
  set(route: RouteName | '*', fault: Fault): void {
    if (fault.times !== undefined && (!Number.isInteger(fault.times) || fault.times < 1)) {
      throw new RangeError('fault.times must be a whole number of calls, at least 1')
    }
    if (fault.status !== undefined && (!Number.isInteger(fault.status) || fault.status < 200 || fault.status > 599)) {
      throw new RangeError('fault.status must be an HTTP status code (200-599)')
    }
    this.#faults.set(route, { ...fault })
  }

  /** Removes the fault of a route, or all faults. */
  clear(route?: RouteName | '*'): void {
    if (route === undefined) this.#faults.clear()
    else this.#faults.delete(route)
  }

  /** Decides what to do with one call of `route`, counting it against the fault's `times`. */
  take(route: RouteName | undefined): FaultAction {
    const key = route !== undefined && this.#faults.has(route) ? route : '*'
    const fault = this.#faults.get(key)
    if (!fault) return { kind: 'pass', latencyMs: 0 }
    if (fault.times !== undefined) {
      if (fault.times <= 1) this.#faults.delete(key)
      else fault.times -= 1
    }
    const latencyMs = fault.latencyMs ?? 0
    if (fault.drop) return { kind: 'drop', latencyMs }
    if (fault.status !== undefined) {
      return { kind: 'respond', status: fault.status, latencyMs, ...(fault.retryAfterSeconds === undefined ? {} : { retryAfterSeconds: fault.retryAfterSeconds }) }
    }
    return { kind: 'pass', latencyMs }
  }
}

/** The body and headers of an injected error response. */
export function faultResponse(action: Extract<FaultAction, { kind: 'respond' }>): Response {
  const headers = new Headers({ 'Content-Type': 'application/problem+json' })
  if (action.retryAfterSeconds !== undefined) headers.set(HEADERS.retryAfter, String(action.retryAfterSeconds))
  if (action.status === 204 || action.status === 304) {
    return new Response(null, { status: action.status, headers })
  }
  // Injected errors look like the real server's: a contract problem where the status has one.
  const code = (Object.keys(PROBLEM_CODES) as ProblemCode[]).find((c) => PROBLEM_CODES[c] === action.status)
  const body = code
    ? createProblem(code, { detail: `Injected fault: the mock was told to answer ${action.status}` })
    : { title: 'Injected fault', status: action.status, detail: `The mock was told to answer ${action.status}` }
  return new Response(JSON.stringify(body), { status: action.status, headers })
}
