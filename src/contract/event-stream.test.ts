import { describe, expect, it } from 'vitest'
import { streamOnce, type StreamErrors } from './event-stream.js'

const errors: StreamErrors = {
  silent: () => new Error('silent'),
  refused: async (response) => new Error(`refused ${response.status}`),
  notEventStream: () => new Error('not an event stream'),
  tooLarge: (maxChars) => new Error(`over ${maxChars}`),
}

/** A fetch answering one event stream made of `chunks`, then leaving it open. */
function answering(chunks: string[]): typeof globalThis.fetch {
  return (async () =>
    new Response(
      new ReadableStream<Uint8Array>({
        start(controller) {
          for (const chunk of chunks) controller.enqueue(new TextEncoder().encode(chunk))
        },
      }),
      { headers: { 'content-type': 'text/event-stream' } },
    )) as typeof globalThis.fetch
}

function attempt(fetch: typeof globalThis.fetch, onEvent: (data: string) => void) {
  return streamOnce({
    url: 'http://h/events',
    fetch,
    signal: new AbortController().signal,
    headers: {},
    maxEventChars: 1000,
    errors,
    keepAliveMs: () => 60_000,
    onKeepAlive: () => {},
    onOpen: () => {},
    onEvent: (message) => {
      onEvent(message.data)
      return false
    },
  })
}

describe('the event stream reader', () => {
  it('bounds what one event may hold: a line that never ends, or data over the bound, is an error and not memory', async () => {
    const seen: string[] = []
    // A server that never ends its line: 100 chunks of 100 characters.
    await expect(attempt(answering(['data: ', ...Array.from({ length: 100 }, () => 'x'.repeat(100))]), (data) => seen.push(data))).rejects.toThrow('over 1000')
    // Many short lines of one event add up too.
    await expect(attempt(answering([`event: e\n${'data: yyyyyyyyyy\n'.repeat(200)}`]), (data) => seen.push(data))).rejects.toThrow('over 1000')
    expect(seen).toEqual([])
  })

  it('reads events under the bound, one after another', async () => {
    const seen: string[] = []
    const fetch = (async () =>
      new Response(`event: a\ndata: ${'z'.repeat(900)}\n\nevent: b\ndata: ${'z'.repeat(900)}\n\n`, { headers: { 'content-type': 'text/event-stream' } })) as typeof globalThis.fetch
    expect(await attempt(fetch, (data) => seen.push(data))).toBe('dropped')
    expect(seen.map((data) => data.length)).toEqual([900, 900])
  })

  it("tells the subscriber a `: closed <cause> [<runId>]` comment, then ends as a drop; other comments and unknown causes tell nothing", async () => {
    const closed: unknown[] = []
    const keepAlives: number[] = []
    const fetch = (async () =>
      new Response(': keep-alive-ms 5000\n\n: closed later-cause run-1\n\n: closed credential-expired\n\n: closed deleted run-1\n\n', {
        headers: { 'content-type': 'text/event-stream' },
      })) as typeof globalThis.fetch
    const outcome = await streamOnce({
      url: 'http://h/events',
      fetch,
      signal: new AbortController().signal,
      headers: {},
      errors,
      keepAliveMs: () => 60_000,
      onKeepAlive: (ms) => void keepAlives.push(ms),
      onClosed: (comment) => void closed.push(comment),
      onOpen: () => {},
      onEvent: () => false,
    })
    expect(outcome).toBe('dropped')
    expect(keepAlives).toEqual([5000])
    expect(closed).toEqual([
      { cause: 'credential-expired', runId: undefined },
      { cause: 'deleted', runId: 'run-1' },
    ])
  })
})
