/**
 * Memory per idle live stream (issue 31 item 5): a server child (Express, or the fetch handlers
 * through node:http) on a MemoryStore; this process opens IDLE_COUNTS streams (default 1000,
 * 10000) over plain node:http sockets, each read until its snapshot, and asks the child for
 * `process.memoryUsage()` before and after, both after two full GCs (`gc`, the figure of earlier
 * rounds) and after a memory-reducing GC (`reduced`: the young generation shrunk back, as V8's
 * memory reducer leaves an idle server). Targets run interleaved (express, fetch, fetch, express
 * per count unless IDLE_ORDER says otherwise).
 *
 *   npx tsx bench/idle-streams.bench.ts
 *   IDLE_BUILT=1 npx tsx bench/idle-streams.bench.ts   # the package built by esbuild as dist/ is (no tsx)
 *   IDLE_KINDS=run,set npx tsx bench/idle-streams.bench.ts   # also set streams (GET /events?run=…)
 *   IDLE_WARMUP=1000 npx tsx bench/idle-streams.bench.ts   # a warm server: 1,000 streams opened and closed first
 *   IDLE_WARM_REQUESTS=2000 npx tsx bench/idle-streams.bench.ts   # a server that has served 2,000 ordinary requests first
 *   IDLE_WARM_REQUESTS=2000 IDLE_ORDER=express,express+warm,express+warm,express …   # cold and warm interleaved: only `+warm` entries are warmed
 *   IDLE_WARM_CONCURRENCY=10 …   # the warm-up's requests 10 at a time (default OPEN_BATCH, the streams' own concurrency)
 *   IDLE_WARM_KEEP=1 …   # the warm-up's connections stay open, idle, until after the measure
 *   IDLE_ORDER=express,express:MALLOC_ARENA_MAX=2,express:--no-concurrent-recompilation …   # per-entry environment and node flags after `:`
 *   IDLE_MALLOC=1 …   # also where the RSS went: V8's heap spaces, and glibc malloc's arenas read by gdb's `malloc_stats()`
 *
 * No stream closes unseen: each row's `open` column is the server's count and this client's, and
 * a row where any stream closed before the measure gets a `DROPPED` line (and the bench exits 1):
 * how many, why as each side saw it (the peer's FIN, a socket error and its code, the server ending
 * the response or destroying the socket), when (seconds after the last stream opened), what the
 * server logged, and its node:http timeouts. Phases go to stderr with the time and load
 * (IDLE_PROGRESS=0 silences them), so that a stalled row shows where.
 */
import { execFileSync, fork } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { Agent, request } from 'node:http'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { BENCH_SECRET, BENCH_STAGES } from './servers/shared.js'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const counts = (process.env['IDLE_COUNTS'] ?? '1000,10000').split(',').map(Number)
const order = (process.env['IDLE_ORDER'] ?? 'express,fetch,fetch,express').split(',')
const kinds = (process.env['IDLE_KINDS'] ?? 'run').split(',') as Array<'run' | 'set'>
const built = process.env['IDLE_BUILT'] === '1'
const loadavg = () => readFileSync('/proc/loadavg', 'utf8').trim()
/** Each phase of a row on stderr, with the time and load (IDLE_PROGRESS=0 to silence): a row that stalls shows where. */
const progress = (what: string) => {
  if (process.env['IDLE_PROGRESS'] !== '0') console.error(`[idle] ${new Date().toISOString().slice(11, 23)} ${what} (load ${loadavg().split(' ').slice(0, 3).join(' ')})`)
}

/**
 * IDLE_BUILT=1: the package and the server bundled by esbuild as tsup builds dist/ (ESM, node22,
 * no keepNames; packages external), run by plain node: what users run, not src/ under tsx.
 * Written under node_modules/.cache so that the bundles find express. Returns the server's path.
 */
