/**
 * Tag read tokens over HTTP against the real handlers, on the MemoryStore and on PostgreSQL:
 * a token made for a tag reads `GET /status` and `GET /events` of exactly the runs whose STORED
 * tags hold it, on every request (a tag removed later takes the run out of reach). A run it
 * does not cover is refused like a run token on another run's path, whether or not it exists.
 * Tags are set in the store directly: the `/tags` route is not part of this file's concern.
 * An open stream ends when its run loses the tag; the reconnect is refused.
 */
import { MemoryStore } from 'pipeline-status-sdk/server'
import { createPipelineStatusHandlers, createRunReadToken, type Store } from 'pipeline-status-sdk/server'
import { afterEach, describe, expect, it } from 'vitest'
import { handlerRequests, HANDLER_BASE_URL } from '../support/handler-requests.js'
import { useTestDatabase } from '../support/use-test-database.js'

const SECRET = 'webhook-secret-for-tag-token-tests-01'
const READ_SECRET = 'read-token-secret-for-tag-tests-000001'
const quiet = { warn: () => undefined, error: () => undefined }
const secretRequests = handlerRequests(SECRET)

const fixture = useTestDatabase({ poolSize: 4 })

interface Target {
  name: string
  store(): Store<unknown>
  /** Sets a run's stored tags, as the `/tags` route or the app's own code would. */
  setTags(store: Store<unknown>, runId: string, tags: string[]): Promise<void>
}

const targets: Target[] = [
  {
    name: 'MemoryStore',
    store: () => new MemoryStore(),
    async setTags(store, runId, tags) {
      const snapshot = await store.getRun(runId)
      if (!snapshot) throw new Error(`no run ${runId}`)
      await store.transaction(async (tx) => tx.saveRun({ ...snapshot.run, tags }))
    },
  },
  {
    name: 'PrismaStore on PostgreSQL',
    store: () => fixture.store as Store<unknown>,
    async setTags(_store, runId, tags) {
      // A new version, as the /tags route makes: a change other instances' streams notice.
      await fixture.db.prisma.pipelineRun.update({ where: { id: runId }, data: { tags, version: { increment: 1 } } })
    },
  },
]

const bearer = (token: string) => ({ Authorization: `Bearer ${token}` })

