/**
 * The bound on a live catch-up's streamed output chunks (`live.maxReplayedChunks`), over real
 * HTTP with the real handlers, on a MemoryStore and on a PrismaStore (PostgreSQL when
 * DATABASE_URL is set): a reconnect with `Last-Event-ID` whose run has at most that many chunks
 * after it gets exactly those chunks in order and no snapshot; one with more gets a fresh
 * `snapshot` whose stage output is the whole text. A run stream and a full-view set stream that
 * the run watcher finds that far behind (their process was not told of the writes) get a fresh
 * snapshot with the whole text the same way, and chunk by chunk again afterwards. Each cause is
 * logged once. A small bound (5) stands in for the default (1,000).
 */
import { createPrismaStore, MemoryStore, type Store } from 'pipeline-status-sdk/server'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { DEFAULT_MAX_REPLAYED_OUTPUT_CHUNKS } from '../../src/server/handler-options.js'
import { createTestDatabase, type TestDatabase, usesPostgres } from '../setup/test-database.js'
import { LIVE_SECRET, type LiveServer, postJson, startLiveServer } from './live-server.js'
import { openSse, type SseConnection } from './sse-reader.js'

const MAX = 5
const headers = { 'X-Webhook-Secret': LIVE_SECRET }
const STAGE = { stageNumber: 1, stageName: 'Input Processing' }
/** The text of chunk `seq`, with multibyte characters. */
const piece = (seq: number) => `chunk ${seq} — ü 日本 😀\n`

/** `store`, whose own-write notifications reach the handlers only while `muted.value` is false. */
function mutable(store: Store<unknown>, muted: { value: boolean }): Store<unknown> {
  return new Proxy(store, {
    get(target, property) {
      if (property === 'onRunChange') {
        return (listener: Parameters<NonNullable<Store<unknown>['onRunChange']>>[0]) =>
          target.onRunChange!((change) => {
            if (!muted.value) listener(change)
          })
      }
      const value: unknown = Reflect.get(target, property, target)
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value
    },
  }) as unknown as Store<unknown>
}

const outputsOf = (events: SseConnection['events']) =>
  events.filter((event) => event.event === 'output').map((event) => JSON.parse(event.data) as { seq: number; text: string })
const snapshotsOf = (events: SseConnection['events']) =>
  events.filter((event) => event.event === 'snapshot').map((event) => JSON.parse(event.data) as { stages: Array<{ output: string | null; outputSeq: number | null }> })
const warningsAbout = (server: LiveServer, cause: string) => server.warnings.filter((warning) => warning.includes(cause))

let db: TestDatabase | undefined
let counter = 0
beforeAll(async () => {
  db = await createTestDatabase()
})
afterAll(() => db?.close())

const stores: Array<[string, () => Store<unknown>]> = [
  ['a MemoryStore', () => new MemoryStore()],
  [`a PrismaStore on ${usesPostgres() ? 'PostgreSQL' : 'PGlite'}`, () => createPrismaStore({ prisma: db!.prisma })],
]

describe('the default bound', () => {
  it('is 1,000 chunks', () => {
    expect(DEFAULT_MAX_REPLAYED_OUTPUT_CHUNKS).toBe(1000)
  })
})

/**
 * A new run whose stage 1 is PROCESSING, and `write(seq)`, which posts chunk `seq` of it
 * (`piece(seq)`) and remembers its text in `sent`, in order.
 */
async function streamingRun(url: string, prefix: string): Promise<{ runId: string; sent: string[]; write: (seq: number) => Promise<void> }> {
  const runId = `${prefix}-${++counter}-${Date.now()}`
  await postJson(url, '/runs', { id: runId })
  await postJson(url, `/${runId}/stage-update`, { ...STAGE, status: 'PROCESSING' })
  const sent: string[] = []
  const write = async (seq: number) => {
    sent.push(piece(seq))
    await postJson(url, `/${runId}/stages/1/output`, { seq, text: piece(seq) })
  }
  return { runId, sent, write }
}

