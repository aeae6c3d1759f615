/**
 * One server for the idle-streams benchmark: `IDLE_TARGET=express` (the Express router) or
 * `IDLE_TARGET=fetch` (`handlers.fetch` served through node:http by the Node bridge), on a
 * MemoryStore seeded with `IDLE_RUNS` runs (in process, no network). Answers `memory` over IPC
 * with `process.memoryUsage()` twice: after two full GCs (`gc`), then after a memory-reducing one
 * (`reduced`: V8's last-resort GC, which also shrinks the young generation back, as V8's memory
 * reducer does in a server that went idle); and `stats`. Run with --expose-gc.
 */
import { createServer } from 'node:http'
import { getHeapSpaceStatistics, writeHeapSnapshot } from 'node:v8'
import express from 'express'
import { BENCH_SECRET, BENCH_STAGES, reportToParent } from './shared.js'

type Package = typeof import('../../src/express/index.js') &
  typeof import('../../src/server/index.js') &
  typeof import('../../src/server/http/node-bridge.js') &
  typeof import('../../src/core/state-machine.js')

// IDLE_PKG: the package built by esbuild as tsup builds dist/ (no tsx, no keepNames), one module
// exporting what is used below (bench/idle-streams.bench.ts builds it with IDLE_BUILT=1).
// IDLE_SRC: the package's source to load under tsx (default this checkout's src/; an A/B run
// points it at another commit's copy, e.g. `git archive <commit> src | tar -x -C /tmp/before`).
async function loadPackage(): Promise<Package> {
  const built = process.env['IDLE_PKG']
  if (built) return (await import(built)) as Package
  const src = process.env['IDLE_SRC'] ?? '../../src'
  const modules = await Promise.all(
    ['express/index.ts', 'server/index.ts', 'server/http/node-bridge.ts', 'core/state-machine.ts'].map((path) => import(`${src}/${path}`) as Promise<object>),
  )
  return Object.assign({}, ...modules) as Package
}
const { createExpressRouter, createPipelineStatusHandlers, MemoryStore, toWebRequest, writeWebResponse, newRun } = await loadPackage()
const target = process.env['IDLE_TARGET'] ?? 'express'
const runs = Number(process.env['IDLE_RUNS'] ?? 1000)
const store = new MemoryStore()
const logger = { warn: () => {}, error: (message: string) => console.error(message) }
const options = { store, secret: BENCH_SECRET, stages: BENCH_STAGES, logger, live: { maxStreams: 20_000 } }

const now = new Date()
for (let i = 0; i < runs; i++) await store.insertRun(newRun(`bench-${i}`, now))
// IDLE_WARM_RUNS: runs warm-0… for the bench's warm-up requests (IDLE_WARM_REQUESTS), never streamed.
for (let i = 0; i < Number(process.env['IDLE_WARM_RUNS'] ?? 0); i++) await store.insertRun(newRun(`warm-${i}`, now))

let stats: () => unknown
if (target === 'express') {
  const router = createExpressRouter(options)
  stats = () => router.liveStats()
  reportToParent(createServer(express().use('/api/pipeline', router)))
} else if (target === 'raw') {
  // The floor: node:http holding a response open after one write, none of this package.
  let open = 0
  stats = () => ({ openStreams: open })
  reportToParent(
    createServer((req, res) => {
      if (!req.url?.includes('/events')) {
        // A warm-up request (IDLE_WARM_REQUESTS): read, answered and ended, as node:http serves any.
        req.resume()
        req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'))
        return
      }
      open += 1
      res.once('close', () => (open -= 1))
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      res.write('event: snapshot\ndata: {}\n\n')
    }),
  )
} else {
  const handlers = createPipelineStatusHandlers(options)
  stats = () => handlers.liveStats()
  reportToParent(
    createServer((req, res) => {
      const controller = new AbortController()
      res.once('close', () => controller.abort())
      void handlers.fetch(toWebRequest(req, 'http://localhost', { signal: controller.signal, directEvents: true } as Parameters<typeof toWebRequest>[2])).then((response) => writeWebResponse(res, response)).catch(() => res.destroy())
    }),
  )
}
type Gc = (options?: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void
process.on('message', (message) => {
  const gc = (globalThis as { gc?: Gc }).gc
  if (typeof message === 'string' && message.startsWith('snapshot:')) {
    gc?.()
    process.send?.({ snapshot: writeHeapSnapshot(message.slice('snapshot:'.length)) })
  }
  if (message === 'stats') process.send?.({ stats: stats() })
  if (message !== 'memory') return
  gc?.()
  gc?.()
  const afterGc = process.memoryUsage()
  // V8's heap spaces' resident bytes by name (old_space, code_space, new_space, …), after the two GCs.
  const spaces = Object.fromEntries(getHeapSpaceStatistics().map((space) => [space.space_name, space.physical_space_size]))
  // What V8 does by itself once a server goes idle (its memory reducer): a full GC that also
  // gives back the young generation's grown semispaces.
  gc?.({ type: 'major', execution: 'sync', flavor: 'last-resort' })
  process.send?.({ memory: { gc: afterGc, reduced: process.memoryUsage(), spaces } })
})
