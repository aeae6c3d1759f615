/**
 * Shutting down with open live streams finishes promptly even when clients reconnect on
 * kept-alive sockets (issue 20 item 6). Before, `router.close()` ended the streams, the clients
 * reconnected on the same sockets, got their 503 and kept those sockets alive, so
 * `server.close()` waited for each to time out (Node's `keepAliveTimeout`, renewed by every
 * reconnect: 10–18 s in the report). Now, once `router.close()` is called, every answer says
 * `Connection: close`, the router ends the connections it served as their answers finish, and
 * idle ones at once.
 *
 * The server's `keepAliveTimeout` is set to 120 s here, so a shutdown that waited for kept-alive
 * sockets would take minutes; the ceiling is 10 s for what takes well under 1 s (measured
 * 80–250 ms with 8 subscribers on this machine).
 */
import { once } from 'node:events'
import { Agent, request as httpRequest, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import express from 'express'
import { subscribeToRun } from 'pipeline-status-sdk'
import { createExpressRouter } from 'pipeline-status-sdk/express'
import { MemoryStore } from 'pipeline-status-sdk/server'
import { afterEach, describe, expect, it } from 'vitest'

const SECRET = 'shutdown-secret'
const CEILING_MS = 10_000
const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function startApp() {
  const router = createExpressRouter({
    store: new MemoryStore(),
    secret: SECRET,
    logger: { warn: () => undefined, error: () => undefined },
  })
  const app = express()
  app.use('/api/pipeline', router)
  const server: Server = app.listen(0, '127.0.0.1')
  await once(server, 'listening')
  server.keepAliveTimeout = 120_000
  cleanups.push(() => server.closeAllConnections())
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/pipeline`
  for (let i = 0; i < 8; i++) {
    const response = await fetch(`${base}/runs`, {
      method: 'POST',
      headers: { 'X-Webhook-Secret': SECRET, 'Content-Type': 'application/json' },
      body: JSON.stringify({ id: `run-${i}` }),
    })
    expect(response.status).toBe(201)
  }
  return { router, server, base }
}

/** One request on `agent` (kept-alive sockets); the answer's status, headers and the socket it used. */
function get(agent: Agent, url: string): Promise<{ response: IncomingMessage; body: Promise<string>; socket: Socket }> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(url, { agent, headers: { 'X-Webhook-Secret': SECRET } }, (response) => {
      let text = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => (text += chunk))
      const body = new Promise<string>((done) => response.once('end', () => done(text)))
      resolve({ response, body, socket: response.socket })
    })
    request.once('error', reject)
    request.end()
  })
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve, reject) => server.close((error) => (error ? reject(error) : resolve())))
}

describe('express router: shutdown with open streams', () => {
  it('finishes promptly while subscribers reconnect, and accepts no new stream', async () => {
    const { router, server, base } = await startApp()
    // Reconnecting subscribers (the package's own, on fetch's kept-alive connections).
    const states: string[][] = []
    const subscriptions = Array.from({ length: 8 }, (_, i) => {
      const seen: string[] = []
      states.push(seen)
      return subscribeToRun(`run-${i}`, {
        url: base,
        headers: { 'X-Webhook-Secret': SECRET },
        reconnectDelayMs: 10,
        maxReconnectDelayMs: 50,
        onStateChange: (state) => void seen.push(state),
      })
    })
    cleanups.push(() => subscriptions.forEach((subscription) => subscription.close()))
    // And a client that reconnects at once on its own kept-alive socket.
    const agent = new Agent({ keepAlive: true, maxSockets: 1 })
    cleanups.push(() => agent.destroy())
    const stream = await get(agent, `${base}/run-0/events`)
    expect(stream.response.statusCode).toBe(200)
    await expect.poll(() => subscriptions.every((subscription) => subscription.state === 'live'), { timeout: 10_000 }).toBe(true)

    const started = performance.now()
    const closing = router.close()
    // The stream ends cleanly; the client reconnects on the same socket at once.
    await stream.body
    const reconnect = await get(agent, `${base}/run-0/events`)
    // No new stream: 503 too_many_streams, and the socket closes after it.
    expect(reconnect.response.statusCode).toBe(503)
    expect(reconnect.response.headers['connection']).toBe('close')
    expect(JSON.parse(await reconnect.body)).toMatchObject({ code: 'too_many_streams' })
    await closing
    await closeServer(server)
    const elapsed = performance.now() - started
    expect(elapsed).toBeLessThan(CEILING_MS)
    // The subscribers saw their streams end and are trying again (elsewhere, in production).
    for (const seen of states) expect(seen).toContain('reconnecting')
    // Nothing listens any more.
    await expect(fetch(`${base}/run-0/events`, { headers: { 'X-Webhook-Secret': SECRET } })).rejects.toThrow()
  })

  it('ends idle kept-alive connections at once', async () => {
    const { router, server, base } = await startApp()
    const agent = new Agent({ keepAlive: true, maxSockets: 2 })
    cleanups.push(() => agent.destroy())
    // Two sockets kept alive, idle: an answered status read on each.
    const [first, second] = await Promise.all([get(agent, `${base}/run-1/status`), get(agent, `${base}/run-2/status`)])
    for (const read of [first, second]) {
      expect(read?.response.statusCode).toBe(200)
      expect(read?.response.headers['connection']).toBe('keep-alive')
      await read?.body
    }
    const sockets = [first?.socket, second?.socket] as Socket[]
    expect(sockets[0]).not.toBe(sockets[1])
    await router.close()
    // The router ended both idle connections itself: the server closes without waiting.
    await Promise.all(sockets.map((socket) => (socket.closed ? undefined : once(socket, 'close'))))
    const started = performance.now()
    await closeServer(server)
    expect(performance.now() - started).toBeLessThan(CEILING_MS)
  })
})