describe.each(stores)('live.maxReplayedChunks on %s', (_name, makeStore) => {
  let server: LiveServer | undefined
  afterEach(async () => {
    await server?.close()
    server = undefined
  })

  it('a resume with at most the bound of chunks after its Last-Event-ID replays exactly them; one with more gets a snapshot with the whole text', async () => {
    // No version polling: the streams learn only of this process's own writes.
    server = await startLiveServer({ pollIntervalMs: 600_000, maxReplayedChunks: MAX }, { store: makeStore() })
    const { url } = server
    const { runId, sent, write } = await streamingRun(url, 'replay-bound')
    const path = `${url}/${runId}/events?outputs=changed`
    for (let seq = 0; seq < 3; seq++) await write(seq)

    const first = await openSse(path, headers)
    const snapshot = await first.waitFor((event) => event.event === 'snapshot')
    first.abort()
    await first.ended

    // Exactly the bound (5 chunks) after the last id: replayed, no snapshot.
    for (let seq = 3; seq < 3 + MAX; seq++) await write(seq)
    const within = await openSse(path, { ...headers, 'Last-Event-ID': snapshot.id! })
    await within.waitFor((event) => event.event === 'output' && (JSON.parse(event.data) as { seq: number }).seq === 7)
    within.abort()
    await within.ended
    expect(within.events.map((event) => event.event)).toEqual(['update', 'output', 'output', 'output', 'output', 'output'])
    expect(outputsOf(within.events)).toEqual([3, 4, 5, 6, 7].map((seq) => ({ runId, stageNumber: 1, seq, text: piece(seq) })))
    expect(warningsAbout(server, 'a reconnect of run')).toEqual([])
    const lastId = within.events.at(-1)!.id!

    // One chunk past the bound (6) after the last id: a fresh snapshot with the whole text instead.
    for (let seq = 8; seq < 8 + MAX + 1; seq++) await write(seq)
    const past = await openSse(path, { ...headers, 'Last-Event-ID': lastId })
    await past.waitFor((event) => event.event === 'snapshot')
    // A live chunk after it still arrives as an output event.
    await write(14)
    await past.waitFor((event) => event.event === 'output')
    past.abort()
    await past.ended
    expect(past.events.map((event) => event.event)).toEqual(['snapshot', 'output'])
    const [fresh] = snapshotsOf(past.events)
    expect(fresh?.stages[0]).toMatchObject({ output: sent.slice(0, 14).join(''), outputSeq: 13 })
    expect(outputsOf(past.events)).toEqual([{ runId, stageNumber: 1, seq: 14, text: piece(14) }])

    // Logged once, naming the cause and the option, however many resumes fall back.
    const again = await openSse(path, { ...headers, 'Last-Event-ID': lastId })
    await again.waitFor((event) => event.event === 'snapshot')
    again.abort()
    await again.ended
    const logged = warningsAbout(server, 'a reconnect of run')
    expect(logged).toHaveLength(1)
    expect(logged[0]).toContain(`a reconnect of run ${runId} with Last-Event-ID ${lastId} had more than live.maxReplayedChunks = 5 streamed output chunks to replay`)
    expect(logged[0]).toContain('so it got a fresh snapshot with the text so far instead')
  })

  it('a run stream and a full-view set stream the watcher finds more than the bound behind get a snapshot with the whole text, then chunks again', async () => {
    const muted = { value: false }
    server = await startLiveServer({ pollIntervalMs: 600_000, maxReplayedChunks: MAX }, { store: mutable(makeStore(), muted) })
    const { url } = server
    const { runId, sent, write } = await streamingRun(url, 'watcher-bound')
    await write(0)
    const own = await openSse(`${url}/${runId}/events?outputs=changed`, headers)
    const full = await openSse(`${url}/events?run=${runId}&view=full`, headers)
    await own.waitFor((event) => event.event === 'snapshot')
    await full.waitFor((event) => event.event === 'ready')
    const hasSeq = (seq: number) => (event: { event?: string | undefined; data: string }) =>
      event.event === 'output' && (JSON.parse(event.data) as { seq: number }).seq === seq

    // The watcher is not told of chunks 1..4; chunk 5 makes it read: 5 chunks behind, the bound.
    muted.value = true
    for (let seq = 1; seq < 5; seq++) await write(seq)
    muted.value = false
    await write(5)
    await Promise.all([own.waitFor(hasSeq(5)), full.waitFor(hasSeq(5))])

    // Chunks 6..11 untold, then 12: 7 chunks behind, past the bound: a snapshot with the whole text.
    muted.value = true
    for (let seq = 6; seq < 12; seq++) await write(seq)
    muted.value = false
    await write(12)
    const isSecondSnapshot = () => {
      let seen = 0
      return (event: { event?: string | undefined }) => event.event === 'snapshot' && ++seen === 2
    }
    await Promise.all([own.waitFor(isSecondSnapshot()), full.waitFor(isSecondSnapshot())])
    // Afterwards chunk by chunk again, and the run ends as usual.
    await write(13)
    await Promise.all([own.waitFor(hasSeq(13)), full.waitFor(hasSeq(13))])
    await postJson(url, `/${runId}/stage-update`, { ...STAGE, status: 'COMPLETED' })
    // Its update seen before the run completes: changes a few milliseconds apart may share one
    // event (DESIGN.md), so without this wait the two updates below are sometimes one.
    const isUpdate = (event: { event?: string | undefined }) => event.event === 'update'
    await Promise.all([own.waitFor(isUpdate), full.waitFor(isUpdate)])
    await postJson(url, `/${runId}/complete`, { status: 'COMPLETED' })
    await Promise.all([own.ended, full.ended])

    for (const stream of [own, full]) {
      const names = stream.events.map((event) => event.event).filter((name) => name !== 'ready')
      expect(names).toEqual(['snapshot', 'output', 'output', 'output', 'output', 'output', 'snapshot', 'output', 'update', 'update', 'end'])
      expect(outputsOf(stream.events).map((chunk) => chunk.seq)).toEqual([1, 2, 3, 4, 5, 13])
      const snapshots = snapshotsOf(stream.events)
      expect(snapshots[0]?.stages[0]).toMatchObject({ output: piece(0), outputSeq: 0 })
      expect(snapshots[1]?.stages[0]).toMatchObject({ output: sent.slice(0, 13).join(''), outputSeq: 12 })
    }
    // The run stream's second snapshot carries the version of chunk 12 as its id.
    const ownSnapshots = own.events.filter((event) => event.event === 'snapshot')
    expect(Number(ownSnapshots[1]!.id)).toBe(Number(ownSnapshots[0]!.id) + 12)
    const logged = warningsAbout(server, 'streamed output chunks behind')
    expect(logged).toHaveLength(1)
    expect(logged[0]).toContain(`a live stream of run ${runId} was more than live.maxReplayedChunks = 5 streamed output chunks behind`)
  })

  it('refuses a maxReplayedChunks that is not a whole number from 1', async () => {
    await expect(startLiveServer({ maxReplayedChunks: 0 })).rejects.toThrow('live.maxReplayedChunks must be a positive whole number, got 0')
  })
})
