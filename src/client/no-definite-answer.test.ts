import { describe, expect, it } from 'vitest'
import { PipelineStatusError, StatusHttpError, StatusNetworkError, StatusTimeoutError } from './errors.js'
import { noDefiniteAnswer } from './transport.js'

const request = new Request('http://127.0.0.1:5199/api/pipeline/run_1/complete', { method: 'POST' })
const system = (code: string) => new TypeError('fetch failed', { cause: Object.assign(new Error(code), { code }) })
const http = (status: number) => new StatusHttpError({ request, response: new Response(null, { status }), body: undefined, attempts: 1 })

describe('noDefiniteAnswer: an attempt the server may have received though its answer never came', () => {
  it('is a timeout, a reset or closed connection, an abort in flight, a gateway 502 or 504, with the cause as the retry warnings say it', () => {
    expect(noDefiniteAnswer(new StatusTimeoutError({ request, timeoutMs: 30_000, attempts: 1 }), 30_000)).toBe('timed out after 30000 ms')
    expect(noDefiniteAnswer(new StatusNetworkError({ request, attempts: 1, cause: system('ECONNRESET') }), 1)).toBe('ECONNRESET')
    expect(noDefiniteAnswer(new StatusNetworkError({ request, attempts: 1, cause: system('UND_ERR_SOCKET') }), 1)).toBe('UND_ERR_SOCKET')
    expect(noDefiniteAnswer(new PipelineStatusError('aborted', { cause: new Error('The client was closed before this request finished') }), 1)).toBe(
      'The client was closed before this request finished',
    )
    expect(noDefiniteAnswer(http(502), 1)).toBe('HTTP 502')
    expect(noDefiniteAnswer(http(504), 1)).toBe('HTTP 504')
  })

  it('is not a request that never left (connection refused, unknown host) nor any other HTTP answer', () => {
    for (const code of ['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN']) {
      expect(noDefiniteAnswer(new StatusNetworkError({ request, attempts: 1, cause: system(code) }), 1)).toBeUndefined()
    }
    for (const status of [400, 401, 409, 413, 429, 500, 503]) expect(noDefiniteAnswer(http(status), 1)).toBeUndefined()
  })
})