const builds = new Map<string, string>()
async function buildServer(src: string): Promise<{ server: string; pkg: string }> {
  const { build } = await import('esbuild')
  const dir = join(root, 'node_modules/.cache/idle-bench', src === join(root, 'src') ? 'current' : 'before')
  mkdirSync(dir, { recursive: true })
  const entry = join(dir, 'pkg.ts')
  writeFileSync(
    entry,
    ['express/index.ts', 'server/index.ts', 'server/http/node-bridge.ts', 'core/state-machine.ts'].map((path) => `export * from ${JSON.stringify(join(src, path))}\n`).join(''),
  )
  const common = { bundle: true, format: 'esm', platform: 'node', target: 'node22', packages: 'external', logLevel: 'error' } as const
  await build({ ...common, entryPoints: [entry], outfile: join(dir, 'pkg.mjs') })
  if (!builds.has('server')) {
    await build({ ...common, entryPoints: [join(root, 'bench/servers/idle-server.ts')], outfile: join(dir, '..', 'idle-server.mjs') })
    builds.set('server', join(dir, '..', 'idle-server.mjs'))
  }
  return { server: builds.get('server') as string, pkg: join(dir, 'pkg.mjs') }
}

interface Child {
  port: number
  ask<T>(message: string, key: string): Promise<T>
  /** IDLE_MALLOC=1: glibc malloc's arenas of the server, read by gdb; `undefined` otherwise. */
  malloc(): Promise<MallocArenas | undefined>
  stop(): void
}

/** Bytes glibc malloc holds from the system and has in use: the main thread's arena (`main`) and all other threads' arenas (`threads`). */
interface MallocArenas {
  main: { system: number; inUse: number }
  threads: { system: number; inUse: number }
}

const mallocDiagnostics = process.env['IDLE_MALLOC'] === '1'

/**
 * Parses what glibc's `malloc_stats()` prints (to the server's stderr): one `Arena N:` block per
 * arena, `system bytes` and `in use bytes` each; arena 0 is the main thread's (the brk heap), the
 * others are the threads' (V8's compiler and GC workers, libuv's pool; anonymous mappings).
 */
function parseMallocStats(text: string): MallocArenas {
  const arenas = [...text.matchAll(/Arena (\d+):\s*\nsystem bytes\s*=\s*(\d+)\s*\nin use bytes\s*=\s*(\d+)/g)]
  if (arenas.length === 0) throw new Error(`IDLE_MALLOC=1: no malloc_stats() output from the server (is gdb installed and may it attach?): ${JSON.stringify(text.slice(0, 200))}`)
  const sum = (rows: RegExpExecArray[]) => ({ system: rows.reduce((n, r) => n + Number(r[2]), 0), inUse: rows.reduce((n, r) => n + Number(r[3]), 0) })
  return { main: sum(arenas.filter((r) => r[1] === '0')), threads: sum(arenas.filter((r) => r[1] !== '0')) }
}

/**
 * `IDLE_ORDER` entries `target@before` load the package from `IDLE_BEFORE_SRC` (another commit's
 * src/, for A/B runs); `target:NAME=value:--flag` gives that server one more environment variable
 * or node flag per `:`-separated item (a deployment setting compared with the default, interleaved).
 */
async function start(entry: string, runs: number): Promise<Child> {
  const [pkg, ...settings] = entry.split(':')
  const [target, variant] = (pkg as string).split('@')
  const flags = settings.filter((item) => item.startsWith('--'))
  const env = Object.fromEntries(settings.filter((item) => !item.startsWith('--')).map((item) => item.split('=') as [string, string]))
  const before = process.env['IDLE_BEFORE_SRC']
  if (variant === 'before' && !before) throw new Error(`${entry}: set IDLE_BEFORE_SRC to the src/ directory of the commit to compare with`)
  const src = variant === 'before' ? (before as string) : join(root, 'src')
  const bundle = built ? await buildServer(src) : undefined
  const child = fork(bundle ? bundle.server : join(root, 'bench/servers/idle-server.ts'), {
    // IDLE_NODE_FLAGS: more flags for the server (e.g. --max-semi-space-size=1, to see what the young generation's growth costs).
    execArgv: [...(bundle ? ['--expose-gc'] : ['--expose-gc', '--import', 'tsx']), ...(process.env['IDLE_NODE_FLAGS']?.split(' ').filter(Boolean) ?? []), ...flags],
    env: { ...process.env, ...env, IDLE_TARGET: target, IDLE_RUNS: String(runs), IDLE_WARM_RUNS: String(WARM_RUNS), ...(bundle ? { IDLE_PKG: bundle.pkg } : variant === 'before' ? { IDLE_SRC: before } : {}) },
    stdio: ['ignore', 'inherit', mallocDiagnostics ? 'pipe' : 'inherit', 'ipc'],
  })
  // IDLE_MALLOC=1: the server's stderr is read here, so that malloc_stats()' report can be parsed;
  // everything else it writes is passed on.
  let stderr = ''
  let mallocReport = ''
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString()
    const lines = stderr.split('\n')
    stderr = lines.pop() as string
    for (const line of lines) {
      if (/^(Arena \d+:|system bytes|in use bytes|Total \(incl\. mmap\):|max mmap)/.test(line)) mallocReport += line + '\n'
      else process.stderr.write(line + '\n')
    }
  })
  const malloc = async (): Promise<MallocArenas | undefined> => {
    if (!mallocDiagnostics) return undefined
    mallocReport = ''
    // gdb stops the server while it calls malloc_stats(); the report reaches the pipe after gdb detaches.
    execFileSync('gdb', ['-p', String(child.pid), '-batch', '-ex', 'call (void)malloc_stats()'], { stdio: 'ignore', timeout: 30_000 })
    const deadline = Date.now() + 5_000
    while (!/max mmap bytes/.test(mallocReport)) {
      if (Date.now() > deadline) throw new Error(`IDLE_MALLOC=1: malloc_stats() printed no complete report within 5 s: ${JSON.stringify(mallocReport.slice(0, 200))}`)
      await new Promise((r) => setTimeout(r, 20))
    }
    return parseMallocStats(mallocReport)
  }
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
  return { port, ask, malloc, stop: () => child.kill() }
}

