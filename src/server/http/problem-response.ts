import { PROBLEM_CONTENT_TYPE } from '../../contract/headers.js'
import { createProblem, type FieldError, type ProblemCode } from '../../contract/problem.js'
import { isErrorNamed } from '../../internal/is-error-named.js'

/** Extra members of a problem body. */
export interface ProblemExtras {
  /** What went wrong in this case, for people; never internals. */
  detail?: string
  /** For `validation_failed`: which fields failed and why. */
  errors?: FieldError[]
  [key: string]: unknown
}

/**
 * An `application/problem+json` response for a contract error code, with its status, title
 * and type filled in.
 *
 * @example
 * ```ts
 * import { problemResponse } from 'pipeline-status-sdk/server'
 * // A route of your own that answers in the contract's problem format.
 * export async function GET(request: Request): Promise<Response> {
 *   const session = await getSession(request)
 *   if (!session?.isAdmin) return problemResponse('forbidden', { detail: 'You do not own this run' })
 *   return Response.json({ ok: true })
 * }
 * ```
 */
export function problemResponse(code: ProblemCode, extras: ProblemExtras = {}, headers: HeadersInit = {}): Response {
  const problem = createProblem(code, extras)
  const responseHeaders = new Headers(headers)
  responseHeaders.set('Content-Type', PROBLEM_CONTENT_TYPE)
  responseHeaders.set('Cache-Control', 'no-store')
  return new Response(JSON.stringify(problem), { status: problem.status, headers: responseHeaders })
}

/** A `200`/`201` JSON response that no cache keeps (run status changes all the time). */
export function jsonResponse(body: unknown, status = 200): Response {
  return jsonTextResponse(JSON.stringify(body), { 'Cache-Control': 'no-store' }, status)
}

const DOCUMENT_TEXT = Symbol('pipeline-status-sdk.document-text')
type WithDocumentText = Response & { [DOCUMENT_TEXT]?: string }

/**
 * An `application/json` response of `text` with `headers`, whose text a Node bridge can write as
 * it is, instead of reading the `Response`'s Web stream back ({@link documentTextOf}); to every
 * other reader it is an ordinary `Response`.
 */
export function jsonTextResponse(text: string, headers: Record<string, string>, status = 200): Response {
  const response: WithDocumentText = new Response(text, { status, headers: { 'Content-Type': 'application/json', ...headers } })
  response[DOCUMENT_TEXT] = text
  return response
}

/** The text {@link jsonTextResponse} built `response` from, while its body is unread; else `undefined`. */
export function documentTextOf(response: Response): string | undefined {
  const text = (response as WithDocumentText)[DOCUMENT_TEXT]
  return text === undefined || response.bodyUsed ? undefined : text
}

/**
 * Thrown inside the handlers (or by the app's `authorize` hook) to stop with a problem
 * response; the handlers catch it and answer with {@link HttpProblemError.getResponse}, so it
 * never reaches the framework.
 *
 * @example
 * ```ts
 * import { createPipelineStatusHandlers, HttpProblemError } from 'pipeline-status-sdk/server'
 * const handlers = createPipelineStatusHandlers({
 *   prisma,
 *   authorize: async ({ request }) => {
 *     const session = await getSession(request)
 *     if (!session) throw new HttpProblemError('authentication_required', { detail: 'Sign in first' })
 *     return session.isAdmin
 *   },
 * })
 * ```
 */
export class HttpProblemError extends Error {
  /** Always `'HttpProblemError'`; check it with {@link isHttpProblemError}. */
  override readonly name = 'HttpProblemError' as const
  /** The contract error code; it sets the response's status. */
  readonly code: ProblemCode
  /** Extra members of the problem body (`detail`, `errors`, ...). */
  readonly extras: ProblemExtras
  /** Extra response headers, e.g. `Allow` or `Retry-After`. */
  readonly headers: HeadersInit

  constructor(code: ProblemCode, extras: ProblemExtras = {}, headers: HeadersInit = {}) {
    super(extras.detail ?? code)
    this.code = code
    this.extras = extras
    this.headers = headers
  }

  /** The problem as a response. */
  getResponse(): Response {
    return problemResponse(this.code, this.extras, this.headers)
  }
}

/** Whether a value is an {@link HttpProblemError}, also across realms and dual builds. */
export function isHttpProblemError(error: unknown): error is HttpProblemError {
  return isErrorNamed(error, 'HttpProblemError') && typeof (error as HttpProblemError).getResponse === 'function'
}
