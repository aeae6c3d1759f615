/**
 * "Never silent": a live stream that the server ends before its run's `end` (besides shutdown and
 * a slow reader) says why. The subscriber reads `: closed <cause> <runId>` right before the end,
 * and the handlers' logger gets one warning per cause per process (the server never logs at
 * `info`, which the default logger drops: src/internal/logger.test.ts): when the request's
 * credential no longer covers the run or the credential it was opened with expired (a read token,
 * a session the app's `authorize` gave an `expiresAt`; expected, said so with the fix), when the
 * next update could not be made (a race that should be rare), when a filter set stream's
 * membership failed, and when the run was deleted while unfinished.
 * In memory, through `handlers.fetch`, on the MemoryStore; the race is made exact by holding the
 * watcher's text-less read until the writes that make it are done, the expiry by fake timers.
 */
import { createPipelineStatusHandlers, createRunReadToken, MemoryStore, type Store } from 'pipeline-status-sdk/server'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { handlerRequests, HANDLER_BASE_URL } from '../support/handler-requests.js'
import { recordingLogger } from '../support/loggers.js'

const SECRET = 'webhook-secret-for-stream-closed-tests'
const READ_SECRET = 'read-token-secret-for-stream-closed-01'
const requests = handlerRequests(SECRET)
const STAGE = { stageNumber: 1, stageName: 'Input Processing' }

const open: Array<{ close(): Promise<void> }> = []
afterEach(async () => {
  for (const handlers of open.splice(0)) await handlers.close()
  vi.useRealTimers()
})

/**
 * Reads a stream until `marker` has arrived; `until(next)` then reads on until `next` arrives after
 * it, `rest()` reads it to its end, `cancel()` lets it go.
 */
