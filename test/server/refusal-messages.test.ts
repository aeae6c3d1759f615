/**
 * Refusals that say their cause (issue 21 item 5, the server's part): a cancel refused by the
 * app's `authorize` hook is titled about cancelling, not reading; a signing-only server that
 * gets a plain `X-Webhook-Secret` says it accepts only signed requests (on writes and reads),
 * and one whose writes alone must be signed says so.
 */
import { createPipelineStatusHandlers, MemoryStore, type PipelineStatusHandlers } from 'pipeline-status-sdk/server'
import { describe, expect, it } from 'vitest'

const BASE = 'https://app.example/api/pipeline'
const SECRET = 'refusal-secret'
const SIGNING_SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'
const quiet = { warn: () => undefined, error: () => undefined }

async function problemOf(response: Response): Promise<Record<string, unknown>> {
  expect(response.headers.get('content-type')).toBe('application/problem+json')
  return (await response.json()) as Record<string, unknown>
}

async function createRun(handlers: PipelineStatusHandlers, id: string, headers: Record<string, string>): Promise<void> {
  const response = await handlers.fetch(
    new Request(`${BASE}/runs`, { method: 'POST', headers: { ...headers, 'Content-Type': 'application/json' }, body: JSON.stringify({ id }) }),
  )
  expect(response.status).toBe(201)
}

describe('refusals that say their cause', () => {
  it('a cancel refused by authorize is titled about cancelling; a refused read keeps its title', async () => {
    const handlers = createPipelineStatusHandlers({ store: new MemoryStore(), secret: SECRET, authorize: () => false, logger: quiet })
    await createRun(handlers, 'run_1', { 'X-Webhook-Secret': SECRET })
    const cancel = await handlers.fetch(
      new Request(`${BASE}/run_1/cancel`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' }),
    )
    expect(cancel.status).toBe(403)
    expect(await problemOf(cancel)).toMatchObject({
      code: 'forbidden',
      title: 'Not allowed to cancel this run',
      detail: "The app's authorize hook refused to let this request cancel the run",
    })
    const read = await handlers.fetch(new Request(`${BASE}/run_1/status`))
    expect(read.status).toBe(403)
    expect(await problemOf(read)).toMatchObject({ code: 'forbidden', title: 'Not allowed to read this run' })
    const stream = await handlers.fetch(new Request(`${BASE}/run_1/events`))
    expect(await problemOf(stream)).toMatchObject({ code: 'forbidden', title: 'Not allowed to stream this run' })
    await handlers.close()
  })

  it('a signing-only server refusing a plain secret says it accepts only signed requests, on writes and reads', async () => {
    const handlers = createPipelineStatusHandlers({ store: new MemoryStore(), secret: [], signing: { secret: SIGNING_SECRET }, logger: quiet })
    const expected = {
      status: 401,
      code: 'invalid_signature',
      detail:
        'This server accepts only signed requests (Standard Webhooks: webhook-id, webhook-timestamp, webhook-signature); ' +
        'X-Webhook-Secret is not accepted here: sign with the signing secret (WEBHOOK_SIGNING_SECRET)',
    }
    const plain = { 'X-Webhook-Secret': 'what-the-runner-has', 'Content-Type': 'application/json' }
    const write = await handlers.fetch(new Request(`${BASE}/runs`, { method: 'POST', headers: plain, body: '{}' }))
    expect(await problemOf(write)).toMatchObject(expected)
    const read = await handlers.fetch(new Request(`${BASE}/run_1/status`, { headers: plain }))
    expect(await problemOf(read)).toMatchObject(expected)
    // Without any credential, the same rule without the note about the plain secret.
    const bare = await handlers.fetch(new Request(`${BASE}/runs`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' }))
    expect(await problemOf(bare)).toMatchObject({
      code: 'invalid_signature',
      detail: 'This server accepts only signed requests (Standard Webhooks: webhook-id, webhook-timestamp, webhook-signature)',
    })
  })

  it('with signing.required beside plain secrets: writes must be signed, the plain secret still reads', async () => {
    const handlers = createPipelineStatusHandlers({
      store: new MemoryStore(),
      secret: SECRET,
      signing: { secret: SIGNING_SECRET, required: true },
      logger: quiet,
    })
    const plain = { 'X-Webhook-Secret': SECRET, 'Content-Type': 'application/json' }
    const write = await handlers.fetch(new Request(`${BASE}/runs`, { method: 'POST', headers: plain, body: '{}' }))
    expect(await problemOf(write)).toMatchObject({
      status: 401,
      code: 'invalid_signature',
      detail:
        'This server accepts only signed writes (Standard Webhooks: webhook-id, webhook-timestamp, webhook-signature); ' +
        'X-Webhook-Secret is accepted for reads only: sign writes with the signing secret (WEBHOOK_SIGNING_SECRET)',
    })
    const read = await handlers.fetch(new Request(`${BASE}/run_1/status`, { headers: plain }))
    expect(read.status).toBe(404)
  })
})
