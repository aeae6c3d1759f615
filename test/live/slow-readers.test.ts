/**
 * A slow reader cannot grow the server's memory (issue 19, item 4). The server runs in a child
 * process (its memory measured after two full GCs, apart from the test runner's); 20 clients open
 * the stream over real sockets and never read; a stage with a 512 KB output gets 40 progress
 * ticks. Streams opened as subscribeToRun opens them (`?outputs=changed`) get each tick without the
 * unchanged output; streams that get the whole stage each tick (older clients) fall behind past
 * the send buffer's bound and are closed, logged once each and counted.
 *
 * Nothing here depends on how fast the machine is: each tick is sent once the reading client has
 * received the one before (so it never falls behind, however loaded the machine), and the bound is
 * on what the server still holds after full GCs (heap and external memory: every buffered chunk
 * is there), not on its RSS, which the allocator keeps or returns as it likes. RSS is logged.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { connect, type Socket } from 'node:net'
import { fileURLToPath } from 'node:url'
import { createParser } from 'eventsource-parser'
import { afterEach, describe, expect, it } from 'vitest'
import { LIVE_SECRET, postJson } from './live-server.js'

const OUTPUT_BYTES = 512 * 1024
const TICKS = 40
const PAUSED = 20
const MB = 1024 * 1024
/**
 * The most the server may still hold after the ticks. Bounded buffering keeps far less (each paused
 * stream holds its snapshot and small ticks, or is closed past live.maxBufferedBytes = 1 MB beyond
 * it: at most 20 × 1.5 MB even at the worst moment); unbounded buffering of whole stages would
 * hold 20 × 40 × 512 KB = 400 MB.
 */
const GROWTH_LIMIT_MB = 50

interface Memory {
  rss: number
  heapUsed: number
  external: number
}
interface Measure {
  memory: Memory
  stats: { openStreams: number; slowStreamsClosed: number }
  warnings: string[]
}