async function readUntil(
  response: Response,
  marker: string,
): Promise<{ until(next: string): Promise<void>; rest(): Promise<string>; cancel(): Promise<void> }> {
  expect(response.status).toBe(200)
  const reader = (response.body as ReadableStream<Uint8Array>).getReader()
  const decoder = new TextDecoder()
  let text = ''
  let consumed = 0
  const until = async (next: string) => {
    while (!text.includes(next, consumed)) {
      const { value, done } = await reader.read()
      if (done) throw new Error(`the stream ended before ${next}: ${text}`)
      text += decoder.decode(value, { stream: true })
    }
    consumed = text.indexOf(next, consumed) + next.length
  }
  await until(marker)
  return {
    until,
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

type OpenStream = Awaited<ReturnType<typeof readUntil>>

/**
 * Streams opened under a credential that expires in `inMs`: a millisecond before, `open` streams
 * are open; at it, `open - 3` are, the run stream `own` (of `runId`) and the two set streams `sets`
 * having ended with `: closed credential-expired` and nothing else. Answers the one warning of
 * that cause, checked for its fields (`expiresAt`, ISO).
 */
async function expectEndedAtExpiry(
  handlers: { liveStats(): { openStreams: number } },
  logger: ReturnType<typeof recordingLogger>,
  streams: { inMs: number; open: number; own: OpenStream; runId: string; sets: OpenStream[]; expiresAt: string },
) {
  const { inMs, open, own, runId, sets, expiresAt } = streams
  await vi.advanceTimersByTimeAsync(inMs - 1)
  expect(handlers.liveStats().openStreams).toBe(open)
  await vi.advanceTimersByTimeAsync(1)
  expect(handlers.liveStats().openStreams).toBe(open - 1 - sets.length)
  const ownRest = await own.rest()
  expect(ownRest).toContain(`: closed credential-expired ${runId}\n\n`)
  expect(ownRest).not.toContain('event: ')
  for (const set of sets) {
    const rest = await set.rest()
    expect(rest).toContain(': closed credential-expired\n\n')
    expect(rest).not.toContain('event: ')
  }
  // The streams ended for this cause: one warning, with the cause and the fix.
  const lines = logger.lines.filter((line) => line.details?.['cause'] === 'credential-expired')
  expect(lines).toHaveLength(1)
  expect(lines[0]).toMatchObject({ level: 'warn', details: { cause: 'credential-expired', runId, stream: 'run', expiresAt } })
  expect(logger.lines.filter((line) => (line.level === 'warn' || line.level === 'error') && line !== lines[0]).map((line) => line.message)).toEqual([])
  return lines[0]!
}

describe('a stream the server ends says why, and the handlers log it once per cause', () => {
  it('credential no longer covers the run: `: closed not-admitted`, the change unsent, one warning for a run stream and a set stream', async () => {
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

    // Two streams ended for this cause: one warning (saying it is expected), with the cause and the fix.
    const lines = logger.lines.filter((line) => line.details?.['cause'] === 'not-admitted')
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatchObject({ level: 'warn', details: { cause: 'not-admitted', runId: 'loses-tag-1', stream: 'run' } })
    expect(lines[0]!.message).toMatch(/no longer covers the run.*Expected when.*keep the tag on it/)
    expect(logger.lines.filter((line) => (line.level === 'warn' || line.level === 'error') && line !== lines[0])).toEqual([])
    // Logged once, counted each time: a recurrence shows in the stats.
    expect(handlers.liveStats().closedStreams).toEqual({ 'not-admitted': 2, 'update-unavailable': 0, 'credential-expired': 0, deleted: 0, 'membership-failed': 0 })
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

  it("a filter set stream whose new membership cannot be applied after ready (a joining run's snapshot cannot be made): `: closed membership-failed`, one warning with the error", async () => {
    const memory = new MemoryStore()
    // The joining run reads back without its stages: its snapshot cannot be made.
    const store = new Proxy(memory, {
      get(target, property) {
        if (property === 'getRun') {
          return async (runId: string, options?: unknown) => {
            const snapshot = await target.getRun(runId, options as never)
            return snapshot && runId.startsWith('broken-') ? { ...snapshot, stages: undefined } : snapshot
          }
        }
        const value: unknown = Reflect.get(target, property, target)
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value
      },
    }) as unknown as Store<unknown>
    const logger = recordingLogger()
    const handlers = createPipelineStatusHandlers({ store, secret: SECRET, logger })
    open.push(handlers)
    const tagged = async (runId: string) => {
      const created = await handlers.fetch(requests.post('/runs', { id: runId, tags: ['membership'] }))
      expect(created.status).toBe(201)
    }
    await tagged('fine-1')
    const first = await readUntil(await handlers.fetch(requests.get('/events?tag=membership')), 'event: ready')
    const second = await readUntil(await handlers.fetch(requests.get('/events?tag=membership&view=summary')), 'event: ready')
    await tagged('broken-1')
    for (const stream of [first, second]) {
      const rest = await stream.rest()
      expect(rest).toContain(': closed membership-failed\n\n')
      expect(rest).not.toContain('event: ')
    }
    const lines = logger.lines.filter((line) => line.details?.['cause'] === 'membership-failed')
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatchObject({ level: 'warn', details: { cause: 'membership-failed', stream: 'set', error: expect.any(TypeError) } })
    expect(lines[0]!.message).toMatch(/could not be applied.*nothing is lost.*report it.*Logged once per process/)
    expect(logger.lines.filter((line) => (line.level === 'warn' || line.level === 'error') && line !== lines[0]).map((line) => line.message)).toEqual([])
  })

  it('run deleted while unfinished (by the app, by hand): a run stream and a run= set stream end with `: closed deleted <runId>`, one warning; the reconnect is 404', async () => {
    const memory = new MemoryStore()
    // What the store reads after the app deleted the run itself (the retention sweep deletes finished runs only).
    const deleted = new Set<string>()
    const store = new Proxy(memory, {
      get(target, property) {
        if (property === 'getRun') return async (runId: string, options?: unknown) => (deleted.has(runId) ? null : target.getRun(runId, options as never))
        if (property === 'getRuns') {
          return async (runIds: readonly string[], options?: unknown) => target.getRuns(runIds.filter((runId) => !deleted.has(runId)), options as never)
        }
        if (property === 'getRunVersions') return async (runIds: readonly string[]) => target.getRunVersions(runIds.filter((runId) => !deleted.has(runId)))
        const value: unknown = Reflect.get(target, property, target)
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value
      },
    }) as unknown as Store<unknown>
    const logger = recordingLogger()
    const handlers = createPipelineStatusHandlers({ store, secret: SECRET, logger, live: { pollIntervalMs: 10 } })
    open.push(handlers)
    for (const runId of ['deleted-1', 'kept-1']) expect((await handlers.fetch(requests.post('/runs', { id: runId }))).status).toBe(201)
    const own = await readUntil(await handlers.fetch(requests.get('/deleted-1/events')), 'event: snapshot')
    const listed = await readUntil(await handlers.fetch(requests.get('/events?run=kept-1&run=deleted-1')), 'event: ready')
    const kept = await readUntil(await handlers.fetch(requests.get('/kept-1/events')), 'event: snapshot')

    deleted.add('deleted-1')
    for (const stream of [own, listed]) {
      const rest = await stream.rest()
      expect(rest).toContain(': closed deleted deleted-1\n\n')
      expect(rest).not.toContain('event: ')
    }
    const lines = logger.lines.filter((line) => line.details?.['cause'] === 'deleted')
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatchObject({ level: 'warn', details: { cause: 'deleted', runId: 'deleted-1', stream: 'run' } })
    expect(lines[0]!.message).toMatch(/no longer stored.*404 run_not_found.*Logged once per process/)
    expect(logger.lines.filter((line) => (line.level === 'warn' || line.level === 'error') && line !== lines[0]).map((line) => line.message)).toEqual([])
    expect((await handlers.fetch(requests.get('/deleted-1/events'))).status).toBe(404)
    expect(handlers.liveStats().closedStreams).toMatchObject({ deleted: 2, 'not-admitted': 0 })

    // The other run's stream is untouched.
    expect(handlers.liveStats().openStreams).toBe(1)
    expect((await handlers.fetch(requests.post('/kept-1/stage-update', { ...STAGE, status: 'PROCESSING' }))).status).toBe(200)
    await kept.until('event: update')
    await kept.cancel()
  })

  it('credential expired: a run stream and set streams opened with an expiring read token end at its expiry, `: closed credential-expired`, one warning; the same token is refused on reconnect; the secret and a session stream on', async () => {
    // Fake timers and clock (the handlers' default clock reads Date); setImmediate and I/O stay real.
    const T0 = Date.parse('2026-12-08T10:00:00.000Z')
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'], now: T0 })
    const store = new MemoryStore()
    const logger = recordingLogger()
    const handlers = createPipelineStatusHandlers({
      store,
      secret: SECRET,
      readTokens: { secret: READ_SECRET },
      logger,
      // The app's session: a cookie, no expiry the handlers know of.
      authorize: ({ request, action }) => request.headers.get('cookie') === 'session=ok' && (action === 'stream' || action === 'list'),
      live: { pollIntervalMs: 600_000, safetyPollIntervalMs: 600_000 },
    })
    open.push(handlers)
    for (const runId of ['expiring-1', 'expiring-2']) {
      expect((await handlers.fetch(requests.post('/runs', { id: runId }))).status).toBe(201)
      const snapshot = await store.getRun(runId)
      await store.transaction(async (tx) => tx.saveRun({ ...snapshot!.run, tags: ['team:a'] }))
    }
    const runToken = await createRunReadToken({ runId: 'expiring-1', secret: READ_SECRET, expiresInSeconds: 60 })
    const tagToken = await createRunReadToken({ tag: 'team:a', secret: READ_SECRET, expiresInSeconds: 60 })
    const bearer = (token: string, path: string) => new Request(`${HANDLER_BASE_URL}${path}`, { headers: { Authorization: `Bearer ${token}` } })
    const session = (path: string) => new Request(`${HANDLER_BASE_URL}${path}`, { headers: { Cookie: 'session=ok' } })

    const own = await readUntil(await handlers.fetch(bearer(runToken, '/expiring-1/events')), 'event: snapshot')
    const listed = await readUntil(await handlers.fetch(bearer(tagToken, '/events?run=expiring-2')), 'event: ready')
    const filtered = await readUntil(await handlers.fetch(bearer(tagToken, '/events?tag=team:a')), 'event: ready')
    const bySecret = await readUntil(await handlers.fetch(requests.get('/expiring-1/events')), 'event: snapshot')
    const bySession = await readUntil(await handlers.fetch(session('/expiring-2/events')), 'event: snapshot')
    const setBySession = await readUntil(await handlers.fetch(session('/events?run=expiring-1')), 'event: ready')
    expect(handlers.liveStats().openStreams).toBe(6)

    // The tokens expire at T0 + 60 s: a millisecond before, every stream is open; then three end, one warning.
    const warning = await expectEndedAtExpiry(handlers, logger, { inMs: 60_000, open: 6, own, runId: 'expiring-1', sets: [listed, filtered], expiresAt: '2026-12-08T10:01:00.000Z' })
    expect(warning.message).toMatch(/expired \(2026-12-08T10:01:00.000Z\).*refused.*give it a new token/)

    // The reconnect with the same token is refused: the token expired.
    for (const [token, path] of [[runToken, '/expiring-1/events'], [tagToken, '/events?run=expiring-2'], [tagToken, '/events?tag=team:a']] as const) {
      const refused = await handlers.fetch(bearer(token, path))
      expect(refused.status).toBe(401)
      expect(await refused.json()).toMatchObject({ code: 'invalid_read_token', detail: expect.stringMatching(/expired/) })
    }

    // The secret and the session are unaffected: still open, and they get the next change.
    await vi.advanceTimersByTimeAsync(3_600_000)
    expect(handlers.liveStats().openStreams).toBe(3)
    expect((await handlers.fetch(requests.post('/expiring-1/stage-update', { ...STAGE, status: 'PROCESSING' }))).status).toBe(200)
    for (const stream of [bySecret, setBySession]) {
      await stream.until('event: update')
      await stream.cancel()
    }
    await bySession.cancel()
  })

  it("session expired: streams the app's authorize allowed with { allow: true, expiresAt } (a run stream, a run= and a filter set stream) end then, `: closed credential-expired`, one warning; the reconnect is asked of authorize again", async () => {
    // Fake timers and clock (the handlers' default clock reads Date); setImmediate and I/O stay real.
    const T0 = Date.parse('2026-12-08T10:00:00.000Z')
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'], now: T0 })
    const store = new MemoryStore()
    const logger = recordingLogger()
    // The app's sessions: `short` ends at T0 + 30 s (a Date), `long` at T0 + 1 h (ms since the epoch), `plain` is a boolean.
    const sessions: Record<string, boolean | { allow: true; expiresAt: Date | number }> = {
      short: { allow: true, expiresAt: new Date(T0 + 30_000) },
      long: { allow: true, expiresAt: T0 + 3_600_000 },
      plain: true,
    }
    const asked: string[] = []
    const handlers = createPipelineStatusHandlers({
      store,
      secret: SECRET,
      logger,
      authorize: ({ request, action }) => {
        const session = /^session=(\w+)$/.exec(request.headers.get('cookie') ?? '')?.[1] ?? ''
        asked.push(`${session} ${action}`)
        return sessions[session] ?? false
      },
      live: { pollIntervalMs: 600_000, safetyPollIntervalMs: 600_000 },
    })
    open.push(handlers)
    for (const runId of ['session-1', 'session-2']) expect((await handlers.fetch(requests.post('/runs', { id: runId }))).status).toBe(201)
    const as = (session: string, path: string) => new Request(`${HANDLER_BASE_URL}${path}`, { headers: { Cookie: `session=${session}` } })

    const own = await readUntil(await handlers.fetch(as('short', '/session-1/events')), 'event: snapshot')
    const listed = await readUntil(await handlers.fetch(as('short', '/events?run=session-1&run=session-2')), 'event: ready')
    const filtered = await readUntil(await handlers.fetch(as('short', '/events?status=PROCESSING')), 'event: ready')
    const byLong = await readUntil(await handlers.fetch(as('long', '/session-2/events')), 'event: snapshot')
    const byPlain = await readUntil(await handlers.fetch(as('plain', '/events?run=session-2')), 'event: ready')
    expect(asked).toEqual(['short stream', 'short stream', 'short stream', 'short list', 'long stream', 'plain stream'])
    expect(handlers.liveStats().openStreams).toBe(5)

    // The short session ends at T0 + 30 s: a millisecond before, every stream is open; then three end, one warning.
    const warning = await expectEndedAtExpiry(handlers, logger, { inMs: 30_000, open: 5, own, runId: 'session-1', sets: [listed, filtered], expiresAt: '2026-12-08T10:00:30.000Z' })
    expect(warning.message).toMatch(/expired \(2026-12-08T10:00:30.000Z\).*session.*authorize is asked again.*renewed session's expiresAt/)

    // The reconnect asks authorize again; a session whose expiresAt has passed is 401 authentication_required.
    const refused = await handlers.fetch(as('short', '/session-1/events'))
    expect(refused.status).toBe(401)
    expect(await refused.json()).toMatchObject({ code: 'authentication_required', detail: expect.stringMatching(/until 2026-12-08T10:00:30.000Z, which has passed/) })
    expect(asked.at(-1)).toBe('short stream')
    // A renewed session opens again, until its own expiry.
    sessions['short'] = { allow: true, expiresAt: T0 + 90_000 }
    const renewed = await readUntil(await handlers.fetch(as('short', '/session-1/events')), 'event: snapshot')
    await vi.advanceTimersByTimeAsync(60_000)
    expect(await renewed.rest()).toContain(': closed credential-expired session-1\n\n')

    // The long session and the boolean one are unaffected: still open, and they get the next change.
    expect(handlers.liveStats().openStreams).toBe(2)
    expect((await handlers.fetch(requests.post('/session-2/stage-update', { ...STAGE, status: 'PROCESSING' }))).status).toBe(200)
    for (const stream of [byLong, byPlain]) {
      await stream.until('event: update')
      await stream.cancel()
    }
  })
})
