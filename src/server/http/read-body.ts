import { HttpProblemError } from './problem-response.js'

/** The content codings the handlers inflate (RFC 9110 §8.4.1), by their `Content-Encoding` names. */
const CODINGS: Readonly<Record<string, CompressionFormat>> = Object.freeze({
  gzip: 'gzip',
  'x-gzip': 'gzip', // RFC 9110 §8.4.1.3: a recipient should take it as gzip
  deflate: 'deflate', // the zlib format (RFC 1950), as HTTP's `deflate` is
})

/** The `Accept-Encoding` of a 415 for a coding the handlers do not inflate (RFC 7694). */
const ACCEPTED_CONTENT_CODINGS = 'gzip, deflate'

/**
 * Reads a request body into memory, never more than `maxBytes`: a larger `Content-Length` is
 * refused before reading, and a body without one (chunked, or lying) is counted while it streams
 * and abandoned as soon as it passes the limit. A `gzip` or `deflate` `Content-Encoding` is
 * inflated as it streams (with the Web `DecompressionStream`, so edge runtimes can run it) and the
 * limit counts the inflated bytes, so a small compressed bomb stops at `maxBytes`. Throws
 * {@link HttpProblemError}: `payload_too_large`; `unsupported_media_type` for any other coding;
 * `invalid_json` when the stream breaks off or does not inflate; `body_already_consumed` (500)
 * when something read the body before.
 */
export async function readBodyLimited(request: Request, maxBytes: number): Promise<Uint8Array<ArrayBuffer>> {
  const declared = request.headers.get('content-length')?.trim()
  if (declared !== undefined && /^\d+$/.test(declared) && Number(declared) > maxBytes) throw tooLarge(maxBytes)
  if (request.body === null) return new Uint8Array(0)
  const codings = contentCodings(request.headers.get('content-encoding'))
  // Something before the handlers read it: a server configuration error, never the sender's.
  if (request.bodyUsed) throw bodyAlreadyConsumed()

  let stream: ReadableStream<Uint8Array> = request.body
  // Codings are listed in the order they were applied; undo them from the last.
  for (const coding of [...codings].reverse()) {
    stream = stream.pipeThrough(new DecompressionStream(CODINGS[coding] as CompressionFormat) as ReadableWritablePair<Uint8Array, Uint8Array>)
  }
  const reader = stream.getReader()
  const chunks: Uint8Array[] = []
  let total = 0
  try {
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      const chunk: Uint8Array = value instanceof Uint8Array ? value : new Uint8Array(0)
      total += chunk.byteLength
      if (total > maxBytes) {
        // Stop the upload instead of buffering the rest. Not awaited: cancelling one branch of a
        // tee'd body (msw clones requests) settles only when the other branch ends too.
        void reader.cancel().catch(() => undefined)
        throw tooLarge(maxBytes)
      }
      chunks.push(chunk)
    }
  } catch (error) {
    if (error instanceof HttpProblemError) throw error
    throw new HttpProblemError('invalid_json', {
      detail:
        codings.length > 0
          ? `The body could not be read to its end or is not valid ${codings.join(', ')} data`
          : 'The body could not be read to its end',
    })
  } finally {
    reader.releaseLock()
  }

  const body = new Uint8Array(total)
  let offset = 0
  for (const chunk of chunks) {
    body.set(chunk, offset)
    offset += chunk.byteLength
  }
  return body
}

/** The 500 for a body that something on the server read before the handlers. */
export function bodyAlreadyConsumed(): HttpProblemError {
  return new HttpProblemError('body_already_consumed', {
    detail: 'The server read the request body before checking it (a server configuration error); retry later',
  })
}

/**
 * The codings of a `Content-Encoding` header that change the bytes, in the order applied
 * (`identity` changes nothing). Throws `unsupported_media_type` (RFC 9110 §15.5.16) for a coding
 * the handlers cannot inflate, with `Accept-Encoding` naming those they can.
 */
function contentCodings(header: string | null): string[] {
  if (header === null) return []
  const codings = header
    .split(',')
    .map((coding) => coding.trim().toLowerCase())
    .filter((coding) => coding !== '' && coding !== 'identity')
  const unsupported = codings.find((coding) => !Object.hasOwn(CODINGS, coding))
  if (unsupported !== undefined) {
    throw new HttpProblemError(
      'unsupported_media_type',
      { detail: `Content-Encoding ${JSON.stringify(unsupported.slice(0, 40))} is not supported; send the body uncompressed, gzip or deflate` },
      { 'Accept-Encoding': ACCEPTED_CONTENT_CODINGS },
    )
  }
  return codings
}

function tooLarge(maxBytes: number): HttpProblemError {
  return new HttpProblemError('payload_too_large', {
    detail: `The body is larger than ${maxBytes} bytes`,
    maxBytes,
  })
}
