/**
 * Streamed output on the page's shared connection, against the real handlers (a MemoryStore over
 * a real port): `subscribeToRun` with `share: true` follows its run through the set stream
 * (`GET {base}/events?run=…&view=full`, no run stream of its own), and a stage's text grows chunk
 * by chunk, byte for byte what the runner sent, through progress updates (which leave the text
 * out) and a completion without an output of its own. The wire is read alongside: the text came as
 * `output` events, never inside an `update`. Without Chromium: Node's fetch, recorded.
 */
import { LIVE_EVENTS, type RunStatusResponse, StageOutputEvent, subscribeToRun } from 'pipeline-status-sdk'
import { afterEach, describe, expect, it } from 'vitest'
import { type EventReader, readEvents } from '../contract/suite/read-events.js'
import { until } from './fake-event-fetch.js'
import { LIVE_SECRET, type LiveServer, postJson, startLiveServer } from './live-server.js'

let server: LiveServer | undefined
afterEach(async () => {
  await server?.close()
  server = undefined
})

/** Multibyte text of chunk `i`: ASCII, Latin-1, CJK, an astral emoji, a line break. */
const piece = (i: number) => `Teil ${i} — ü 日本 😀\n`

describe('subscribeToRun on a shared connection, streamed output', () => {
  it("shows a stage's text growing chunk by chunk, equal to what was sent, over the set stream only", async () => {
    server = await startLiveServer({ pollIntervalMs: 50 })
    const { url } = server
    const runId = 'shared-output'
    await postJson(url, '/runs', { id: runId })
    await postJson(url, `/${runId}/stage-update`, { stageNumber: 1, stageName: 'Input Processing', status: 'PROCESSING' })
    const sent = [piece(0)]
    await postJson(url, `/${runId}/stages/1/output`, { seq: 0, text: piece(0) })

    const requested: URL[] = []
    const wires: EventReader[] = []
    const recordingFetch: typeof fetch = async (input, init) => {
      requested.push(new URL(input instanceof Request ? input.url : String(input)))
      const response = await fetch(input, init)
      // What the page received, read alongside it.
      if (response.ok) wires.push(readEvents(response.clone()))
      return response
    }
    const updates: RunStatusResponse[] = []
    const subscription = subscribeToRun(runId, {
      url,
      share: true,
      fetch: recordingFetch,
      headers: { 'X-Webhook-Secret': LIVE_SECRET },
      onUpdate: (status) => void updates.push(status),
    })
    const shown = () => updates.at(-1)?.stages.find((stage) => stage.stageNumber === 1)
    try {
      await until(() => shown()?.output === piece(0), 'the snapshot with the text so far')
      expect(shown()?.outputSeq).toBe(0)
      for (let seq = 1; seq <= 25; seq++) {
        sent.push(piece(seq))
        await postJson(url, `/${runId}/stages/1/output`, { seq, text: piece(seq) })
        // The page shows each chunk appended, one at a time.
        await until(() => shown()?.outputSeq === seq, `chunk ${seq} shown`)
        expect(shown()?.output).toBe(sent.join(''))
      }
      // A progress update leaves the text out on the wire; the page keeps it.
      await postJson(url, `/${runId}/heartbeat`, { stageNumber: 1, progress: { seq: 1, percent: 80 } })
      await until(() => shown()?.progress?.percent === 80, 'the progress update')
      expect(shown()?.output).toBe(sent.join(''))
      // The stage completes without an output of its own: the streamed text is its output.
      await postJson(url, `/${runId}/stage-update`, { stageNumber: 1, stageName: 'Input Processing', status: 'COMPLETED' })
      await until(() => shown()?.status === 'COMPLETED', 'the completion')
      const text = shown()?.output ?? ''
      expect(Buffer.from(text, 'utf8').equals(Buffer.from(sent.join(''), 'utf8'))).toBe(true)
      const status = (await (await fetch(`${url}/${runId}/status`, { headers: { 'X-Webhook-Secret': LIVE_SECRET } })).json()) as RunStatusResponse
      expect(status.stages[0]?.output).toBe(text)

      // Every update the page saw held a prefix of the text: it only ever grew.
      const texts = updates.map((update) => update.stages.find((stage) => stage.stageNumber === 1)?.output ?? '')
      for (const [index, seen] of texts.entries()) {
        expect(sent.join('').startsWith(seen)).toBe(true)
        if (index > 0) expect(seen.length).toBeGreaterThanOrEqual(texts[index - 1]!.length)
      }
      // The set stream served it: one request, the shared one, no run stream of its own.
      const paths = requested.map((request) => `${request.pathname}?${request.searchParams.toString()}`)
      expect(paths).toEqual([`/api/pipeline/events?run=${runId}&view=full`])
      expect(subscription.transport).toBe('stream')
      const wire = wires[0]?.events ?? []
      const outputs = wire.filter((event) => event.event === LIVE_EVENTS.output).map((event) => StageOutputEvent.parse(JSON.parse(event.data)))
      expect(outputs.map((chunk) => [chunk.runId, chunk.seq])).toEqual(sent.slice(1).map((_, index) => [runId, index + 1]))
      expect(outputs.map((chunk) => chunk.text).join('')).toBe(sent.slice(1).join(''))
      const wireUpdates = wire.filter((event) => event.event === LIVE_EVENTS.update)
      expect(wireUpdates.length).toBeGreaterThan(0)
      for (const update of wireUpdates) expect(update.data).not.toContain('Teil')
    } finally {
      subscription.close()
      await subscription.done
      for (const wire of wires) await wire.cancel()
    }
  })
})
