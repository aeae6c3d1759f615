import { createOpenApiDocument } from '../contract/openapi.js'
import { OPENAPI_DOCUMENT_NAME } from '../contract/route-registry.js'
import { HttpProblemError } from './problem-response.js'

/** The document as JSON text, by the base path it names; a handful at most (one per mount point). */
const served = new Map<string, string>()
const MAX_CACHED = 16

/**
 * `GET {basePath}/openapi.json`: the contract's OpenAPI document, public (no secret). Its server
 * URL is the base path as the request reached the app (an Express mount point included), so
 * tools that read the document from here call the routes next to it.
 */
export function openApiDocumentResponse(request: Request, basePath: string): Response {
  // A GET route answers HEAD too (RFC 9110 §9.3.2).
  const allowed = ['GET', 'HEAD']
  if (!allowed.includes(request.method)) {
    const allow = allowed.join(', ')
    throw new HttpProblemError('method_not_allowed', { detail: `This route accepts ${allow} only` }, { Allow: allow })
  }
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