const agent = new Agent({ keepAlive: true, maxSockets: Infinity })

/**
 * Every stream this process opened that closed before the bench closed it, by cause, as the
 * client saw it: the server's FIN (`server ended the stream`), a socket error (its code), or
 * neither (`closed with no FIN and no error`: this side's own socket went away). Each with the
 * time since the streams were all open; reported per row, so no stream closes unseen.
 */
interface Closes {
  /** When the last stream of the row opened (epoch ms): closes are timed from it. */
  openedAt: number
  byCause: Map<string, number[]>
}

/** Opens a run's stream (`kind` run) or a set stream of that one run (`kind` set), read until its snapshot; closes before the bench's own go to `closes`. */
function open(port: number, runId: string, kind: 'run' | 'set', closes: Closes): Promise<() => void> {
  const path = kind === 'run' ? `/api/pipeline/${runId}/events` : `/api/pipeline/events?run=${runId}`
  return new Promise((resolve, reject) => {
    let opened = false
    let closedByBench = false
    let serverEnded = false
    let error: (Error & { code?: string }) | undefined
    const req = request({ port, host: '127.0.0.1', path, agent, headers: { 'x-webhook-secret': BENCH_SECRET } }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`events answered ${res.statusCode}`))
      let seen = ''
      const onData = (chunk: Buffer) => {
        seen += chunk.toString()
        if (seen.includes('event: snapshot')) {
          res.off('data', onData)
          res.on('data', () => {})
          opened = true
          resolve(() => {
            closedByBench = true
            req.destroy()
          })
        }
      }
      res.on('data', onData)
      // The server ended the response (its last chunk) or the socket (FIN).
      res.on('end', () => (serverEnded = true))
      res.socket.on('end', () => (serverEnded = true))
      res.on('close', () => {
        if (!opened || closedByBench) return
        const cause = error ? `socket error ${error.code ?? error.message}` : serverEnded ? 'server ended the stream' : 'closed with no FIN and no error'
        const at = closes.byCause.get(cause) ?? []
        at.push(Date.now())
        closes.byCause.set(cause, at)
      })
      res.on('error', (e) => (error ??= e))
    })
    req.on('error', (e) => {
      error ??= e
      if (!opened) reject(e)
    })
    req.end()
  })
}

/** Runs the server seeds besides bench-*, for the warm-up requests (`warm-0`…): the streamed runs stay untouched. */
const WARM_RUNS = 100

/**
 * IDLE_WARM_REQUESTS=n: the server serves n ordinary requests, none a stream, before the first
 * measure, as a production server has before streams open: per 10, three stage updates, one
 * heartbeat, one run list and five status reads, on runs `warm-*` only, IDLE_WARM_CONCURRENCY at a
 * time (default {@link OPEN_BATCH}, the concurrency the streams open with) over their own
 * keep-alive connections, closed afterwards (IDLE_WARM_KEEP=1: left open and idle until the caller
 * closes them after the measure, so that the streams cannot reuse what closed connections freed:
 * sockets, parsers, their native state). Not streams opened and closed: those would free the
 * very memory the measured streams then reuse. Every answer must be 2xx. Returns what closes the
 * connections (a no-op once they are closed).
 */