describe.each(targets)('tag read tokens on $name', (target) => {
  const open: Array<{ close(): Promise<void> }> = []
  afterEach(async () => {
    for (const handlers of open.splice(0)) await handlers.close()
  })

  async function setup() {
    const store = target.store()
    const handlers = createPipelineStatusHandlers({ store, secret: SECRET, readTokens: { secret: READ_SECRET }, logger: quiet })
    open.push(handlers)
    const createRun = async (id: string, tags: string[]): Promise<string> => {
      const created = await handlers.fetch(secretRequests.post('/runs', { id }))
      expect(created.status).toBe(201)
      await target.setTags(store, id, tags)
      return id
    }
    const status = (runId: string, token: string) => handlers.fetch(new Request(`${HANDLER_BASE_URL}/${runId}/status`, { headers: bearer(token) }))
    const events = (runId: string, token: string, signal?: AbortSignal) =>
      handlers.fetch(new Request(`${HANDLER_BASE_URL}/${runId}/events`, { headers: bearer(token), ...(signal ? { signal } : {}) }))
    return { store, handlers, createRun, status, events, setTags: (runId: string, tags: string[]) => target.setTags(store, runId, tags) }
  }

  /** The first `snapshot` event of a stream, then the stream closed. */
  async function firstSnapshot(response: Response, abort: AbortController): Promise<{ run: { id: string } }> {
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/)
    const reader = (response.body as ReadableStream<Uint8Array>).getReader()
    const decoder = new TextDecoder()
    let text = ''
    try {
      for (;;) {
        const match = /event: snapshot\n(?:id: [^\n]*\n)?data: (.*)\n/.exec(text)
        if (match) return JSON.parse(match[1] as string)
        const { value, done } = await reader.read()
        if (done) throw new Error(`the stream ended before a snapshot: ${text}`)
        text += decoder.decode(value, { stream: true })
      }
    } finally {
      abort.abort()
      await reader.cancel().catch(() => undefined)
    }
  }

  /** Reads a stream as text: `until(marker)` waits for it, `toEnd()` for the end of the stream. */
  function streamReader(response: Response) {
    expect(response.status).toBe(200)
    const reader = (response.body as ReadableStream<Uint8Array>).getReader()
    const decoder = new TextDecoder()
    let text = ''
    let consumed = 0
    return {
      async until(marker: string): Promise<void> {
        while (!text.includes(marker, consumed)) {
          const { value, done } = await reader.read()
          if (done) throw new Error(`the stream ended before ${marker}: ${text}`)
          text += decoder.decode(value, { stream: true })
        }
        consumed = text.indexOf(marker, consumed) + marker.length
      },
      async toEnd(): Promise<string> {
        for (;;) {
          const { value, done } = await reader.read()
          if (done) return text.slice(consumed)
          text += decoder.decode(value, { stream: true })
        }
      },
      cancel: () => reader.cancel(),
    }
  }

  it("reads the status of exactly the runs carrying its tag; another run, known or not, is refused alike", async () => {
    const { createRun, status, handlers } = await setup()
    const tagged = await createRun('tag-run-a', ['team:a', 'nightly'])
    const alsoTagged = await createRun('tag-run-b', ['team:a'])
    const other = await createRun('tag-run-c', ['team:b'])
    const token = await createRunReadToken({ tag: 'team:a', secret: READ_SECRET, expiresInSeconds: 600 })

    for (const runId of [tagged, alsoTagged]) {
      const read = await status(runId, token)
      expect(read.status).toBe(200)
      const bySecret = await handlers.fetch(secretRequests.get(`/${runId}/status`))
      expect(await read.json()).toEqual(await bySecret.json())
    }
    const refused = await status(other, token)
    const unknown = await status('tag-run-unknown', token)
    expect(refused.status).toBe(401)
    expect(unknown.status).toBe(401)
    const refusedBody = await refused.json()
    expect(refusedBody).toMatchObject({ code: 'invalid_read_token', detail: 'The read token is not valid for this run' })
    // Nothing tells the holder whether a run outside its tag exists.
    expect(await unknown.json()).toEqual(refusedBody)
  })

  it('streams a run carrying its tag, refuses one without it, and loses a run whose tag is removed', async () => {
    const { createRun, status, events, setTags } = await setup()
    const tagged = await createRun('stream-tag-a', ['team:a'])
    const other = await createRun('stream-tag-b', ['team:b'])
    const token = await createRunReadToken({ tag: 'team:a', secret: READ_SECRET, expiresInSeconds: 600 })

    const abort = new AbortController()
    const snapshot = await firstSnapshot(await events(tagged, token, abort.signal), abort)
    expect(snapshot.run.id).toBe(tagged)
    for (const runId of [other, 'stream-tag-unknown']) {
      const refused = await events(runId, token)
      expect(refused.status).toBe(401)
      expect(await refused.json()).toMatchObject({ code: 'invalid_read_token', detail: 'The read token is not valid for this run' })
    }

    await setTags(tagged, ['nightly'])
    for (const refused of [await status(tagged, token), await events(tagged, token)]) {
      expect(refused.status).toBe(401)
      expect(await refused.json()).toMatchObject({ code: 'invalid_read_token' })
    }
    // A tag added later brings a run within reach.
    await setTags(other, ['team:b', 'team:a'])
    expect((await status(other, token)).status).toBe(200)
  })

  it("an open stream ends when its run loses the tag, while the secret's stream of the run goes on", async () => {
    const { createRun, handlers, events, setTags } = await setup()
    const runId = await createRun('stream-loses-tag', ['team:a'])
    const token = await createRunReadToken({ tag: 'team:a', secret: READ_SECRET, expiresInSeconds: 600 })
    const tagged = streamReader(await events(runId, token))
    const bySecret = streamReader(await handlers.fetch(secretRequests.get(`/${runId}/events`)))
    await tagged.until('event: snapshot')
    await bySecret.until('event: snapshot')

    await setTags(runId, ['nightly'])
    // The secret's stream sees the change; the tag token's stream ends without it.
    await bySecret.until('event: update')
    const rest = await tagged.toEnd()
    expect(rest).not.toContain('event: update')
    expect(rest).not.toContain('nightly')
    await bySecret.cancel()
    expect((await events(runId, token)).status).toBe(401)
  })

  it('expired, forged and re-tagged tokens are refused before any run is read; a tag token is no run token', async () => {
    const { createRun, status } = await setup()
    const runId = await createRun('forged-tag-run', ['team:a'])
    const issued = new Date(Date.now() - 2 * 60 * 60 * 1000)
    const expired = await createRunReadToken({ tag: 'team:a', secret: READ_SECRET, expiresInSeconds: 60, now: issued })
    const expiredAnswer = await status(runId, expired)
    expect(expiredAnswer.status).toBe(401)
    expect((await expiredAnswer.json()).detail).toMatch(/^The read token expired on .*; get a new one$/)

    const foreign = await createRunReadToken({ tag: 'team:a', secret: 'another-apps-read-token-secret-00000', expiresInSeconds: 600 })
    const teamB = await createRunReadToken({ tag: 'team:b', secret: READ_SECRET, expiresInSeconds: 600 })
    const teamA = await createRunReadToken({ tag: 'team:a', secret: READ_SECRET, expiresInSeconds: 600 })
    // team:b's signature under team:a's tag segment: the tag is signed.
    const [, , tagA] = teamA.split('.')
    const [prefix, kind, , expires, signatureB] = teamB.split('.')
    const retagged = [prefix, kind, tagA, expires, signatureB].join('.')
    // A tag token's signature under the run-token form: the two forms never sign the same message.
    const [, , , teamAExpires, teamASignature] = teamA.split('.')
    const asRunToken = `psrt1.${teamAExpires}.${teamASignature}`
    for (const token of [foreign, retagged, asRunToken]) {
      const refused = await status(runId, token)
      expect(refused.status).toBe(401)
      expect(await refused.json()).toMatchObject({ code: 'invalid_read_token', detail: 'The read token is not valid for this run' })
    }
    // A non-canonical spelling of the tag (padding) is malformed.
    const padded = await status(runId, [prefix, kind, `${tagA}=`, teamAExpires, teamASignature].join('.'))
    expect(await padded.json()).toMatchObject({ code: 'invalid_read_token', detail: 'The read token is malformed' })
    expect((await status(runId, teamA)).status).toBe(200)
  })

  it('a run token still reads its own run only, whatever tags the run carries', async () => {
    const { createRun, status } = await setup()
    const mine = await createRun('run-token-mine', ['team:a'])
    const other = await createRun('run-token-other', ['team:a'])
    const token = await createRunReadToken({ runId: mine, secret: READ_SECRET, expiresInSeconds: 600 })
    expect((await status(mine, token)).status).toBe(200)
    expect(await (await status(other, token)).json()).toMatchObject({ code: 'invalid_read_token', detail: 'The read token is not valid for this run' })
  })
})
