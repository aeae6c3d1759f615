import { HttpProblemError } from './problem-response.js'

/**
 * Reads a request body into memory, never more than `maxBytes`: a larger `Content-Length` is
 * refused before reading, and a body without one (chunked, or lying) is counted while it streams
 * and abandoned as soon as it passes the limit. Throws {@link HttpProblemError} `payload_too_large`,
 * `invalid_json` when the stream breaks off, or `body_already_consumed` (500) when something
 * read the body before.
 */
export async function readBodyLimited(request: Request, maxBytes: number): Promise<Uint8Array<ArrayBuffer>> {
  const declared = request.headers.get('content-length')?.trim()
  if (declared !== undefined && /^\d+$/.test(declared) && Number(declared) > maxBytes) throw tooLarge(maxBytes)
  if (request.body === null) return new Uint8Array(0)
  // Something before the handlers read it: a server configuration error, never the sender's.
  if (request.bodyUsed) throw bodyAlreadyConsumed()

  const reader = request.body.getReader()
  const chunks: Uint8Array[] = []
  let total = 0
  try {
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      const chunk: Uint8Array = value instanceof Uint8Array ? value : new Uint8Array(0)
      total += chunk.byteLength
      if (total > maxBytes) {
        // Stop the upload instead of buffering the rest; errors from cancel are irrelevant now.
        await reader.cancel().catch(() => undefined)
        throw tooLarge(maxBytes)
      }
      chunks.push(chunk)
    }
  } catch (error) {
    if (error instanceof HttpProblemError) throw error
    throw new HttpProblemError('invalid_json', { detail: 'The body could not be read to its end' })
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

function tooLarge(maxBytes: number): HttpProblemError {
  return new HttpProblemError('payload_too_large', {
    detail: `The body is larger than ${maxBytes} bytes`,
    maxBytes,
  })
}
