/**
 * `cors.origins` holds origins exactly as browsers send them; anything else (a wildcard, a
 * trailing slash, a path) would silently allow nothing, so it is refused when the handlers are
 * created, with a message naming the fix (issue 20 item 6).
 */
import { createNextRouteHandlers } from 'pipeline-status-sdk/next'
import { createPipelineStatusHandlers, isServerConfigurationError, MemoryStore } from 'pipeline-status-sdk/server'
import { describe, expect, it } from 'vitest'

function create(origins: string[]) {
  return () => createPipelineStatusHandlers({ store: new MemoryStore(), secret: 's', cors: { origins } })
}

function refusal(origins: string[]): string {
  try {
    create(origins)()
  } catch (error) {
    expect(isServerConfigurationError(error)).toBe(true)
    return (error as Error).message
  }
  throw new Error('not refused')
}

describe('cors.origins', () => {
  it("refuses '*' at start, naming the fix", () => {
    expect(refusal(['*'])).toBe(
      "cors.origins: '*' is not supported: a wildcard would let any site read runs with its visitors' credentials. List each origin that may read, e.g. origins: ['https://app.example.com']",
    )
    expect(refusal(['https://app.example.com', '*'])).toContain("'*' is not supported")
  })

  it('refuses entries that can never equal an Origin header, suggesting the origin', () => {
    expect(refusal(['https://app.example.com/'])).toBe(
      'cors.origins: "https://app.example.com/" is not an origin as browsers send it in Origin (scheme://host[:port], no path or trailing slash), so it would match nothing: write "https://app.example.com"',
    )
    expect(refusal(['https://app.example.com:443'])).toContain('write "https://app.example.com"')
    expect(refusal(['https://App.Example.com'])).toContain('write "https://app.example.com"')
    expect(refusal(['http://localhost:3000/dashboard'])).toContain('write "http://localhost:3000"')
    expect(refusal(['app.example.com'])).toContain("write scheme, host and port, e.g. 'https://app.example.com'")
  })

  it('accepts origins and grants exactly them', async () => {
    const handlers = create(['https://app.example.com', 'http://localhost:3000'])()
    const preflight = await handlers.fetch(
      new Request('https://api.example/api/pipeline/run_1/status', {
        method: 'OPTIONS',
        headers: { Origin: 'http://localhost:3000', 'Access-Control-Request-Method': 'GET' },
      }),
    )
    expect(preflight.status).toBe(204)
    expect(preflight.headers.get('access-control-allow-origin')).toBe('http://localhost:3000')
  })

  it('the Next.js handlers log the refusal once and answer configuration_error', async () => {
    const errors: string[] = []
    const next = createNextRouteHandlers({
      store: new MemoryStore(),
      secret: 's',
      cors: { origins: ['*'] },
      logger: { warn: () => undefined, error: (message) => void errors.push(message) },
    })
    const response = await next.GET(new Request('https://app.example/api/pipeline/run_1/status', { headers: { 'X-Webhook-Secret': 's' } }))
    expect(response.status).toBe(500)
    expect((await response.json()).code).toBe('configuration_error')
    expect(errors).toHaveLength(1)
    expect(errors[0]).toContain("cors.origins: '*' is not supported")
  })
})
