/**
 * CORS for the read routes (`GET /status`, `GET /events`), for subscribers on another origin
 * (Fetch standard, "CORS protocol"). Off by default: without the option no CORS header is sent,
 * so browsers allow same-origin reads only.
 */
import { ServerConfigurationError } from '../configuration-error.js'

/** The `cors` option of the handlers. */
export interface CorsOptions {
  /**
   * The origins allowed to read status and stream runs, e.g. `['https://app.example.com']`
   * (scheme, host and port, as browsers send them in `Origin`). Compared exactly. There is no
   * wildcard: `'*'`, or an entry that is not an origin as browsers send it (a trailing `/`, a
   * path), throws `ServerConfigurationError` when the handlers are created, since it would
   * allow nothing. List each origin.
   */
  origins: readonly string[]
  /**
   * Whether cross-origin requests may carry cookies (`Access-Control-Allow-Credentials: true`),
   * for an `authorize` hook that reads the app's session cookie.
   * @default false
   */
  credentials?: boolean | undefined
  /**
   * How long a browser may cache a preflight answer, in seconds.
   * @default 600
   */
  maxAgeSeconds?: number | undefined
}

/** Request headers a cross-origin reader may send. */
const ALLOWED_HEADERS = 'Authorization, Last-Event-ID, If-None-Match, Cache-Control'
/** Response headers a cross-origin reader may see. */
const EXPOSED_HEADERS = 'ETag, Retry-After'

/** The CORS rules of one handlers instance. Not importable outside this package. */
export class Cors {
  readonly #origins: ReadonlySet<string>
  readonly #credentials: boolean
  readonly #maxAge: string

  /** @throws ServerConfigurationError for an entry of `origins` that is not an origin. */
  constructor(options: CorsOptions) {
    for (const entry of options.origins) {
      const problem = originProblem(entry)
      if (problem !== undefined) throw new ServerConfigurationError(`cors.origins: ${problem}`)
    }
    this.#origins = new Set(options.origins)
    this.#credentials = options.credentials === true
    this.#maxAge = String(options.maxAgeSeconds ?? 600)
  }

  /** The answer to a preflight `OPTIONS` of a read route: 204, with the grant if the origin is allowed. */
  preflight(request: Request, methods: readonly string[]): Response {
    const headers = new Headers({ Vary: 'Origin', Allow: [...methods, 'OPTIONS'].join(', ') })
    const origin = request.headers.get('origin')
    if (origin !== null && this.#origins.has(origin)) {
      this.#grant(headers, origin)
      headers.set('Access-Control-Allow-Methods', methods.join(', '))
      headers.set('Access-Control-Allow-Headers', ALLOWED_HEADERS)
      headers.set('Access-Control-Max-Age', this.#maxAge)
    }
    return new Response(null, { status: 204, headers })
  }

  /** Adds the grant to an actual read's response when its origin is allowed. */
  apply(request: Request, response: Response): Response {
    const origin = request.headers.get('origin')
    response.headers.append('Vary', 'Origin')
    if (origin === null || !this.#origins.has(origin)) return response
    this.#grant(response.headers, origin)
    response.headers.set('Access-Control-Expose-Headers', EXPOSED_HEADERS)
    return response
  }

  #grant(headers: Headers, origin: string): void {
    headers.set('Access-Control-Allow-Origin', origin)
    if (this.#credentials) headers.set('Access-Control-Allow-Credentials', 'true')
  }
}

/**
 * Why an entry of `cors.origins` can never equal a browser's `Origin` header, naming the fix;
 * `undefined` for an origin (`https://app.example.com`, `http://localhost:3000`).
 */
function originProblem(entry: unknown): string | undefined {
  if (entry === '*') {
    return "'*' is not supported: a wildcard would let any site read runs with its visitors' credentials. List each origin that may read, e.g. origins: ['https://app.example.com']"
  }
  let origin: string | undefined
  try {
    origin = typeof entry === 'string' ? new URL(entry).origin : undefined
  } catch {
    origin = undefined
  }
  if (origin === entry) return undefined
  const shown = JSON.stringify(entry)
  const fix = origin !== undefined && origin !== 'null' ? `write ${JSON.stringify(origin)}` : "write scheme, host and port, e.g. 'https://app.example.com'"
  return `${shown} is not an origin as browsers send it in Origin (scheme://host[:port], no path or trailing slash), so it would match nothing: ${fix}`
}
