/**
 * The answer validator the contract suite wraps every target with refuses what the document
 * does not describe: otherwise the suite's "every answer validates" would prove nothing.
 */
import { createProblem, LIVE_EVENTS } from 'pipeline-status-sdk'
import { describe, expect, it } from 'vitest'
import { runRecord } from '../live/sse-fixture.js'
import { OpenApiAnswerValidator } from './openapi-answers.js'

const validator = new OpenApiAnswerValidator()
const at = (method: string, path: string) => ({ method, url: `http://app.test/api/pipeline${path}` })
const run = runRecord('run_1', 'PROCESSING')
const json = (body: unknown, status = 200, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', ...headers } })
const problem = (code: Parameters<typeof createProblem>[0], headers: Record<string, string> = {}) => {
  const body = createProblem(code, { detail: 'x' })
  return new Response(JSON.stringify(body), { status: body.status, headers: { 'Content-Type': 'application/problem+json', 'Cache-Control': 'no-store', ...headers } })
}

describe('OpenApiAnswerValidator', () => {
  it('accepts answers the document describes', async () => {
    await validator.check(at('POST', '/runs'), json({ created: true, run }, 201))
    await validator.check(at('GET', '/run_1/status'), json({ run, stages: [] }, 200, { ETag: '"0"', 'Cache-Control': 'private, no-cache' }))
    await validator.check(at('GET', '/run_1/status'), new Response(null, { status: 304, headers: { ETag: '"0"', 'Cache-Control': 'private, no-cache' } }))
    await validator.check(at('POST', '/run_1/stage-update'), problem('stage_finished'))
    await validator.check(at('GET', '/run_1/nope'), problem('route_not_found'))
    await validator.check(at('DELETE', '/runs'), problem('method_not_allowed', { Allow: 'POST, GET, HEAD' }))
  })

  it('refuses an undocumented status, problem code, media type, body or missing header', async () => {
    await expect(validator.check(at('POST', '/runs'), json({ created: true, run }, 202))).rejects.toThrow(/status 202 is not documented for POST \/runs/)
    await expect(validator.check(at('GET', '/run_1/status'), problem('run_finished'))).rejects.toThrow(/status 409 is not documented/)
    // 401 is documented for the status route, but not with this code.
    await expect(validator.check(at('POST', '/runs'), problem('invalid_read_token'))).rejects.toThrow(/does not match the document/)
    await expect(validator.check(at('POST', '/runs'), new Response('{}', { status: 201, headers: { 'Content-Type': 'text/plain', 'Cache-Control': 'no-store' } }))).rejects.toThrow(
      /Content-Type text\/plain is not documented/,
    )
    await expect(validator.check(at('POST', '/runs'), json({ created: 'yes', run }, 201))).rejects.toThrow(/created/)
    await expect(validator.check(at('POST', '/run_1/complete'), json({ outcome: 'applied', run: { ...run, status: 'DONE' } }))).rejects.toThrow(/does not match/)
    await expect(validator.check(at('GET', '/run_1/status'), new Response(null, { status: 304, headers: { 'Cache-Control': 'no-store' } }))).rejects.toThrow(
      /required header ETag is missing/,
    )
    await expect(validator.check(at('DELETE', '/runs'), problem('route_not_found'))).rejects.toThrow(/must be 405/)
    await expect(validator.check(at('DELETE', '/runs'), problem('method_not_allowed', { Allow: 'POST' }))).rejects.toThrow(/Allow is POST/)
    await expect(validator.check(at('GET', '/run_1/nope'), json({ run, stages: [] }))).rejects.toThrow(/must answer 404/)
  })

  it('refuses members the strict document does not have', async () => {
    await expect(validator.check(at('POST', '/runs'), json({ created: true, run: { ...run, version: 3 } }, 201))).rejects.toThrow(/strict document.*additional properties/s)
  })

  it('checks each event of a stream as it is read', async () => {
    const stream = (text: string) =>
      validator.check(at('GET', '/run_1/events'), new Response(text, { status: 200, headers: { 'Content-Type': 'text/event-stream' } }))
    const good = [
      `event: ${LIVE_EVENTS.snapshot}\nid: 0\ndata: ${JSON.stringify({ run, stages: [] })}\n\n`,
      ': keep-alive\n\n',
      `event: ${LIVE_EVENTS.end}\nid: 1\ndata: ${JSON.stringify({ run: { ...run, status: 'COMPLETED' } })}\n\n`,
    ].join('')
    expect(await (await stream(good)).text()).toBe(good)
    await expect((await stream(`event: update\ndata: ${JSON.stringify({ run })}\n\n`)).text()).rejects.toThrow(/event update.*stages/s)
    await expect((await stream(`event: progress\ndata: {}\n\n`)).text()).rejects.toThrow(/event progress is not in x-sse-events/)
  })
})
