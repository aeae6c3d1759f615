/**
 * A TCP proxy on 127.0.0.1 that can freeze its open connections without closing them: no FIN, no
 * RST, bytes simply stop flowing both ways, as when a NAT entry or a proxy drops a connection
 * silently (a half-open path). New connections made after `freeze()` pass normally unless
 * `hangNew` is set, which models a path that is down for everyone until `thaw()`.
 */
import { createServer, connect, type Server, type Socket } from 'node:net'

/** A running proxy. */
export interface FreezeProxy {
  /** The proxy's port on 127.0.0.1. */
  port: number
  /** Connections accepted so far (an HTTP client's pool may open spare ones that carry nothing). */
  accepted(): number
  /**
   * The request line (`GET /path HTTP/1.1`) of each HTTP/1.1 request relayed to the target so far,
   * in order: what clients actually sent through the proxy, whatever connections carried it.
   */
  requests(): string[]
  /** Connections currently open (client side). */
  open(): number
  /**
   * Stops relaying on every open connection (bytes are swallowed, sockets stay open).
   * @param options.hangNew also accept but never relay connections made from now on, until `thaw()`
   */
  freeze(options?: { hangNew?: boolean }): void
  /** New connections relay again; connections frozen before stay frozen (as a dropped path does). */
  thaw(): void
  /** Closes the proxy and destroys every connection. */
  close(): Promise<void>
}

/** Starts a proxy to `target` (`host:port` or a port on 127.0.0.1). */
export async function startFreezeProxy(target: { host?: string; port: number }): Promise<FreezeProxy> {
  const pairs = new Set<{ client: Socket; upstream: Socket; frozen: boolean }>()
  let hangNew = false
  let accepted = 0
  const requestLines: string[] = []
  const server: Server = createServer((client) => {
    accepted += 1
    const upstream = connect({ host: target.host ?? '127.0.0.1', port: target.port })
    const pair = { client, upstream, frozen: hangNew }
    pairs.add(pair)
    // Reads request lines from what the client sends: a line starting with an HTTP method and
    // ending in HTTP/1.x after a blank line (or at the connection's start) begins a request.
    // Bodies are not parsed; the tests that count requests send none.
    let pending = ''
    let atMessageStart = true
    client.on('data', (chunk: Buffer) => {
      if (pair.frozen) return
      upstream.write(chunk)
      pending += chunk.toString('latin1')
      for (let end = pending.indexOf('\r\n'); end !== -1; end = pending.indexOf('\r\n')) {
        const line = pending.slice(0, end)
        pending = pending.slice(end + 2)
        if (atMessageStart && /^[A-Z]+ \S+ HTTP\/1\.[01]$/.test(line)) requestLines.push(line)
        atMessageStart = line === ''
      }
    })
    upstream.on('data', (chunk) => {
      if (!pair.frozen) client.write(chunk)
    })
    const end = () => {
      pairs.delete(pair)
      client.destroy()
      upstream.destroy()
    }
    // A frozen path carries no FIN or RST either: closing one side is not passed on.
    client.on('close', () => {
      if (!pair.frozen) end()
      else pairs.delete(pair)
    })
    upstream.on('close', () => {
      if (!pair.frozen) end()
    })
    client.on('error', () => {})
    upstream.on('error', () => {})
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  if (!address || typeof address !== 'object') throw new Error('freeze proxy: no port')
  return {
    port: address.port,
    accepted: () => accepted,
    requests: () => [...requestLines],
    open: () => pairs.size,
    freeze(options = {}) {
      for (const pair of pairs) pair.frozen = true
      hangNew = options.hangNew ?? false
    },
    thaw() {
      hangNew = false
    },
    async close() {
      for (const pair of pairs) {
        pair.client.destroy()
        pair.upstream.destroy()
      }
      pairs.clear()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
