/**
 * One app instance for bench/streamed-text.bench.ts: the handlers of the source tree at
 * `BENCH_SRC_ROOT` (this repository by default; an extracted older commit for the A/B), with
 * PrismaStore on real PostgreSQL, served by that tree's own Node bridge. Counts the run reads the
 * live streams make (with and without the streamed text, and the text's bytes) and answers
 * `stats` over IPC with them and `process.cpuUsage()`.
 */
import { createServer } from 'node:http'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { PrismaPg } from '@prisma/adapter-pg'
import pg from 'pg'
import { PrismaClient } from '../../src/generated/prisma/client.js'
import { BENCH_SECRET, databaseUrl, POOL_SIZE, reportToParent } from './shared.js'

interface Snapshot {
  stages: Array<{ output: string | null; streamedOutput?: boolean }>
}
type Reader = (...args: unknown[]) => Promise<unknown>

const root = process.env['BENCH_SRC_ROOT'] ?? join(import.meta.dirname, '../..')
const load = (path: string) => import(pathToFileURL(join(root, path)).href)
const server = await load('src/server/index.ts')
const bridge = await load('src/server/http/node-bridge.ts')

const pool = new pg.Pool({ connectionString: databaseUrl(), max: POOL_SIZE })
const prisma = new PrismaClient({ adapter: new PrismaPg(pool) })
const store = server.createPrismaStore({ prisma, pool })
const counts = { withText: 0, withoutText: 0, textBytes: 0, chunkReads: 0, chunkBytes: 0 }
const count = (options: { streamedText?: boolean } | undefined, snapshots: Iterable<Snapshot | null>) => {
  for (const snapshot of snapshots) {
    if (!snapshot) continue
    if (options?.streamedText === false) {
      counts.withoutText += 1
      continue
    }
    counts.withText += 1
    for (const stage of snapshot.stages) if (stage.streamedOutput) counts.textBytes += Buffer.byteLength(stage.output ?? '')
  }
}
const getRun: Reader = store.getRun.bind(store)
store.getRun = async (runId: string, options?: { streamedText?: boolean }) => {
  const snapshot = (await getRun(runId, options)) as Snapshot | null
  count(options, [snapshot])
  return snapshot
}
const getRuns: Reader = store.getRuns.bind(store)
store.getRuns = async (ids: string[], options?: { streamedText?: boolean }) => {
  const snapshots = (await getRuns(ids, options)) as Map<string, Snapshot>
  count(options, snapshots.values())
  return snapshots
}
const chunksSince: Reader = store.getOutputChunksSince.bind(store)
store.getOutputChunksSince = async (runId: string, version: number) => {
  const chunks = (await chunksSince(runId, version)) as Array<{ text: string }>
  counts.chunkReads += 1
  for (const chunk of chunks) counts.chunkBytes += Buffer.byteLength(chunk.text)
  return chunks
}

const handlers = server.createPipelineStatusHandlers({
  store,
  secret: BENCH_SECRET,
  logger: { info: () => {}, warn: () => {}, error: (message: string) => console.error(message) },
  // Own writes reach the streams at once; the version poll stays out of the measurement.
  live: { pollIntervalMs: 600_000 },
})
let origin = ''
const http = createServer((req, res) => {
  void (async () => {
    const gone = new AbortController()
    res.once('close', () => gone.abort())
    const request = bridge.toWebRequest(req, origin, { received: await bridge.readSmallBody(req), signal: gone.signal })
    await bridge.writeWebResponse(res, await handlers.fetch(request))
  })().catch(() => res.destroy())
})
http.once('listening', () => {
  const address = http.address()
  if (address && typeof address === 'object') origin = `http://127.0.0.1:${address.port}`
})
reportToParent(http)
process.on('message', (message) => {
  if (message === 'stats') process.send?.({ stats: { cpu: process.cpuUsage(), ...counts } })
})
