/**
 * The benches' Server-Sent Events subscriber (streamed-text, stage-output, live): one GET with the
 * bench secret, parsed with eventsource-parser, read until `signal` aborts.
 */
import { createParser } from 'eventsource-parser'
import { BENCH_SECRET } from './servers/shared.js'

/**
 * Opens the stream at `url` and calls `onEvent(name, data, at)` for every event, `name` being the
 * event's `event:` field (`message` without one) and `at` the `performance.now()` milliseconds of
 * its arrival, taken before anything else. Resolves once an event named `readyOn` arrived (after
 * `onEvent` saw it); never resolves if none does. Throws `<url> answered <status>` on any status
 * but 200. The body is read in the background until `signal` aborts (the end of a phase or round).
 */
export async function openEventStream(url: string, readyOn: string, onEvent: (name: string, data: string, at: number) => void, signal: AbortSignal): Promise<void> {
  const response = await fetch(url, { headers: { 'X-Webhook-Secret': BENCH_SECRET }, signal })
  if (response.status !== 200) throw new Error(`${url} answered ${response.status}`)
  let ready!: () => void
  const arrived = new Promise<void>((r) => (ready = r))
  const parser = createParser({
    onEvent: (event) => {
      const at = performance.now()
      const name = event.event ?? 'message'
      onEvent(name, event.data, at)
      if (name === readyOn) ready()
    },
  })
  void (async () => {
    const decoder = new TextDecoder()
    try {
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) parser.feed(decoder.decode(chunk, { stream: true }))
    } catch {
      // Aborted at the end of the phase or round.
    }
  })()
  await arrived
}
