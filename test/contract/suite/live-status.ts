/** Contract scenarios, live status: snapshot, updates, end, reconnects, keep-alives, read access, CORS and the stream cap. */
import { RunEndEvent, RunSnapshotEvent, RunUpdateEvent } from 'pipeline-status-sdk'
import { type AuthorizeInput, createRunReadToken } from 'pipeline-status-sdk/server'
import { describe, expect } from 'vitest'
import { makeStageUpdate } from '../../support/fixtures.js'
import { ALL_STAGES_TO_4, Api, expectProblem, READ_TOKEN_SECRET, type RequestSpec, uniqueRunId } from './harness.js'
import { readEvents } from './read-events.js'
import type { ContractContext } from './use-target.js'

/** Registers this block of the contract suite for one target (see index.ts). */
export function describeLiveStatus({ name, scenario }: ContractContext): void {
  describe(`${name}: live status`, () => {
    const eventsPath = (runId: string) => `/${encodeURIComponent(runId)}/events`
    const open = async (api: Api, runId: string, spec: Partial<RequestSpec> = {}) => {
      const response = await api.send({ path: eventsPath(runId), ...spec })
      expect(response.status).toBe(200)
      expect(response.headers.get('content-type')).toBe('text/event-stream; charset=utf-8')
      expect(response.headers.get('cache-control')).toBe('no-cache, no-transform')
      return readEvents(response)
    }

    scenario('streams a snapshot, then each change as an update, then end, and closes', async (api) => {
      const id = await api.createRun()
      const stream = await open(api, id)
      const snapshot = await stream.next()
      expect(snapshot.event).toBe('snapshot')
      expect(snapshot.id).toBe('0')
      expect(RunSnapshotEvent.parse(JSON.parse(snapshot.data))).toEqual(await api.status(id))
      expect(stream.retries).toEqual([2000])

      const first = await api.stageOk(id, makeStageUpdate({ stageNumber: 1, status: 'PROCESSING', output: '' }))
      const update = await stream.next()
      expect({ event: update.event, id: update.id }).toEqual({ event: 'update', id: '1' })
      expect(RunUpdateEvent.parse(JSON.parse(update.data))).toEqual({ run: first.run, stages: [first.stage] })

      const done = await api.stageOk(id, makeStageUpdate({ stageNumber: 1, status: 'COMPLETED', output: 'one' }))
      const second = await stream.next()
      expect(second.id).toBe('2')
      expect(RunUpdateEvent.parse(JSON.parse(second.data))).toEqual({ run: done.run, stages: [done.stage] })

      for (const update of ALL_STAGES_TO_4.slice(1)) await api.stageOk(id, update)
      const last = await api.stageOk(id, makeStageUpdate({ stageNumber: 5, status: 'COMPLETED', output: 'five' }))
      expect(last.run.status).toBe('COMPLETED')
      // Changes a few milliseconds apart may share an event; the final state always arrives, then end.
      let event = await stream.next()
      const ids = [Number(second.id)]
      while (event.event === 'update') {
        ids.push(Number(event.id))
        event = await stream.next()
      }
      expect(event.event).toBe('end')
      expect(event.id).toBe('6')
      expect(RunEndEvent.parse(JSON.parse(event.data))).toEqual({ run: last.run })
      for (let i = 1; i < ids.length; i++) expect(ids[i]).toBeGreaterThan(ids[i - 1] as number)
      expect(ids.at(-1)).toBe(6)
      await stream.closed
      const merged = stream.events
        .filter((e) => e.event === 'update')
        .flatMap((e) => RunUpdateEvent.parse(JSON.parse(e.data)).stages)
        .filter((stage) => stage.stageNumber === 5)
      expect(merged.at(-1)?.status).toBe('COMPLETED')
    })

    scenario('a reconnect with a Last-Event-ID the run had is brought up to date by one update, without a snapshot', async (api) => {
      const id = await api.createRun()
      const stream = await open(api, id)
      await stream.next()
      await api.stageOk(id, makeStageUpdate({ stageNumber: 1, status: 'COMPLETED', output: 'one' }))
      const seen = await stream.next()
      await stream.cancel()
      await api.stageOk(id, makeStageUpdate({ stageNumber: 2, status: 'COMPLETED', output: 'two' }))
      const resumed = await open(api, id, { headers: { 'Last-Event-ID': String(seen.id) } })
      const update = await resumed.next()
      expect({ event: update.event, id: update.id }).toEqual({ event: 'update', id: '2' })
      // The run and its stages (a superset of those changed since), their outputs as stored.
      const status = await api.status(id)
      expect(RunUpdateEvent.parse(JSON.parse(update.data))).toEqual({ run: status.run, stages: status.stages })
      await resumed.cancel()
    })

    scenario('a reconnect with a Last-Event-ID past the run gets a fresh snapshot of the current state', async (api) => {
      const id = await api.createRun()
      await api.stageOk(id, makeStageUpdate({ stageNumber: 1, status: 'COMPLETED', output: 'one' }))
      const resumed = await open(api, id, { headers: { 'Last-Event-ID': '99' } })
      const snapshot = await resumed.next()
      expect({ event: snapshot.event, id: snapshot.id }).toEqual({ event: 'snapshot', id: '1' })
      expect(RunSnapshotEvent.parse(JSON.parse(snapshot.data))).toEqual(await api.status(id))
      await resumed.cancel()
    })

    scenario('a finished run gets its final state and end at once, and the stream closes', async (api) => {
      const id = await api.createRun()
      for (const update of ALL_STAGES_TO_4) await api.stageOk(id, update)
      await api.stageOk(id, makeStageUpdate({ stageNumber: 5, status: 'COMPLETED', output: 'five' }))
      const stream = await open(api, id)
      await stream.closed
      expect(stream.events.map((event) => [event.event, event.id])).toEqual([
        ['snapshot', '5'],
        ['end', '5'],
      ])
      const status = await api.status(id)
      expect(RunSnapshotEvent.parse(JSON.parse(stream.events[0]?.data ?? ''))).toEqual(status)
      expect(RunEndEvent.parse(JSON.parse(stream.events[1]?.data ?? ''))).toEqual({ run: status.run })
    })

    scenario(
      'sends a keep-alive comment while idle',
      async (api) => {
        const id = await api.createRun()
        const stream = await open(api, id)
        await stream.next()
        const deadline = Date.now() + 5_000
        // The first comment announces the interval (`keep-alive-ms 20`); keep-alives follow.
        while (stream.comments.length < 2 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10))
        expect(stream.comments.slice(0, 2)).toEqual(['keep-alive-ms 20', 'keep-alive'])
        await stream.cancel()
      },
      { live: { keepAliveMs: 20 } },
    )

    scenario('an unknown run is 404 and a missing or wrong secret 401', async (api) => {
      await expectProblem(await api.send({ path: eventsPath(uniqueRunId('absent')) }), 404, 'run_not_found')
      const id = await api.createRun()
      await expectProblem(await api.send({ path: eventsPath(id), secret: null }), 401, 'unauthorized')
      await expectProblem(await api.send({ path: eventsPath(id), secret: 'wrong' }), 401, 'unauthorized')
      await expectProblem(await api.send({ path: eventsPath(id), method: 'POST', json: {} }), 405, 'method_not_allowed')
    })

    scenario(
      "a run read token streams its own run only",
      async (api) => {
        const mine = await api.createRun()
        const other = await api.createRun()
        const token = await createRunReadToken({ runId: mine, secret: READ_TOKEN_SECRET, expiresInSeconds: 600 })
        const headers = { Authorization: `Bearer ${token}` }
        const stream = await open(api, mine, { secret: null, headers })
        expect((await stream.next()).event).toBe('snapshot')
        await stream.cancel()
        await expectProblem(await api.send({ path: eventsPath(other), secret: null, headers }), 401, 'invalid_read_token')
      },
      { readTokens: { secret: READ_TOKEN_SECRET } },
    )

    {
      const asked: AuthorizeInput<unknown>[] = []
      scenario(
        "the authorize hook is asked with action 'stream' and its false is 403",
        async (api) => {
          const allowed = await api.createRun('stream-allowed-' + crypto.randomUUID().slice(0, 8))
          const refused = await api.createRun()
          const stream = await open(api, allowed, { secret: null })
          expect((await stream.next()).event).toBe('snapshot')
          await stream.cancel()
          await expectProblem(await api.send({ path: eventsPath(refused), secret: null }), 403, 'forbidden')
          expect(asked.map((input) => [input.runId, input.action])).toEqual([
            [allowed, 'stream'],
            [refused, 'stream'],
          ])
        },
        {
          authorize: (input) => {
            asked.push(input)
            return input.runId?.startsWith('stream-allowed-') === true
          },
        },
      )
    }

    {
      // The handlers' clock, moved by the scenario: the session ends at SESSION_END, and a change
      // that reaches a stream after it ends the stream (the timer, armed for real time, never runs).
      const T0 = Date.UTC(2031, 5, 1)
      const SESSION_END = T0 + 60_000
      let now = T0
      scenario(
        "a stream the authorize hook allowed until { expiresAt } (the session's end) ends then with `: closed credential-expired`, the change unsent; the reconnect is 401",
        async (api) => {
          const tag = `session-${crypto.randomUUID().slice(0, 12)}`
          const created = await api.send({ path: '/runs', json: { id: uniqueRunId('session'), tags: [tag] } })
          expect(created.status).toBe(201)
          const id = ((await created.json()) as { run: { id: string } }).run.id
          const own = await open(api, id, { secret: null })
          const listed = readEvents(await api.send({ path: `/events?run=${encodeURIComponent(id)}`, secret: null }))
          const filtered = readEvents(await api.send({ path: `/events?tag=${tag}`, secret: null }))
          for (const stream of [own, listed, filtered]) expect((await stream.next()).event).toBe('snapshot')

          now = SESSION_END
          await api.stageOk(id, makeStageUpdate({ stageNumber: 1, status: 'PROCESSING', output: '' }))
          for (const stream of [own, listed, filtered]) await stream.closed
          expect(own.comments.at(-1)).toBe(`closed credential-expired ${id}`)
          // A set stream's credential ended it, not one of its runs: no run named.
          for (const set of [listed, filtered]) expect(set.comments.at(-1)).toBe('closed credential-expired')
          expect(own.events.map((event) => event.event)).toEqual(['snapshot'])
          expect(filtered.events.map((event) => event.event)).toEqual(['snapshot', 'ready'])

          const again = await expectProblem(await api.send({ path: eventsPath(id), secret: null }), 401, 'authentication_required')
          expect(again.detail).toContain(`until ${new Date(SESSION_END).toISOString()}, which has passed`)
        },
        {
          clock: () => new Date(now),
          authorize: ({ action }) => (action === 'stream' || action === 'list' ? { allow: true, expiresAt: new Date(SESSION_END) } : false),
        },
      )
    }

    scenario('sends no CORS headers by default (same-origin only)', async (api) => {
      const id = await api.createRun()
      const stream = await open(api, id, { headers: { Origin: 'https://elsewhere.example' } })
      expect(stream.response.headers.get('access-control-allow-origin')).toBeNull()
      await stream.cancel()
      const status = await api.getStatus(id, { headers: { Origin: 'https://elsewhere.example' } })
      expect(status.headers.get('access-control-allow-origin')).toBeNull()
    })

    scenario(
      'with cors, an allowed origin gets the preflight and the grant on status and events; others get none',
      async (api) => {
        const id = await api.createRun()
        const origin = 'https://dashboard.example'
        for (const path of [eventsPath(id), `/${encodeURIComponent(id)}/status`]) {
          const preflight = await api.send({
            path,
            method: 'OPTIONS',
            secret: null,
            headers: { Origin: origin, 'Access-Control-Request-Method': 'GET', 'Access-Control-Request-Headers': 'authorization, last-event-id' },
          })
          expect(preflight.status).toBe(204)
          expect(preflight.headers.get('access-control-allow-origin')).toBe(origin)
          expect(preflight.headers.get('access-control-allow-methods')).toBe('GET, HEAD')
          expect(preflight.headers.get('access-control-allow-headers')).toBe('Authorization, Last-Event-ID, If-None-Match, Cache-Control')
          expect(preflight.headers.get('vary')).toContain('Origin')
          const stranger = await api.send({ path, method: 'OPTIONS', secret: null, headers: { Origin: 'https://evil.example' } })
          expect(stranger.status).toBe(204)
          expect(stranger.headers.get('access-control-allow-origin')).toBeNull()
        }
        const stream = await open(api, id, { headers: { Origin: origin } })
        expect(stream.response.headers.get('access-control-allow-origin')).toBe(origin)
        await stream.cancel()
        const status = await api.getStatus(id, { headers: { Origin: origin } })
        expect(status.headers.get('access-control-allow-origin')).toBe(origin)
        expect(status.headers.get('access-control-expose-headers')).toBe('ETag, Retry-After')
        const write = await api.stage(id, makeStageUpdate({ stageNumber: 1 }), { headers: { Origin: origin } })
        expect(write.status).toBe(200)
        expect(write.headers.get('access-control-allow-origin')).toBeNull()
      },
      { cors: { origins: ['https://dashboard.example'] } },
    )

    scenario(
      'past the cap of open streams, 503 too_many_streams with Retry-After; a closed stream frees its place',
      async (api) => {
        const id = await api.createRun()
        const first = await open(api, id)
        await first.next()
        const refused = await api.send({ path: eventsPath(id) })
        await expectProblem(refused, 503, 'too_many_streams')
        expect(refused.headers.get('retry-after')).toBe('5')
        await first.cancel()
        const deadline = Date.now() + 5_000
        let again = await api.send({ path: eventsPath(id) })
        while (again.status === 503 && Date.now() < deadline) {
          await again.body?.cancel()
          await new Promise((resolve) => setTimeout(resolve, 20))
          again = await api.send({ path: eventsPath(id) })
        }
        expect(again.status).toBe(200)
        await again.body?.cancel()
      },
      { live: { maxStreams: 1 } },
    )
  })
}
