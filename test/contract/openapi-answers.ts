/**
 * Checks every answer a contract target gives against the OpenAPI document: the status is
 * documented for the route (or, off the documented routes, is the document's `RouteNotFound` /
 * `MethodNotAllowed` with the path's methods in `Allow`), required headers are there, the media
 * type is documented, and the body matches its schema (ajv, JSON Schema 2020-12). An event stream
 * is checked as it is read: each event's name must be in `x-sse-events` and its `data:` must
 * match the schema it names. Bodies are checked against the published document and against its
 * strict variant (nothing undocumented sent).
 */
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js'
import { createParser } from 'eventsource-parser'
import { createOpenApiDocument, MAX_REQUEST_TARGET_LENGTH, type OpenApiDocument } from 'pipeline-status-sdk'

type Json = Record<string, unknown>

/** What was asked: the method and the URL as sent. */
export interface AnsweredRequest {
  method: string
  /** The request URL (its path from `basePath` on is matched against the document). */
  url: string
}

/** Checks answers against the documents; one per test module (ajv compiles each schema once). */
export class OpenApiAnswerValidator {
  readonly #documents: { name: string; ajv: Ajv2020; document: OpenApiDocument }[]
  readonly #compiled = new Map<string, ValidateFunction>()
  readonly #document: OpenApiDocument
  readonly #basePath: string

  constructor(basePath = '/api/pipeline') {
    this.#basePath = basePath
    this.#document = createOpenApiDocument({ basePath })
    this.#documents = [
      { name: 'document', document: this.#document },
      { name: 'strict document', document: createOpenApiDocument({ basePath, strict: true }) },
    ].map(({ name, document }) => {
      // The whole document is the root schema; ajv ignores the members that are not keywords,
      // and `#/components/schemas/...` references resolve inside it.
      const ajv = new Ajv2020({ strict: false, allErrors: true })
      ajv.addSchema(document, `urn:pipeline-status:${name.replace(' ', '-')}`)
      return { name, ajv, document }
    })
  }

