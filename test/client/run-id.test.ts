/**
 * The client checks the contract's run-id rule before it sends anything: an id a URL path segment
 * cannot carry unchanged is a typed `PayloadValidationError`, and no request leaves the runner.
 */
import { setupServer } from 'msw/node'
import { isPayloadValidationError } from 'pipeline-status-sdk'
import { PrismaAPIClient, silentLogger } from 'pipeline-status-sdk/client'
import { createPipelineMock } from 'pipeline-status-sdk/msw'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'

const ORIGIN = 'http://run-id.test'
const SECRET = 'run-id-secret'
const mock = createPipelineMock({ baseUrl: ORIGIN, secret: SECRET })
const server = setupServer(...mock.handlers)

beforeAll(() => server.listen({ onUnhandledFrame: 'error' }))
afterEach(() => mock.reset())
afterAll(() => server.close())

const INVALID = ['.', '..', 'a b', 'a/b', 'é', 'x'.repeat(129), '']

const client = (throwOnError: boolean) =>
  new PrismaAPIClient({ baseUrl: ORIGIN, secret: SECRET, throwOnError, logger: silentLogger, retry: { baseDelayMs: 1, maxDelayMs: 5 } })

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => expect.unreachable('resolved'),
    (error: unknown) => error,
  )
}

describe('the client and the run-id rule', () => {
  it('refuses an invalid id with PayloadValidationError naming runId (createRun: its option id), before any request', async () => {
    const api = client(true)
    for (const id of INVALID) {
      // createRun(id) is createRun({ id }): the field is the option's (and POST /runs body's) `id`.
      for (const [field, call] of [
        ['id', () => api.createRun(id)],
        ['id', () => api.createRun({ id })],
        ['runId', () => api.getStatus(id)],
        ['runId', () => api.completeRun(id, { status: 'COMPLETED' })],
        ['runId', () => api.markStageProcessing(id, 1)],
      ] as const) {
        const error = await rejection(call())
        expect(isPayloadValidationError(error), id).toBe(true)
        expect((error as { fieldErrors: Array<{ field: string }> }).fieldErrors.map((e) => e.field)).toEqual([field])
      }
    }
    expect(mock.requests).toEqual([])
  })

  it('stage updates answer false without throwOnError, and nothing is sent', async () => {
    const api = client(false)
    for (const id of INVALID) expect(await api.markStageComplete(id, 1, 'out'), id).toBe(false)
    expect(mock.requests).toEqual([])
  })

  it('ids inside the rule go through unchanged', async () => {
    const api = client(true)
    for (const id of ['a.b', '.hidden', 'A-Z_0.9~:x', 'x'.repeat(128)]) {
      expect((await api.createRun(id)).run.id).toBe(id)
      expect(await api.markStageProcessing(id, 1)).toBe(true)
      expect((await api.getStatus(id)).run.id).toBe(id)
    }
    expect(mock.requests.map((r) => r.status).every((status) => status < 300)).toBe(true)
  })
})
