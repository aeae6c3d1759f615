/**
 * A live test server in a child process of its own, so that its memory is measured apart from
 * the test runner's. Started by slow-readers.test.ts with `node --expose-gc --import tsx`;
 * argv[2] is the JSON of the live options; argv[3] `direct` writes streams straight to the Node response. Tells the parent `{ url, port }` once listening, and
 * answers each `'measure'` message with its memory after two full garbage collections.
 */
import { startLiveServer } from './live-server.js'

const live = JSON.parse(process.argv[2] ?? '{}') as Parameters<typeof startLiveServer>[0]
const server = await startLiveServer(live, { directEvents: process.argv[3] === 'direct' })
const gc = (globalThis as { gc?: () => void }).gc
if (!gc) throw new Error('live-server-child needs --expose-gc')

process.on('message', (message) => {
  if (message !== 'measure') return
  gc()
  gc()
  const memory = process.memoryUsage()
  process.send?.({ type: 'memory', memory, stats: server.handlers.liveStats(), warnings: server.warnings })
})
process.on('disconnect', () => void server.close().finally(() => process.exit(0)))
process.send?.({ type: 'ready', url: server.url, port: server.port })