  /**
   * Checks `response` to `request`; throws an `Error` that names the route, status and what is
   * wrong. Returns the response to hand on: the same one, or for an event stream one whose body
   * checks each event as it is read.
   */
  async check(request: AnsweredRequest, response: Response): Promise<Response> {
    const url = new URL(request.url)
    const method = request.method.toLowerCase()
    const where = `${request.method} ${url.pathname} → ${response.status}`
    const relative = url.pathname.startsWith(`${this.#basePath}/`) ? url.pathname.slice(this.#basePath.length).replace(/\/+$/, '') : undefined
    const template = relative === undefined ? undefined : Object.keys(this.#document.paths).find((path) => matches(path, relative))
    const tooLong = url.pathname.length + url.search.length > MAX_REQUEST_TARGET_LENGTH

    let pointer: string
    if (template === undefined) {
      // Off the documented routes: a 404 route_not_found, or 414 for a too long URL.
      pointer = tooLong && response.status === 414 ? '/components/responses/UriTooLong' : '/components/responses/RouteNotFound'
      if (response.status !== 404 && response.status !== 414) throw new Error(`${where}: a path off the documented routes must answer 404 route_not_found`)
    } else {
      const item = this.#document.paths[template] as Json
      if (item[method] === undefined) {
        pointer = tooLong && response.status === 414 ? '/components/responses/UriTooLong' : '/components/responses/MethodNotAllowed'
        if (pointer.endsWith('MethodNotAllowed')) {
          if (response.status !== 405) throw new Error(`${where}: ${template} documents no ${request.method}, so the answer must be 405`)
          // OPTIONS is a CORS preflight, served only with the `cors` option: Allow never names it.
          const documented = Object.keys(item).map((m) => m.toUpperCase()).filter((m) => m !== 'OPTIONS').sort()
          const allow = (response.headers.get('allow') ?? '').split(',').map((m) => m.trim()).sort()
          if (allow.join() !== documented.join()) throw new Error(`${where}: Allow is ${response.headers.get('allow')}, the document has ${documented.join(', ')}`)
        }
      } else {
        const responses = (item[method] as Json)['responses'] as Json
        if (responses[String(response.status)] === undefined) {
          throw new Error(`${where}: status ${response.status} is not documented for ${method.toUpperCase()} ${template} (documented: ${Object.keys(responses).join(', ')})`)
        }
        const documented = responses[String(response.status)] as Json
        // A shared answer (the preflight's 405) is a $ref to components.responses.
        pointer = typeof documented['$ref'] === 'string' ? documented['$ref'].slice(1) : `/paths/${escape(template)}/${method}/responses/${response.status}`
      }
    }
    return this.#checkResponse(where, pointer, response, method === 'head')
  }

  async #checkResponse(where: string, pointer: string, response: Response, head: boolean): Promise<Response> {
    const documented = resolve(this.#document, pointer)
    for (const [name, header] of Object.entries((documented['headers'] ?? {}) as Json)) {
      const spec = resolve(this.#document, header as Json)
      if (spec['required'] === true && !response.headers.has(name)) throw new Error(`${where}: the required header ${name} is missing`)
    }
    const content = documented['content'] as Json | undefined
    // A HEAD answer has the GET's headers and no body (RFC 9110 §9.3.2).
    if (head) {
      if (response.body !== null && (await response.clone().text()) !== '') throw new Error(`${where}: a HEAD answer has a body`)
      return response
    }
    if (content === undefined) {
      const text = response.body === null ? '' : await response.clone().text()
      if (text !== '') throw new Error(`${where}: the document has no body for this answer, but one was sent: ${text.slice(0, 200)}`)
      return response
    }
    const mediaType = (response.headers.get('content-type') ?? '').split(';')[0]!.trim().toLowerCase()
    if (content[mediaType] === undefined) throw new Error(`${where}: Content-Type ${mediaType || '(none)'} is not documented (documented: ${Object.keys(content).join(', ')})`)
    const mediaPointer = `${pointer}/content/${escape(mediaType)}`
    if (mediaType === 'text/event-stream') return this.#checkedStream(where, mediaPointer, response)
    const text = await response.clone().text()
    let body: unknown
    try {
      body = JSON.parse(text)
    } catch {
      throw new Error(`${where}: the ${mediaType} body is not JSON: ${text.slice(0, 200)}`)
    }
    this.#validate(where, `${mediaPointer}/schema`, body)
    return response
  }

  /** Validates `value` against the schema at `pointer` in each document. */
  #validate(where: string, pointer: string, value: unknown): void {
    for (const { name, ajv } of this.#documents) {
      const id = `urn:pipeline-status:${name.replace(' ', '-')}#${pointer.split('/').map(encodeURIComponent).join('/')}`
      let validate = this.#compiled.get(id)
      if (!validate) {
        validate = ajv.compile({ $ref: id })
        this.#compiled.set(id, validate)
      }
      if (!validate(value)) {
        throw new Error(`${where}: the body does not match the ${name} (${pointer}): ${ajv.errorsText(validate.errors)}\n${JSON.stringify(value).slice(0, 500)}`)
      }
    }
  }

  /** The response with a body that checks each event's name and data as the stream is read. */
  #checkedStream(where: string, mediaPointer: string, response: Response): Response {
    const events = resolve(this.#document, mediaPointer)['x-sse-events'] as Record<string, { $ref: string }> | undefined
    if (!events) throw new Error(`${where}: the event stream names no x-sse-events`)
    let failure: Error | undefined
    const parser = createParser({
      onEvent: (event) => {
        if (failure) return
        const schema = events[event.event ?? 'message']
        if (!schema) {
          failure = new Error(`${where}: event ${event.event ?? 'message'} is not in x-sse-events (${Object.keys(events).join(', ')})`)
          return
        }
        try {
          this.#validate(`${where} event ${event.event}`, schema.$ref.slice(1), JSON.parse(event.data))
        } catch (error) {
          failure = error as Error
        }
      },
    })
    const decoder = new TextDecoder()
    const body = response.body!.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          parser.feed(decoder.decode(chunk, { stream: true }))
          if (failure) controller.error(failure)
          else controller.enqueue(chunk)
        },
      }),
    )
    return new Response(body, { status: response.status, statusText: response.statusText, headers: response.headers })
  }
}

/** Whether a relative path matches a path template (`{name}` is one segment). */
function matches(template: string, path: string): boolean {
  const pattern = template.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{[^}]+\}/g, '[^/]+')
  return new RegExp(`^${pattern}$`).test(path)
}

/** One JSON Pointer token (RFC 6901). */
function escape(token: string): string {
  return token.replaceAll('~', '~0').replaceAll('/', '~1')
}

/** The object at a pointer (or a `$ref`) in the document, following one `$ref`. */
function resolve(document: OpenApiDocument, at: string | Json): Json {
  const pointer = typeof at === 'string' ? at : typeof at['$ref'] === 'string' ? (at['$ref'] as string).slice(1) : undefined
  if (pointer === undefined) return at as Json
  let node: unknown = document
  for (const token of pointer.split('/').slice(1)) {
    node = (node as Json)[token.replaceAll('~1', '/').replaceAll('~0', '~')]
    if (node === undefined) throw new Error(`The document has nothing at ${pointer}`)
  }
  const found = node as Json
  return typeof found['$ref'] === 'string' ? resolve(document, found) : found
}
