/**
 * How long each attempt takes against its timeout when the server sends the headers and then
 * stalls, or trickles the body: both clients' `timeout` is one deadline over the whole exchange
 * (issue 19 item 1). A `node:http` fault server answers every request with 200 and a JSON body
 * it never finishes; each client sends one stage update with 2 retries, and every attempt is
 * timed by the client, from its start to its timeout error (the TypeScript client's debug line,
 * a wrapper around the Python transport's `send`).
 * Not a speed target: it prints the figures the tests only bound with 5x ceilings.
 *
 * Run: npx tsx bench/attempt-deadline.bench.ts
 */
import { execFile } from 'node:child_process'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { loadavg } from 'node:os'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { PrismaAPIClient } from '../src/client/index.js'

type Mode = { kind: 'stall' } | { kind: 'trickle'; gapMs: number }

async function withFaultServer<T>(mode: Mode, use: (origin: string) => Promise<T>): Promise<T> {
  const timers = new Set<NodeJS.Timeout>()
  const server = createServer((req, res) => {
    req.resume()
    req.on('end', () => {
      const body = Buffer.from(JSON.stringify({ outcome: 'applied', pad: 'x'.repeat(200) }))
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(body.length) })
      res.flushHeaders()
      if (mode.kind === 'stall') return
      let sent = 0
      const timer = setInterval(() => res.write(body.subarray(sent, ++sent)), mode.gapMs)
      timers.add(timer)
      res.socket?.once('close', () => clearInterval(timer))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  try {
    return await use(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)
  } finally {
    for (const timer of timers) clearInterval(timer)
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  }
}

async function typescriptClient(mode: Mode, timeout: number): Promise<number[]> {
  return withFaultServer(mode, async (origin) => {
    const times: number[] = []
    const logger = { warn: () => {}, error: () => {}, debug: (_: string, details?: Record<string, unknown>) => void times.push(details?.['durationMs'] as number) }
    const client = new PrismaAPIClient({ baseUrl: origin, secret: 's', timeoutMs: timeout, retry: { limit: 2, baseDelayMs: 0, maxDelayMs: 0 }, logger })
    await client.markStageProcessing('run_1', 1)
    await client.close({ timeoutMs: 100 })
    return times.filter((t) => t !== undefined)
  })
}

async function pythonClient(mode: Mode, timeout: number): Promise<number[]> {
  const clientDir = fileURLToPath(new URL('../clients/python/', import.meta.url))
  return withFaultServer(mode, async (origin) => {
    const script = [
      'import sys, json, time',
      `sys.path.insert(0, ${JSON.stringify(clientDir)})`,
      'from pipeline_status_client import PrismaAPIClient, RetryPolicy',
      `client = PrismaAPIClient(${JSON.stringify(origin)}, secret="s", timeout=${timeout}, background=False, retry=RetryPolicy(attempts=3, base_delay=0, max_delay=0))`,
      'times, send = [], client._transport.send',
      'def timed(request):',
      '    started = time.monotonic()',
      '    try:',
      '        return send(request)',
      '    finally:',
      '        times.append(round((time.monotonic() - started) * 1000))',
      'client._transport.send = timed',
      'client.mark_stage_processing("run_1", 1)',
      'print(json.dumps(times))',
    ].join('\n')
    const { stdout } = await promisify(execFile)('python3', ['-c', script])
    return JSON.parse(stdout) as number[]
  })
}

const cases: Array<[string, Mode, (mode: Mode) => Promise<number[]>, number]> = [
  ['TypeScript, stall after headers', { kind: 'stall' }, (m) => typescriptClient(m, 1000), 1000],
  ['TypeScript, a byte every 1 s', { kind: 'trickle', gapMs: 1000 }, (m) => typescriptClient(m, 1500), 1500],
  ['Python, stall after headers', { kind: 'stall' }, (m) => pythonClient(m, 1.0), 1000],
  ['Python, a byte every 1.5 s', { kind: 'trickle', gapMs: 1500 }, (m) => pythonClient(m, 2.0), 2000],
]

console.log(`load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`)
console.log('| client, server | timeout | each attempt (ms) |')
console.log('| --- | --- | --- |')
for (const [name, mode, run, timeout] of cases) {
  const times = await run(mode)
  console.log(`| ${name} | ${timeout} ms | ${times.join(', ')} |`)
  if (times.length !== 3 || times.some((t) => t < timeout - 5 || t > 5 * timeout)) {
    console.error(`${name}: expected 3 attempts of about ${timeout} ms each`)
    process.exitCode = 1
  }
}
