import { EventEmitter } from 'node:events'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import type { EventSink, EventStreamBody } from '../live/event-sink.js'
import { directEventsResponse } from './direct-events.js'
import { ConnectionDrain, DRAIN_IDLE_MS, writeWebResponse } from './node-bridge.js'

/** Headers with one ordinary header, a header given twice (joined) and two cookies (kept apart). */
function answerHeaders(contentType: string): Headers {
  const headers = new Headers({ 'content-type': contentType, 'x-one': 'a' })
  headers.append('x-twice', '1')
  headers.append('x-twice', '2')
  headers.append('set-cookie', 'a=1; Path=/')
  headers.append('set-cookie', 'b=2; Path=/')
  return headers
}

/** A live stream that writes one event and ends, as a direct-events answer carries it. */
const oneEvent: EventStreamBody = {
  readable: () => {
    throw new Error('not read as a Web stream here')
  },
  attach(sink: EventSink) {
    sink.write('data: x\n\n')
    sink.end()
    return () => {}
  },
}

describe('writeWebResponse copies the headers alike for a written body and a live stream written straight to the response', () => {
  let server: Server
  let origin: string

  beforeAll(async () => {
    server = createServer((req, res) => {
      const response =
        req.url === '/events'
          ? directEventsResponse(oneEvent, { status: 200, headers: answerHeaders('text/event-stream') })
          : new Response('{"ok":true}', { status: 201, headers: answerHeaders('application/json') })
      void writeWebResponse(res, response)
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  })

  afterAll(async () => {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  })

  it.each([
    ['/document', 201, 'application/json', '{"ok":true}'],
    ['/events', 200, 'text/event-stream', 'data: x\n\n'],
  ])('%s', async (path, status, contentType, body) => {
    const response = await fetch(`${origin}${path}`)
    expect(response.status).toBe(status)
    expect(response.headers.get('content-type')).toBe(contentType)
    expect(response.headers.get('x-one')).toBe('a')
    expect(response.headers.get('x-twice')).toBe('1, 2')
    expect(response.headers.getSetCookie()).toEqual(['a=1; Path=/', 'b=2; Path=/'])
    expect(await response.text()).toBe(body)
  })
})

/** A kept-alive connection with one request on it: a socket that counts its `end()` calls, its request and response. */
function connection(): { socket: EventEmitter & { destroyed: boolean; ends: number; end(): void }; req: IncomingMessage; res: ServerResponse } {
  const socket = Object.assign(new EventEmitter(), {
    destroyed: false,
    ends: 0,
    end() {
      socket.ends += 1
    },
  })
  const req = { socket } as unknown as IncomingMessage
  const res = Object.assign(new EventEmitter(), { req }) as unknown as ServerResponse
  return { socket, req, res }
}

describe('ConnectionDrain: shared close listeners', () => {
  afterEach(() => void vi.useRealTimers())

  it("counts a live stream's answer in flight until its response closes, then ends the connection once draining", () => {
    vi.useFakeTimers()
    const drain = new ConnectionDrain()
    const streams = [connection(), connection()]
    for (const { req, res } of streams) {
      drain.begin(req)
      drain.endOnClose(res)
    }
    // One listener per response and per socket, the same function for every one of them.
    const [a, b] = streams.map(({ socket, res }) => ({ socket: socket.listeners('close'), res: res.listeners('close') }))
    expect([a?.socket.length, a?.res.length, b?.socket.length, b?.res.length]).toEqual([1, 1, 1, 1])
    expect(a?.socket[0]).toBe(b?.socket[0])
    expect(a?.res[0]).toBe(b?.res[0])
    drain.drain()
    // Both streams are still open: neither connection is ended.
    vi.advanceTimersByTime(DRAIN_IDLE_MS)
    expect(streams.map(({ socket }) => socket.ends)).toEqual([0, 0])
    // The first stream ends: its connection (and only it) is ended after the short wait for a reconnect.
    streams[0]?.res.emit('close')
    vi.advanceTimersByTime(DRAIN_IDLE_MS)
    expect(streams.map(({ socket }) => socket.ends)).toEqual([1, 0])
  })

  it('forgets a socket once it closes: a later drain does not end it', () => {
    const drain = new ConnectionDrain()
    const open = connection()
    const closed = connection()
    for (const { req } of [open, closed]) {
      drain.begin(req)
      drain.end(req)
    }
    closed.socket.emit('close')
    drain.drain()
    expect([open.socket.ends, closed.socket.ends]).toEqual([1, 0])
  })
})
