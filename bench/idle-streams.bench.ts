/**
 * Memory per idle live stream (issue 31 item 5): a server child (Express, or the fetch handlers
 * through node:http) on a MemoryStore; this process opens IDLE_COUNTS streams (default 1000,
 * 10000) over plain node:http sockets, each read until its snapshot, and asks the child for
 * `process.memoryUsage()` after a full GC before and after. Targets run interleaved
 * (express, fetch, fetch, express per count unless IDLE_ORDER says otherwise).
 *
 *   npx tsx bench/idle-streams.bench.ts
 */
import { fork } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { Agent, request } from 'node:http'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { BENCH_SECRET } from './servers/shared.js'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const counts = (process.env['IDLE_COUNTS'] ?? '1000,10000').split(',').map(Number)
const order = (process.env['IDLE_ORDER'] ?? 'express,fetch,fetch,express').split(',')
const loadavg = () => readFileSync('/proc/loadavg', 'utf8').trim()

interface Child {
  port: number
  ask<T>(message: string, key: string): Promise<T>
  stop(): void
}

/** `IDLE_ORDER` entries `target@before` load the package from `IDLE_BEFORE_SRC` (another commit's src/, for A/B runs). */
async function start(entry: string, runs: number): Promise<Child> {
  const [target, variant] = entry.split('@')
  const before = process.env['IDLE_BEFORE_SRC']
  if (variant === 'before' && !before) throw new Error(`${entry}: set IDLE_BEFORE_SRC to the src/ directory of the commit to compare with`)
  const child = fork(join(root, 'bench/servers/idle-server.ts'), {
    execArgv: ['--expose-gc', '--import', 'tsx'],
    env: { ...process.env, IDLE_TARGET: target, IDLE_RUNS: String(runs), ...(variant === 'before' ? { IDLE_SRC: before } : {}) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  const port = await new Promise<number>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`server exited ${code}`)))
    child.on('message', (m: { port?: number }) => m.port !== undefined && resolve(m.port))
  })
  const ask = <T>(message: string, key: string) =>
    new Promise<T>((resolve) => {
      const on = (m: Record<string, unknown>) => {
        if (key in m) {
          child.off('message', on)
          resolve(m[key] as T)
        }
      }
      child.on('message', on)
      child.send(message)
    })
  return { port, ask, stop: () => child.kill() }
}

const agent = new Agent({ keepAlive: true, maxSockets: Infinity })

function open(port: number, runId: string): Promise<() => void> {
  return new Promise((resolve, reject) => {
    const req = request({ port, host: '127.0.0.1', path: `/api/pipeline/${runId}/events`, agent, headers: { 'x-webhook-secret': BENCH_SECRET } }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`events answered ${res.statusCode}`))
      let seen = ''
      const onData = (chunk: Buffer) => {
        seen += chunk.toString()
        if (seen.includes('event: snapshot')) {
          res.off('data', onData)
          res.on('data', () => {})
          resolve(() => req.destroy())
        }
      }
      res.on('data', onData)
    })
    req.on('error', reject)
    req.end()
  })
}

/** Issue 31 item 5: an idle stream costs at most this much RSS. */
const TARGET_KB = 30
const rows: string[] = []
const targets: string[] = []
for (const count of counts) {
  for (const target of order) {
    const loadBefore = loadavg()
    const child = await start(target, count)
    const snapshots = process.env['IDLE_SNAPSHOTS']
    if (snapshots) await child.ask('snapshot:' + join(snapshots, `${target}-${count}-before.heapsnapshot`), 'snapshot')
    const before = await child.ask<NodeJS.MemoryUsage>('memory', 'memory')
    const closers: Array<() => void> = []
    for (let i = 0; i < count; i += 200) {
      const batch = Array.from({ length: Math.min(200, count - i) }, (_, j) => open(child.port, `bench-${i + j}`))
      closers.push(...(await Promise.all(batch)))
    }
    await new Promise((r) => setTimeout(r, 1000))
    const after = await child.ask<NodeJS.MemoryUsage>('memory', 'memory')
    const stats = await child.ask<{ openStreams: number }>('stats', 'stats')
    if (snapshots) await child.ask('snapshot:' + join(snapshots, `${target}-${count}-after.heapsnapshot`), 'snapshot')
    for (const close of closers) close()
    child.stop()
    const per = (a: number, b: number) => ((a - b) / count / 1024).toFixed(1)
    const row = `| ${target} | ${count} | ${stats.openStreams} | ${per(after.rss, before.rss)} KB | ${per(after.heapUsed, before.heapUsed)} KB | ${per(after.heapTotal, before.heapTotal)} KB | ${per(after.external + after.arrayBuffers, before.external + before.arrayBuffers)} KB | ${loadBefore.split(' ').slice(0, 3).join(' ')} → ${loadavg().split(' ').slice(0, 3).join(' ')} |`
    console.log(row)
    rows.push(row)
    const rssPerStream = (after.rss - before.rss) / count / 1024
    if (target !== 'raw') targets.push(`${target} at ${count}: ${rssPerStream.toFixed(1)} KB RSS per idle stream, target ≤ ${TARGET_KB} KB ${rssPerStream <= TARGET_KB ? 'met' : 'NOT met'}`)
    await new Promise((r) => setTimeout(r, 500))
  }
}
console.log('\n| target | streams | open | RSS per stream | heap per stream | heap total per stream | external per stream | load before → after |')
console.log('| --- | --- | --- | --- | --- | --- | --- | --- |')
for (const row of rows) console.log(row)
console.log('')
for (const line of targets) console.log(line)
agent.destroy()