async function warmRequests(port: number, n: number, concurrency: number, keep: boolean): Promise<() => void> {
  const warmAgent = new Agent({ keepAlive: true, maxSockets: concurrency })
  const one = (k: number) =>
    new Promise<void>((resolve, reject) => {
      const runId = `warm-${k % WARM_RUNS}`
      const stageNumber = 1 + (Math.floor(k / WARM_RUNS) % (BENCH_STAGES.length - 1))
      const kind = k % 10
      const [method, path, body] =
        kind < 3
          ? ['POST', `/api/pipeline/${runId}/stage-update`, JSON.stringify({ stageNumber, stageName: `Stage ${stageNumber}`, status: 'PROCESSING', output: `step ${k}` })]
          : kind === 3
            ? ['POST', `/api/pipeline/${runId}/heartbeat`, '{}']
            : kind === 4
              ? ['GET', '/api/pipeline/runs?limit=20', undefined]
              : ['GET', `/api/pipeline/${runId}/status`, undefined]
      const headers: Record<string, string | number> = { 'x-webhook-secret': BENCH_SECRET }
      if (body !== undefined) Object.assign(headers, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
      const req = request({ port, host: '127.0.0.1', method, path, agent: warmAgent, headers }, (res) => {
        res.resume()
        res.on('end', () => (res.statusCode !== undefined && res.statusCode < 300 ? resolve() : reject(new Error(`${method} ${path} answered ${res.statusCode}`))))
      })
      req.on('error', reject)
      req.end(body)
    })
  let next = 0
  await Promise.all(
    Array.from({ length: Math.min(concurrency, n) }, async () => {
      while (next < n) await one(next++)
    }),
  )
  const close = () => warmAgent.destroy()
  if (keep) return close
  close()
  // Let the server see its side of the connections close before the first measure.
  await new Promise((r) => setTimeout(r, 500))
  return () => {}
}

/** How many streams {@link openMany} opens at a time; also the warm-up's default concurrency. */
const OPEN_BATCH = 200

/** Opens `count` streams of runs bench-0… ({@link OPEN_BATCH} at a time); returns what closes each, and where the early closes go. */
async function openMany(port: number, count: number, kind: 'run' | 'set'): Promise<{ closers: Array<() => void>; closes: Closes }> {
  const closes: Closes = { openedAt: 0, byCause: new Map() }
  const closers: Array<() => void> = []
  for (let i = 0; i < count; i += OPEN_BATCH) {
    const batch = Array.from({ length: Math.min(OPEN_BATCH, count - i) }, (_, j) => open(port, `bench-${i + j}`, kind, closes))
    closers.push(...(await Promise.all(batch)))
  }
  closes.openedAt = Date.now()
  return { closers, closes }
}

/** What the server child answers to `stats`: its live streams' counts, and why its streams' responses closed (`idle-server.ts`). */
interface ServerStats {
  openStreams: number
  slowStreamsClosed?: number
  closes: Record<string, { count: number; first: number; last: number }>
  logged: Record<string, number>
  http: Record<string, number | undefined>
}

/**
 * A stream must not close unseen: when the server's open count or this process's is below the
 * streams opened, one line says how many closed, why (as each side saw it), when (seconds after
 * the last stream opened), what the server logged, and the node:http timeouts it ran with.
 * `undefined` when every stream was still open at the measure.
 */
function describeDrop(name: string, count: number, stats: ServerStats, closes: Closes, closedEarly: number): string | undefined {
  const serverClosed = Object.values(stats.closes).reduce((n, c) => n + c.count, 0)
  if (stats.openStreams === count && closedEarly === 0 && serverClosed === 0) return undefined
  const seconds = (t: number) => ((t - closes.openedAt) / 1000).toFixed(1)
  const client = [...closes.byCause].map(([cause, at]) => `${at.length} ${cause} (${seconds(Math.min(...at))}…${seconds(Math.max(...at))} s)`)
  const server = Object.entries(stats.closes).map(([cause, c]) => `${c.count} ${cause} (${seconds(c.first)}…${seconds(c.last)} s)`)
  const logged = Object.entries(stats.logged).map(([message, n]) => `${n}× ${message}`)
  return [
    `DROPPED: ${name} at ${count}: ${count - stats.openStreams} closed on the server (${stats.slowStreamsClosed ?? 0} as slow readers), ${closedEarly} seen closed by this client, before the measure`,
    `  client saw: ${client.join('; ') || 'none'}`,
    `  server saw: ${server.join('; ') || 'none'}`,
    `  server logged: ${logged.join('; ') || 'nothing'}`,
    `  node:http: ${JSON.stringify(stats.http)}; load ${loadavg()}`,
  ].join('\n')
}
const drops: string[] = []

/** Issue 31 item 5: an idle stream costs at most this much RSS. */
const TARGET_KB = 30
const rows: string[] = []
const targets: string[] = []
type Memory = { gc: NodeJS.MemoryUsage; reduced: NodeJS.MemoryUsage; spaces: Record<string, number> }
/** Per target, where each stream's RSS went (V8's heap spaces; malloc's arenas with IDLE_MALLOC=1). */
const breakdown: string[] = []
for (const kind of kinds) {
  for (const count of counts) {
    for (const entry of order) {
      const loadBefore = loadavg()
      // `target+warm`: this entry only gets IDLE_WARM_REQUESTS; without any `+warm` entry, every entry does.
      const target = entry.replace(/\+warm(?=$|:)/, '')
      const warmed = /\+warm($|:)/.test(entry) || !order.some((e) => /\+warm($|:)/.test(e))
      progress(`${entry} at ${count}: starting the server`)
      const child = await start(target, count)
      // IDLE_WARMUP=n: n streams opened and closed before the first measure (a server that has
      // served streams before: its JIT code, young generation and allocator arenas already grown).
      const warmup = Math.min(Number(process.env['IDLE_WARMUP'] ?? 0), count)
      const warmRequestCount = warmed ? Number(process.env['IDLE_WARM_REQUESTS'] ?? 0) : 0
      const warmConcurrency = Number(process.env['IDLE_WARM_CONCURRENCY'] ?? OPEN_BATCH)
      const warmKeep = process.env['IDLE_WARM_KEEP'] === '1'
      const closeWarm = warmRequestCount > 0 ? await warmRequests(child.port, warmRequestCount, warmConcurrency, warmKeep) : () => {}
      if (warmup > 0) {
        for (const close of (await openMany(child.port, warmup, kind)).closers) close()
        const deadline = Date.now() + 10_000
        while ((await child.ask<{ openStreams: number }>('stats', 'stats')).openStreams > 0) {
          if (Date.now() > deadline) throw new Error('the warm-up streams did not close within 10 s')
          await new Promise((r) => setTimeout(r, 50))
        }
      }
      const snapshots = process.env['IDLE_SNAPSHOTS']
      if (snapshots) await child.ask('snapshot:' + join(snapshots, `${target}-${kind}-${count}-before.heapsnapshot`), 'snapshot')
      const before = await child.ask<Memory>('memory', 'memory')
      const mallocBefore = await child.malloc()
      await child.ask('reset-closes', 'reset')
      progress(`${entry} at ${count}: opening ${count} streams`)
      const { closers, closes } = await openMany(child.port, count, kind)
      progress(`${entry} at ${count}: open; idle for ${Number(process.env['IDLE_SETTLE_MS'] ?? 1000)} ms`)
      // IDLE_SETTLE_MS: how long the streams stay idle before the measure (default 1 s).
      await new Promise((r) => setTimeout(r, Number(process.env['IDLE_SETTLE_MS'] ?? 1000)))
      progress(`${entry} at ${count}: measuring`)
      const after = await child.ask<Memory>('memory', 'memory')
      const mallocAfter = await child.malloc()
      const stats = await child.ask<ServerStats>('stats', 'stats')
      const closedEarly = [...closes.byCause.values()].reduce((n, at) => n + at.length, 0)
      if (snapshots) await child.ask('snapshot:' + join(snapshots, `${target}-${kind}-${count}-after.heapsnapshot`), 'snapshot')
      for (const close of closers) close()
      closeWarm()
      child.stop()
      const per = (key: keyof NodeJS.MemoryUsage, gc: keyof Memory = 'gc') => ((after[gc][key] - before[gc][key]) / count / 1024).toFixed(1)
      const name = `${target}${built ? ' (built)' : ' (tsx)'}${kind === 'set' ? ' set' : ''}${warmup > 0 ? ' warm' : ''}${warmRequestCount > 0 ? ` after ${warmRequestCount} requests ${warmConcurrency} at a time${warmKeep ? ', kept open' : ''}` : ''}`
      const row = `| ${name} | ${count} | ${stats.openStreams} / ${count - closedEarly} | ${per('rss')} KB | ${per('rss', 'reduced')} KB | ${per('heapUsed')} KB | ${per('heapTotal')} KB | ${per('heapTotal', 'reduced')} KB | ${(before.gc.rss / 1048576).toFixed(1)} / ${(before.reduced.rss / 1048576).toFixed(1)} MB | ${loadBefore.split(' ').slice(0, 3).join(' ')} → ${loadavg().split(' ').slice(0, 3).join(' ')} |`
      console.log(row)
      rows.push(row)
      const drop = describeDrop(name, count, stats, closes, closedEarly)
      if (drop) {
        console.log(drop)
        drops.push(drop)
      }
      const kb = (a: number, b: number) => ((b - a) / count / 1024).toFixed(1)
      const space = (name: string) => kb(before.spaces[name] ?? 0, after.spaces[name] ?? 0)
      // The young generation is sized by V8 from the allocation rate, not by what the streams keep
      // (after two full GCs it holds none of it): a cold server grows it while the streams open, a
      // warmed one may shrink it. RSS less that resizing is what the streams' memory is.
      const lessYoung = (after.gc.rss - before.gc.rss - ((after.spaces['new_space'] ?? 0) - (before.spaces['new_space'] ?? 0))) / count / 1024
      const held = (m: MallocArenas, arena: 'main' | 'threads') => m[arena].system - m[arena].inUse
      const mallocColumns =
        mallocBefore && mallocAfter
          ? `${kb(mallocBefore.main.inUse, mallocAfter.main.inUse)} KB | ${kb(held(mallocBefore, 'main'), held(mallocAfter, 'main'))} KB | ${kb(mallocBefore.threads.inUse, mallocAfter.threads.inUse)} KB | ${kb(held(mallocBefore, 'threads'), held(mallocAfter, 'threads'))} KB`
          : '– | – | – | –'
      breakdown.push(`| ${name} | ${count} | ${per('rss')} KB | ${space('new_space')} KB | ${lessYoung.toFixed(1)} KB | ${space('old_space')} / ${space('code_space')} KB | ${mallocColumns} |`)
      const rss = (gc: keyof Memory) => (after[gc].rss - before[gc].rss) / count / 1024
      const met = (kb: number) => `${kb.toFixed(1)} KB${kb <= TARGET_KB ? '' : ' (NOT met)'}`
      if (!target.startsWith('raw')) targets.push(`${name} at ${count}: RSS per idle stream after gc ${met(rss('gc'))}, after a memory-reducing gc ${met(rss('reduced'))}, less the young generation's resizing ${met(lessYoung)}; target ≤ ${TARGET_KB} KB`)
      await new Promise((r) => setTimeout(r, 500))
    }
  }
}
console.log('\n| target | streams | open (server / client) | RSS per stream (gc) | RSS per stream (reduced) | heap used per stream | heap total (gc) | heap total (reduced) | RSS before (gc / reduced) | load before → after |')
console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |')
for (const row of rows) console.log(row)
console.log('')
console.log(`Where the RSS went, per stream (after two full GCs; V8's heap spaces' resident bytes; malloc ${mallocDiagnostics ? "by gdb, glibc's malloc_stats()" : 'with IDLE_MALLOC=1'}):\n`)
console.log("| target | streams | RSS (gc) | young generation resized | RSS less that | V8 old / code space | malloc in use, main thread | malloc held free, main arena | malloc in use, other threads | malloc held free, other threads' arenas |")
console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |')
for (const row of breakdown) console.log(row)
console.log('')
for (const line of targets) console.log(line)
if (drops.length > 0) {
  console.log(`\nSTREAMS CLOSED BEFORE THE MEASURE in ${drops.length} row(s); those rows' figures are per stream opened, not per stream open:\n`)
  for (const drop of drops) console.log(drop)
  process.exitCode = 1
}
agent.destroy()
