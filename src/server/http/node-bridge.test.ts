import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { EventSink, EventStreamBody } from '../live/event-sink.js'
import { directEventsResponse } from './direct-events.js'
import { writeWebResponse } from './node-bridge.js'

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
