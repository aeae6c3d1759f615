/**
 * One server for the idle-streams benchmark: `IDLE_TARGET=express` (the Express router) or
 * `IDLE_TARGET=fetch` (`handlers.fetch` served through node:http by the Node bridge), on a
 * MemoryStore seeded with `IDLE_RUNS` runs (in process, no network). Answers `memory` (after a
 * full GC; run with --expose-gc) and `stats` over IPC.
 */
import { createServer } from 'node:http'
import { writeHeapSnapshot } from 'node:v8'
import express from 'express'
import { BENCH_SECRET, BENCH_STAGES, reportToParent } from './shared.js'

// IDLE_SRC: the package's source to load (default this checkout's src/; an A/B run points it at
// another commit's copy, e.g. `git archive <commit> src | tar -x -C /tmp/before`).
const src = process.env['IDLE_SRC'] ?? '../../src'
const { createExpressRouter } = (await import(`${src}/express/index.ts`)) as typeof import('../../src/express/index.js')
const { createPipelineStatusHandlers, MemoryStore } = (await import(`${src}/server/index.ts`)) as typeof import('../../src/server/index.js')
const { toWebRequest, writeWebResponse } = (await import(`${src}/server/http/node-bridge.ts`)) as typeof import('../../src/server/http/node-bridge.js')
const { newRun } = (await import(`${src}/core/state-machine.ts`)) as typeof import('../../src/core/state-machine.js')
const target = process.env['IDLE_TARGET'] ?? 'express'
const runs = Number(process.env['IDLE_RUNS'] ?? 1000)
const store = new MemoryStore()
const logger = { warn: () => {}, error: (message: string) => console.error(message) }
const options = { store, secret: BENCH_SECRET, stages: BENCH_STAGES, logger, live: { maxStreams: 20_000 } }

const now = new Date()
for (let i = 0; i < runs; i++) await store.insertRun(newRun(`bench-${i}`, now))

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
    createServer((_req, res) => {
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
process.on('message', (message) => {
  if (typeof message === 'string' && message.startsWith('snapshot:')) {
    ;(globalThis as { gc?: () => void }).gc?.()
    process.send?.({ snapshot: writeHeapSnapshot(message.slice('snapshot:'.length)) })
  }
  if (message === 'stats') process.send?.({ stats: stats() })
  if (message !== 'memory') return
  const gc = (globalThis as { gc?: () => void }).gc
  gc?.()
  gc?.()
  process.send?.({ memory: process.memoryUsage() })
})