const cleanups: (() => void | Promise<void>)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function startChild(live: Record<string, unknown>, direct = false): Promise<{ child: ChildProcess; url: string; port: number; measure: () => Promise<Measure> }> {
  const child = fork(fileURLToPath(new URL('./live-server-child.ts', import.meta.url)), [JSON.stringify(live), direct ? 'direct' : 'web'], {
    execArgv: ['--expose-gc', '--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  cleanups.push(async () => {
    if (child.exitCode === null) {
      const exited = once(child, 'exit')
      child.kill()
      await exited
    }
  })
  const [ready] = (await once(child, 'message')) as [{ url: string; port: number }]
  const measure = async (): Promise<Measure> => {
    child.send('measure')
    const [answer] = (await once(child, 'message')) as [Measure]
    return answer
  }
  return { child, url: ready.url, port: ready.port, measure }
}

/** A client that sends the request and then never reads: the socket is paused at once. */
async function pausedStream(port: number, path: string): Promise<Socket> {
  const socket = connect({ host: '127.0.0.1', port })
  await once(socket, 'connect')
  socket.pause()
  socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\nX-Webhook-Secret: ${LIVE_SECRET}\r\n\r\n`)
  cleanups.push(() => void socket.destroy())
  return socket
}

/** Reads a stream and counts the bytes that arrive after its snapshot, until progress `seq` reaches `lastSeq`. */
async function readingStream(url: string, lastSeq: number) {
  const controller = new AbortController()
  cleanups.push(() => controller.abort())
  const response = await fetch(url, { headers: { Accept: 'text/event-stream', 'X-Webhook-Secret': LIVE_SECRET }, signal: controller.signal })
  let snapshotSeen = false
  let bytesAfterSnapshot = 0
  let updates = 0
  let seq = -1
  const seqWaiters: { seq: number; resolve: () => void }[] = []
  let resolveDone!: () => void
  const done = new Promise<void>((resolve) => (resolveDone = resolve))
  const parser = createParser({
    onEvent: (event) => {
      if (event.event === 'snapshot') snapshotSeen = true
      if (event.event !== 'update') return
      updates += 1
      const data = JSON.parse(event.data) as { stages: { progress: { seq: number } | null }[] }
      seq = Math.max(seq, ...data.stages.map((stage) => stage.progress?.seq ?? -1))
      for (const waiter of seqWaiters.filter((w) => seq >= w.seq)) {
        seqWaiters.splice(seqWaiters.indexOf(waiter), 1)
        waiter.resolve()
      }
      if (seq >= lastSeq) resolveDone()
    },
  })
  const snapshotReady = (async () => {
    const reader = response.body!.getReader()
    const decoder = new TextDecoder()
    for (;;) {
      const { done: ended, value } = await reader.read().catch(() => ({ done: true, value: undefined }))
      if (ended || !value) return
      // Counted from the first chunk after the snapshot: what the ticks cost this reader.
      if (snapshotSeen) bytesAfterSnapshot += value.byteLength
      parser.feed(decoder.decode(value, { stream: true }))
    }
  })()
  void snapshotReady
  return {
    snapshot: async () => {
      // A ceiling far above the expected time, not a margin.
      const deadline = Date.now() + 60_000
      while (!snapshotSeen) {
        if (Date.now() > deadline) throw new Error('No snapshot within 60 s')
        await new Promise((resolve) => setTimeout(resolve, 5))
      }
    },
    done,
    /** Resolves once an update with progress `target` (or later) has arrived. */
    received: (target: number) => (seq >= target ? Promise.resolve() : new Promise<void>((resolve) => seqWaiters.push({ seq: target, resolve }))),
    bytes: () => bytesAfterSnapshot,
    updates: () => updates,
  }
}

async function scenario(omitUnchangedOutputs: boolean, direct = false) {
  const server = await startChild({ keepAliveMs: 600_000 }, direct)
  const runId = omitUnchangedOutputs ? 'run-changed-outputs' : 'run-whole-stages'
  const output = JSON.stringify({ rows: 'r'.repeat(OUTPUT_BYTES - 20) })
  const query = omitUnchangedOutputs ? '?outputs=changed' : ''
  await postJson(server.url, '/runs', { id: runId })
  await postJson(server.url, `/${runId}/stage-update`, { stageNumber: 1, stageName: 'Stage 1', status: 'PROCESSING', output })
  const before = await server.measure()

  const reader = await readingStream(`${server.url}/${runId}/events${query}`, TICKS)
  await reader.snapshot()
  for (let i = 0; i < PAUSED; i += 1) await pausedStream(server.port, `/api/pipeline/${runId}/events${query}`)
  // Every paused stream is open (its snapshot written) before the first tick.
  const deadline = Date.now() + 60_000
  while ((await server.measure()).stats.openStreams < PAUSED + 1) {
    if (Date.now() > deadline) throw new Error('The paused streams did not open within 60 s')
  }
  for (let seq = 1; seq <= TICKS; seq += 1) {
    await postJson(server.url, `/${runId}/stage-update`, {
      stageNumber: 1,
      stageName: 'Stage 1',
      status: 'PROCESSING',
      output,
      progress: { seq, current: seq, total: TICKS },
    })
    // In step with the reading client: it never falls behind (and is never closed as slow), on
    // any machine; the paused ones get every tick all the same.
    await reader.received(seq)
  }
  await reader.done
  const after = await server.measure()
  const growth = {
    rssMB: (after.memory.rss - before.memory.rss) / MB,
    heapAndExternalMB: (after.memory.heapUsed + after.memory.external - before.memory.heapUsed - before.memory.external) / MB,
  }
  console.log(
    `[slow-readers ${omitUnchangedOutputs ? '?outputs=changed' : 'whole stages'}${direct ? ', written to the Node response' : ''}] rss ${(before.memory.rss / MB).toFixed(1)} -> ${(after.memory.rss / MB).toFixed(1)} MB (+${growth.rssMB.toFixed(1)}), heap+external +${growth.heapAndExternalMB.toFixed(1)} MB; reader got ${reader.bytes()} bytes in ${reader.updates()} updates for ${TICKS} ticks; open ${after.stats.openStreams}, slow closed ${after.stats.slowStreamsClosed}`,
  )
  return { growth, after, reader }
}

describe('20 paused streams and 40 progress ticks on a stage with a 512 KB output', () => {
  it('streams opened as subscribeToRun opens them: the server holds less than 50 MB more, and a reader receives less than 1 MB for the ticks', async () => {
    const { growth, after, reader } = await scenario(true)
    expect(growth.heapAndExternalMB).toBeLessThan(GROWTH_LIMIT_MB)
    expect(reader.bytes()).toBeLessThan(MB)
    // Each tick carried its progress, not the output: 40 ticks, far less than one output.
    expect(reader.bytes()).toBeLessThan(OUTPUT_BYTES)
    // Nobody fell behind by more than the bound: small ticks fit in it.
    expect(after.stats.slowStreamsClosed).toBe(0)
  }, 180_000)

  it('streams that get the whole stage each tick (older clients): each paused one is closed past the bound, logged once and counted; the server holds less than 50 MB more', async () => {
    const { growth, after, reader } = await scenario(false)
    expect(growth.heapAndExternalMB).toBeLessThan(GROWTH_LIMIT_MB)
    // Older clients still get every output (backward compatible): 40 outputs and more.
    expect(reader.bytes()).toBeGreaterThan(TICKS * OUTPUT_BYTES)
    expect(after.stats.slowStreamsClosed).toBe(PAUSED)
    const slowWarnings = after.warnings.filter((line) => line.includes('fell') && line.includes('behind'))
    expect(slowWarnings).toHaveLength(PAUSED)
    expect(slowWarnings[0]).toContain('live.maxBufferedBytes')
  }, 180_000)

  it('written straight to the Node response (the Express adapter\'s path, no Web stream): each paused one is closed past the same bound, logged once and counted', async () => {
    const { growth, after, reader } = await scenario(false, true)
    expect(growth.heapAndExternalMB).toBeLessThan(GROWTH_LIMIT_MB)
    expect(reader.bytes()).toBeGreaterThan(TICKS * OUTPUT_BYTES)
    expect(after.stats.slowStreamsClosed).toBe(PAUSED)
    const slowWarnings = after.warnings.filter((line) => line.includes('fell') && line.includes('behind'))
    expect(slowWarnings).toHaveLength(PAUSED)
  }, 180_000)
})
