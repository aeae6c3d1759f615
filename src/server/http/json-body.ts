import { HttpProblemError } from './problem-response.js'

const decoder = new TextDecoder('utf-8', { fatal: true })

/**
 * Decodes a body as UTF-8 JSON. An empty body is `undefined` when `allowEmpty`, else invalid.
 * Throws {@link HttpProblemError} `invalid_json`, with the parser's position but never its input.
 */
export function parseJsonBody(body: Uint8Array, options: { allowEmpty: boolean }): unknown {
  let text: string
  try {
    text = decoder.decode(body)
  } catch {
    throw new HttpProblemError('invalid_json', { detail: 'The body is not valid UTF-8' })
  }
  // JSON's own whitespace only: other Unicode spaces make the body invalid, not empty.
  if (/^[ \t\r\n]*$/.test(text)) {
    if (options.allowEmpty) return undefined
    throw new HttpProblemError('invalid_json', { detail: 'The body is empty; a JSON object is expected' })
  }
  try {
    return JSON.parse(text) as unknown
  } catch (error) {
    // V8's message quotes a snippet of the input; keep only where it failed.
    const position = error instanceof Error ? /position (\d+)/.exec(error.message)?.[1] : undefined
    throw new HttpProblemError('invalid_json', {
      detail: position === undefined ? 'The body is not valid JSON' : `The body is not valid JSON (at position ${position})`,
    })
  }
}
