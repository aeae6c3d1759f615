/**
 * "Never silent": a live stream that the server ends before its run's `end` (besides shutdown and
 * a slow reader) says why. The subscriber reads `: closed <cause> <runId>` right before the end,
 * and the handlers' logger gets one line per cause per process: `info` when the request's
 * credential no longer covers the run (expected), `warn` when the next update could not be made
 * (a race that should be rare). In memory, through `handlers.fetch`, on the MemoryStore; the race
 * is made exact by holding the watcher's text-less read until the writes that make it are done.
 */
import { createPipelineStatusHandlers, createRunReadToken, MemoryStore, type Store } from 'pipeline-status-sdk/server'
import { afterEach, describe, expect, it } from 'vitest'
import { handlerRequests, HANDLER_BASE_URL } from '../support/handler-requests.js'
import { recordingLogger } from '../support/loggers.js'

const SECRET = 'webhook-secret-for-stream-closed-tests'
const READ_SECRET = 'read-token-secret-for-stream-closed-01'
const requests = handlerRequests(SECRET)
const STAGE = { stageNumber: 1, stageName: 'Input Processing' }

const open: Array<{ close(): Promise<void> }> = []
afterEach(async () => {
  for (const handlers of open.splice(0)) await handlers.close()
})

/** Reads a stream until `marker` has arrived; `rest()` then reads it to its end, `cancel()` lets it go. */
async function readUntil(response: Response, marker: string): Promise<{ rest(): Promise<string>; cancel(): Promise<void> }> {
  expect(response.status).toBe(200)
  const reader = (response.body as ReadableStream<Uint8Array>).getReader()
  const decoder = new TextDecoder()
  let text = ''
  while (!text.includes(marker)) {
    const { value, done } = await reader.read()
    if (done) throw new Error(`the stream ended before ${marker}: ${text}`)
    text += decoder.decode(value, { stream: true })
  }
  const consumed = text.indexOf(marker) + marker.length
  return {
    async rest() {
      for (;;) {
        const { value, done } = await reader.read()
        if (done) return text.slice(consumed)
        text += decoder.decode(value, { stream: true })
      }
    },
    cancel: () => reader.cancel(),
  }
}

describe('a stream the server ends says why, and the handlers log it once per cause', () => {
  it('credential no longer covers the run: `: closed not-admitted`, the change unsent, one info line for a run stream and a set stream', async () => {
    const store = new MemoryStore()
    const logger = recordingLogger()
    const handlers = createPipelineStatusHandlers({ store, secret: SECRET, readTokens: { secret: READ_SECRET }, logger })
    open.push(handlers)
    const setTags = async (runId: string, tags: string[]) => {
      const snapshot = await store.getRun(runId)
      await store.transaction(async (tx) => tx.saveRun({ ...snapshot!.run, tags }))
    }
    const token = await createRunReadToken({ tag: 'team:a', secret: READ_SECRET, expiresInSeconds: 600 })
    const bearer = (path: string) => new Request(`${HANDLER_BASE_URL}${path}`, { headers: { Authorization: `Bearer ${token}` } })

    for (const runId of ['loses-tag-1', 'loses-tag-2']) {
      expect((await handlers.fetch(requests.post('/runs', { id: runId }))).status).toBe(201)
      await setTags(runId, ['team:a'])
    }
    const own = await readUntil(await handlers.fetch(bearer('/loses-tag-1/events')), 'event: snapshot')
    const set = await readUntil(await handlers.fetch(bearer('/events?run=loses-tag-2')), 'event: ready')

    await setTags('loses-tag-1', ['nightly'])
    const ownRest = await own.rest()
    expect(ownRest).toContain(': closed not-admitted loses-tag-1\n\n')
    expect(ownRest).not.toContain('event: ')
    await setTags('loses-tag-2', ['nightly'])
    const setRest = await set.rest()
    expect(setRest).toContain(': closed not-admitted loses-tag-2\n\n')
    expect(setRest).not.toContain('event: ')

    // Two streams ended for this cause: one line, info (expected), with the cause and the fix.
    const lines = logger.lines.filter((line) => line.details?.['cause'] === 'not-admitted')
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatchObject({ level: 'info', details: { cause: 'not-admitted', runId: 'loses-tag-1', stream: 'run' } })
    expect(lines[0]!.message).toMatch(/no longer covers the run.*keep the tag on it/)
    expect(logger.lines.filter((line) => line.level === 'warn' || line.level === 'error')).toEqual([])
  })

  it('next update cannot be made (a stage created, streamed and finished between two text-less reads): `: closed update-unavailable`, one warning', async () => {
    const memory = new MemoryStore()
    // The watcher's reads without the streamed text wait for `release` once armed.
    let armed = false
    let release!: () => void
    const released = new Promise<void>((resolve) => (release = resolve))
    const store = new Proxy(memory, {
      get(target, property) {
        if (property === 'getRuns') {
          return async (runIds: readonly string[], options?: { streamedText?: boolean }) => {
            if (armed && options?.streamedText === false) await released
            return target.getRuns(runIds, options)
          }
        }
        const value: unknown = Reflect.get(target, property, target)
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value
      },
    }) as unknown as Store<unknown>
    const logger = recordingLogger()
    const handlers = createPipelineStatusHandlers({ store, secret: SECRET, logger, live: { pollIntervalMs: 600_000 } })
    open.push(handlers)
    const post = async (path: string, json: unknown) => expect((await handlers.fetch(requests.post(path, json))).status).toBeLessThan(300)

    const runId = 'race-run'
    await post('/runs', { id: runId })
    const stream = await readUntil(await handlers.fetch(requests.get(`/${runId}/events`)), 'event: snapshot')
    armed = true
    // Between two reads of the stream's watcher: stage 1 starts, streams chunk 0 and finishes without an output of its own.
    await post(`/${runId}/stage-update`, { ...STAGE, status: 'PROCESSING' })
    await post(`/${runId}/stages/1/output`, { seq: 0, text: 'all of it' })
    await post(`/${runId}/stage-update`, { ...STAGE, status: 'COMPLETED' })
    release()

    const rest = await stream.rest()
    expect(rest).toContain(`: closed update-unavailable ${runId}\n\n`)
    expect(rest).not.toContain('event: ')
    const lines = logger.lines.filter((line) => line.details?.['cause'] === 'update-unavailable')
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatchObject({ level: 'warn', details: { cause: 'update-unavailable', runId, stream: 'run' } })
    expect(lines[0]!.message).toMatch(/could not be made.*nothing is lost.*Logged once per process/)

    // The reconnect starts afresh: its snapshot has the stage's whole text.
    const again = await readUntil(await handlers.fetch(requests.get(`/${runId}/events`)), 'all of it')
    await again.cancel()
  })
})
