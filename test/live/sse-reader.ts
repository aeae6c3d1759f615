/**
 * Reads a live status stream over real HTTP, event by event, for tests that check the wire:
 * event names, ids, data, and when the server closed the stream.
 */
import { createParser, type EventSourceMessage } from 'eventsource-parser'

/** A stream being read. */
export interface SseConnection {
  /** The response's status and headers. */
  response: Response
  /** Events received so far, oldest first. */
  events: EventSourceMessage[]
  /** Comment lines received so far. */
  comments: string[]
  /** `retry:` values received. */
  retries: number[]
  /** Resolves when the server ended the stream (or it broke, or was aborted). */
  ended: Promise<void>
  /** Resolves once an event matches. */
  waitFor(predicate: (event: EventSourceMessage) => boolean, timeoutMs?: number): Promise<EventSourceMessage>
  /** Drops the connection from the client's side. */
  abort(): void
}

/** Opens `url` with `headers` and reads it in the background. */
export async function openSse(url: string, headers: Record<string, string> = {}): Promise<SseConnection> {
  const controller = new AbortController()
  const response = await fetch(url, { headers: { Accept: 'text/event-stream', ...headers }, signal: controller.signal })
  const events: EventSourceMessage[] = []
  const comments: string[] = []
  const retries: number[] = []
  const waiters = new Set<() => void>()
  const parser = createParser({
    onEvent: (event) => {
      events.push(event)
      for (const waiter of waiters) waiter()
    },
    onComment: (comment) => void comments.push(comment),
    onRetry: (retry) => void retries.push(retry),
  })
  const ended = (async () => {
    if (!response.body) return
    const reader = response.body.getReader()
    const decoder = new TextDecoder()
    try {
      for (;;) {
        const { done, value } = await reader.read()
        if (done) break
        parser.feed(decoder.decode(value, { stream: true }))
      }
    } catch {
      // Aborted or broken: the test decides what that means.
    } finally {
      for (const waiter of waiters) waiter()
    }
  })()
  let finished = false
  void ended.then(() => (finished = true))
  return {
    response,
    events,
    comments,
    retries,
    ended,
    abort: () => controller.abort(),
    waitFor(predicate, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const found = events.find(predicate)
          if (found) {
            waiters.delete(check)
            clearTimeout(timer)
            resolve(found)
          } else if (finished) {
            waiters.delete(check)
            clearTimeout(timer)
            reject(new Error(`The stream ended without the event; got ${events.map((e) => `${e.event}#${e.id}`).join(', ')}`))
          }
        }
        const timer = setTimeout(() => {
          waiters.delete(check)
          reject(new Error(`No such event within ${timeoutMs} ms; got ${events.map((e) => `${e.event}#${e.id}`).join(', ')}`))
        }, timeoutMs)
        waiters.add(check)
        check()
      })
    },
  }
}
