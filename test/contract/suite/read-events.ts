/** Reads a live status stream (`text/event-stream`) in the background, for the live scenarios and tests. */
import { createParser, type EventSourceMessage } from 'eventsource-parser'

/** A live status stream being read: events arrive in `events`; `next()` waits for the next one. */
export interface EventReader {
  response: Response
  events: EventSourceMessage[]
  comments: string[]
  retries: number[]
  /** The next event not yet returned by `next`; rejects when the stream ends first or after 5 s. */
  next(): Promise<EventSourceMessage>
  /** Resolves when the server closed the stream. */
  closed: Promise<void>
  /** Stops reading (the client goes away). */
  cancel(): Promise<void>
}

/** Reads a `text/event-stream` response in the background. */
export function readEvents(response: Response): EventReader {
  const events: EventSourceMessage[] = []
  const comments: string[] = []
  const retries: number[] = []
  let wake: (() => void) | undefined
  let done = false
  let taken = 0
  const parser = createParser({
    onEvent: (event) => void (events.push(event), wake?.()),
    onComment: (comment) => void (comments.push(comment), wake?.()),
    onRetry: (retry) => void retries.push(retry),
  })
  const reader = response.body?.getReader()
  const closed = (async () => {
    const decoder = new TextDecoder()
    try {
      for (;;) {
        const chunk = await reader?.read()
        if (!chunk || chunk.done) break
        parser.feed(decoder.decode(chunk.value, { stream: true }))
      }
    } catch {
      // Cancelled by the test.
    } finally {
      done = true
      wake?.()
    }
  })()
  return {
    response,
    events,
    comments,
    retries,
    closed,
    cancel: async () => {
      await reader?.cancel().catch(() => undefined)
      await closed
    },
    next: () =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`No event within 5 s; got ${events.map((e) => e.event).join(', ')}`)), 5_000)
        const check = () => {
          const event = events[taken]
          if (event) {
            taken += 1
            clearTimeout(timer)
            wake = undefined
            resolve(event)
          } else if (done) {
            clearTimeout(timer)
            reject(new Error(`The stream ended; got ${events.map((e) => e.event).join(', ')}`))
          } else {
            wake = check
          }
        }
        check()
      }),
  }
}
