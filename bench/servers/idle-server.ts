/**
 * One server for the idle-streams benchmark: `IDLE_TARGET=express` (the Express router) or
 * `IDLE_TARGET=fetch` (`handlers.fetch` served through node:http by the Node bridge), on a
 * MemoryStore seeded with `IDLE_RUNS` runs (in process, no network). Answers `memory` over IPC
 * with `process.memoryUsage()` twice: after two full GCs (`gc`), then after a memory-reducing one
 * (`reduced`: V8's last-resort GC, which also shrinks the young generation back, as V8's memory
 * reducer does in a server that went idle); and `stats`: the live streams' counts, why each
 * stream's response closed (`reset-closes` clears that before the measured streams open), what the
 * package logged (each message printed once to stderr, all counted) and the node:http timeouts.
 * Run with --expose-gc.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
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
// Everything the package logs is counted by message (answered with `stats`) and printed once per
// message: a stream the package closes must not close silently here either.
const logged = new Map<string, number>()
const log = (level: string) => (message: string, details?: unknown) => {
  const key = `${level}: ${message}`
  const seen = logged.get(key) ?? 0
  logged.set(key, seen + 1)
  if (seen === 0) console.error(`[idle-server] ${key}${details === undefined ? '' : ` ${JSON.stringify(details, errorFields)}`}`)
}
const errorFields = (_key: string, value: unknown) => (value instanceof Error ? { name: value.name, message: value.message, code: (value as { code?: unknown }).code } : value)
const logger = { warn: log('warn'), error: log('error') }

/**
 * Why each stream's response closed, by cause, with the first and last time (epoch ms): the
 * client's FIN, a socket error (its code), the server ending the response (the package ended the
 * stream), or the server destroying the socket with neither (a timeout, a slow reader's abort).
 * Read when `close` fires, from the response and its socket, by one shared listener (`this` is
 * the response), so that an idle stream keeps no closure of the bench's.
 */
const closes = new Map<string, { count: number; first: number; last: number }>()
function onEventsClose(this: ServerResponse): void {
  const socket = (this.req as IncomingMessage).socket as IncomingMessage['socket'] & { errored?: Error | null }
  const error = socket.errored as (Error & { code?: string }) | null | undefined
  const cause = error
    ? `socket error ${error.code ?? error.message}`
    : this.writableEnded
      ? 'server ended the response'
      : socket.readableEnded
        ? 'client closed (FIN)'
        : 'server destroyed the socket (no client FIN, no error)'
  const now = Date.now()
  const entry = closes.get(cause)
  if (entry) {
    entry.count += 1
    entry.last = now
  } else closes.set(cause, { count: 1, first: now, last: now })
}
/** The server, for its node:http timeouts in `stats`. */
const servers: Server[] = []
function watchStreams(server: Server): Server {
  servers.push(server)
  server.prependListener('request', (req: IncomingMessage, res: ServerResponse) => {
    if (req.url?.includes('/events')) res.on('close', onEventsClose)
  })
  return server
}
const options = { store, secret: BENCH_SECRET, stages: BENCH_STAGES, logger, live: { maxStreams: 20_000 } }

const now = new Date()
for (let i = 0; i < runs; i++) await store.insertRun(newRun(`bench-${i}`, now))
// IDLE_WARM_RUNS: runs warm-0… for the bench's warm-up requests (IDLE_WARM_REQUESTS), never streamed.
for (let i = 0; i < Number(process.env['IDLE_WARM_RUNS'] ?? 0); i++) await store.insertRun(newRun(`warm-${i}`, now))

let stats: () => unknown
if (target === 'express') {
  const router = createExpressRouter(options)
  stats = () => router.liveStats()
  reportToParent(watchStreams(createServer(express().use('/api/pipeline', router))))
} else if (target === 'raw') {
  // The floor: node:http holding a response open after one write, none of this package.
  let open = 0
  stats = () => ({ openStreams: open })
  reportToParent(
    watchStreams(createServer((req, res) => {
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
    })),
  )
} else {
  const handlers = createPipelineStatusHandlers(options)
  stats = () => handlers.liveStats()
  reportToParent(
    watchStreams(createServer((req, res) => {
      const controller = new AbortController()
      res.once('close', () => controller.abort())
      void handlers.fetch(toWebRequest(req, 'http://localhost', { signal: controller.signal, directEvents: true } as Parameters<typeof toWebRequest>[2])).then((response) => writeWebResponse(res, response)).catch((error: unknown) => {
        logger.error('idle-server: the fetch handlers or writeWebResponse threw; response destroyed', error)
        res.destroy()
      })
    })),
  )
}
type Gc = (options?: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void
process.on('message', (message) => {
  const gc = (globalThis as { gc?: Gc }).gc
  if (typeof message === 'string' && message.startsWith('snapshot:')) {
    gc?.()
    process.send?.({ snapshot: writeHeapSnapshot(message.slice('snapshot:'.length)) })
  }
  // Before the measured streams open: warm-up streams' closes are not theirs.
  if (message === 'reset-closes') {
    closes.clear()
    process.send?.({ reset: true })
  }
  if (message === 'stats') {
    const { timeout, headersTimeout, requestTimeout, keepAliveTimeout } = servers[0] ?? {}
    process.send?.({
      stats: {
        ...(stats() as object),
        closes: Object.fromEntries(closes),
        logged: Object.fromEntries(logged),
        http: { timeout, headersTimeout, requestTimeout, keepAliveTimeout },
      },
    })
  }
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
