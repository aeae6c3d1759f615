/**
 * The read routes: `GET /{runId}/status` (with its `ETag`/304) and `GET /openapi.json`, the
 * contract's OpenAPI document (public). Internal.
 */
import { createOpenApiDocument } from '../../contract/openapi.js'
import { OPENAPI_DOCUMENT_NAME } from '../../contract/route-registry.js'
import { presentedVersion } from '../../core/known-versions.js'
import { ifNoneMatchMatches, statusETag } from '../../core/run-version.js'
import type { RequestAuth } from '../auth/authenticate.js'
import type { Plumbing, RouteHandler } from '../http/exchange.js'
import { jsonTextResponse } from '../http/problem-response.js'
import { runNotFound } from '../http/validate.js'
import type { HandlerSettings } from '../settings.js'

/** The read routes' handlers, by route name. */
export interface ReadRoutes {
  readonly status: RouteHandler
  readonly openApi: RouteHandler
}

/** Builds the read routes of one handlers instance. */
export function createReadRoutes(settings: HandlerSettings, plumbing: Plumbing, auth: RequestAuth): ReadRoutes {
  const { reads, statusJson, basePath } = settings

  const status = plumbing.route('status', async (exchange, { runId }) => {
    const access = await auth.read(exchange, 'status', runId)
    const ifNoneMatch = exchange.request.headers.get('if-none-match')
    // A client that holds version n never gets an older one back, whichever instance it reaches.
    const snapshot = await access.load(() => reads.getRun(runId, 'status', presentedVersion(ifNoneMatch)))
    if (!snapshot) throw runNotFound()
    if (snapshot.version === undefined) return jsonTextResponse(statusJson(snapshot), { 'Cache-Control': 'no-store' })
    // The version is the ETag: a poller that sends it back gets 304 until the run changes.
    const etag = statusETag({ version: snapshot.version })
    const headers = { ETag: etag, 'Cache-Control': 'private, no-cache' }
    if (ifNoneMatchMatches(ifNoneMatch, etag)) return new Response(null, { status: 304, headers })
    return jsonTextResponse(statusJson(snapshot), headers)
  })

  const openApi = plumbing.route('openApi', async (exchange) => openApiDocumentResponse(exchange.request, basePath))

  return { status, openApi }
}

/** The document as JSON text, by the base path it names; a handful at most (one per mount point). */
const served = new Map<string, string>()
const MAX_CACHED = 16

/**
 * `GET {basePath}/openapi.json`: the contract's OpenAPI document, public (no secret). Its server
 * URL is the base path as the request reached the app (an Express mount point included), so
 * tools that read the document from here call the routes next to it.
 */
function openApiDocumentResponse(request: Request, basePath: string): Response {
  const suffix = `/${OPENAPI_DOCUMENT_NAME}`
  const pathname = new URL(request.url).pathname.replace(/\/+$/, '')
  const base = pathname.endsWith(suffix) ? pathname.slice(0, -suffix.length) : basePath
  let text = served.get(base)
  if (text === undefined) {
    text = JSON.stringify(createOpenApiDocument({ basePath: base }))
    if (served.size >= MAX_CACHED) served.clear()
    served.set(base, text)
  }
  return new Response(text, { status: 200, headers: { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache' } })
}
