/**
 * Contract scenarios, set streams (`GET /events`, docs/live-status.md "Set streams"): a filter
 * stream's snapshots, `ready`, joins, updates, `end` without closing and `leave`; a `run=`
 * stream's order and its close after every listed run ended; the summary view; refusals. Every
 * filter stream follows a tag of its own, because the PostgreSQL targets share one database.
 */
import { RunEndEvent, RunLeaveEvent, RunSnapshotEvent, RunSummary, RunUpdateEvent, SetStreamReadyEvent, RunListPage, CreateRunResponse } from 'pipeline-status-sdk'
import { type AuthorizeInput, createRunReadToken } from 'pipeline-status-sdk/server'
import { describe, expect } from 'vitest'
import { makeStageUpdate } from '../../support/fixtures.js'
import { type Api, expectProblem, READ_TOKEN_SECRET, type RequestSpec, uniqueRunId } from './harness.js'
import { type EventReader, readEvents } from './read-events.js'
import type { ContractContext } from './use-target.js'

/** A tag no other scenario uses. */
const freshTag = (prefix = 'set') => `${prefix}-${crypto.randomUUID().slice(0, 12)}`

/** Creates a run with tags over HTTP; returns its id. */
async function createTagged(api: Api, tags: string[], id = uniqueRunId('set')): Promise<string> {
  const response = await api.send({ path: '/runs', json: { id, tags } })
  expect(response.status).toBe(201)
  return CreateRunResponse.parse(await response.json()).run.id
}

async function openSet(api: Api, query: string, spec: Partial<RequestSpec> = {}): Promise<EventReader> {
  const response = await api.send({ path: `/events?${query}`, ...spec })
  if (response.status !== 200) expect({ status: response.status, text: await response.text() }).toMatchObject({ status: 200 })
  expect(response.headers.get('content-type')).toBe('text/event-stream; charset=utf-8')
  expect(response.headers.get('cache-control')).toBe('no-cache, no-transform')
  return readEvents(response)
}

/** The next event that is not an `update` (updates may come first: several changes may share one). */
async function nextOtherThanUpdate(stream: EventReader): Promise<{ event?: string | undefined; id?: string | undefined; data: string }> {
  let event = await stream.next()
  while (event.event === 'update') event = await stream.next()
  return event
}

const data = (event: { data: string }) => JSON.parse(event.data) as unknown

/** Registers this block of the contract suite for one target (see index.ts). */
export function describeSetStreams({ name, scenario }: ContractContext): void {
  describe(`${name}: set streams`, () => {
    {
      let now = Date.UTC(2031, 0, 1)
      scenario(
        'a filter stream: a snapshot per run newest first, ready, then runs joining, updates, and end without closing',
        async (api) => {
          const tag = freshTag()
          const older = await createTagged(api, [tag])
          now += 1000
          const newer = await createTagged(api, [tag])
          await api.createRun() // not tagged: not in the stream
          const stream = await openSet(api, `tag=${tag}`)
          const first = await stream.next()
          expect(stream.retries).toEqual([2000])
          expect({ event: first.event, id: first.id }).toEqual({ event: 'snapshot', id: `${newer}:0` })
          expect(RunSnapshotEvent.parse(data(first))).toEqual(await api.status(newer))
          const second = await stream.next()
          expect({ event: second.event, id: second.id }).toEqual({ event: 'snapshot', id: `${older}:0` })
          const ready = await stream.next()
          expect(ready.event).toBe('ready')
          expect(SetStreamReadyEvent.parse(data(ready))).toEqual({ runs: 2 })

          // A run created later joins with its snapshot.
          now += 1000
          const joined = await createTagged(api, [tag])
          const join = await stream.next()
          expect({ event: join.event, id: join.id }).toEqual({ event: 'snapshot', id: `${joined}:0` })
          expect(RunSnapshotEvent.parse(data(join))).toEqual(await api.status(joined))

          // A change of a member is an update naming its run, as the run's own stream sends it.
          const step = await api.stageOk(older, makeStageUpdate({ stageNumber: 1, status: 'PROCESSING', output: '' }))
          const update = await stream.next()
          expect({ event: update.event, id: update.id }).toEqual({ event: 'update', id: `${older}:1` })
          expect(RunUpdateEvent.parse(data(update))).toEqual({ run: step.run, stages: [step.stage] })

          // A finished member gets end, and the stream stays open: the next run still joins.
          await api.cancelOk(older)
          const end = await nextOtherThanUpdate(stream)
          expect(end.event).toBe('end')
          expect(end.id).toBe(`${older}:${(await api.getStatus(older)).headers.get('etag')?.replaceAll('"', '')}`)
          expect(RunEndEvent.parse(data(end))).toEqual({ run: (await api.status(older)).run })
          now += 1000
          const later = await createTagged(api, [tag])
          const again = await nextOtherThanUpdate(stream)
          expect({ event: again.event, id: again.id }).toEqual({ event: 'snapshot', id: `${later}:0` })
          await stream.cancel()
        },
        { clock: () => new Date(now) },
      )
    }

    scenario('a run whose tag is removed leaves (after its update); a run tagged later joins', async (api) => {
      const tag = freshTag()
      const member = await createTagged(api, [tag, 'keep'])
      const outside = await createTagged(api, ['keep'])
      const stream = await openSet(api, `tag=${tag}`)
      expect((await stream.next()).id).toBe(`${member}:0`)
      expect(SetStreamReadyEvent.parse(data(await stream.next()))).toEqual({ runs: 1 })

      expect((await api.send({ path: `/${outside}/tags`, json: { add: [tag] } })).status).toBe(200)
      const join = await nextOtherThanUpdate(stream)
      expect({ event: join.event, id: join.id }).toEqual({ event: 'snapshot', id: `${outside}:1` })
      expect(RunSnapshotEvent.parse(data(join)).run.tags).toContain(tag)

      expect((await api.send({ path: `/${member}/tags`, json: { remove: [tag] } })).status).toBe(200)
      const leave = await nextOtherThanUpdate(stream)
      expect(leave.event).toBe('leave')
      expect(RunLeaveEvent.parse(data(leave))).toEqual({ runId: member })
      // Nothing more of the run that left: a change of it sends nothing; the member still does.
      await api.stageOk(member, makeStageUpdate({ stageNumber: 1, status: 'PROCESSING', output: '' }))
      await api.stageOk(outside, makeStageUpdate({ stageNumber: 1, status: 'PROCESSING', output: '' }))
      const next = await stream.next()
      expect({ event: next.event, id: next.id?.split(':')[0] }).toEqual({ event: 'update', id: outside })
      await stream.cancel()
    })

    scenario('a status filter: a run that finishes leaves a stream of PROCESSING runs', async (api) => {
      const tag = freshTag()
      const id = await createTagged(api, [tag])
      await api.stageOk(id, makeStageUpdate({ stageNumber: 1, status: 'PROCESSING', output: '' }))
      const stream = await openSet(api, `tag=${tag}&status=PROCESSING&view=summary`)
      expect((await stream.next()).event).toBe('snapshot')
      expect(SetStreamReadyEvent.parse(data(await stream.next()))).toEqual({ runs: 1 })
      await api.cancelOk(id)
      // Its last update and end may come first; then it leaves.
      let event = await stream.next()
      while (event.event === 'update' || event.event === 'end') event = await stream.next()
      expect(event.event).toBe('leave')
      expect(RunLeaveEvent.parse(data(event))).toEqual({ runId: id })
      await stream.cancel()
    })

    scenario('a run= stream: snapshots in the order given, end at once for a finished run, and it closes after every listed run ended', async (api) => {
      const done = await api.createRun()
      await api.cancelOk(done)
      const running = await api.createRun()
      const stream = await openSet(api, `run=${done}&run=${running}&run=${done}`)
      const events: Array<[string | undefined, string | undefined]> = []
      for (let i = 0; i < 4; i++) {
        const event = await stream.next()
        events.push([event.event, event.id])
      }
      expect(events).toEqual([
        ['snapshot', `${done}:1`],
        ['end', `${done}:1`],
        ['snapshot', `${running}:0`],
        ['ready', undefined],
      ])
      expect(SetStreamReadyEvent.parse(data(stream.events[3] ?? { data: '' }))).toEqual({ runs: 2 })
      await api.stageOk(running, makeStageUpdate({ stageNumber: 1, status: 'PROCESSING', output: '' }))
      expect((await stream.next()).event).toBe('update')
      const cancelled = await api.cancelOk(running)
      const end = await nextOtherThanUpdate(stream)
      expect(end.event).toBe('end')
      expect(RunEndEvent.parse(data(end))).toEqual({ run: cancelled.run })
      await stream.closed
    })

    scenario('a run= stream of finished runs only: snapshots, ends and ready, then it closes', async (api) => {
      const done = await api.createRun()
      await api.cancelOk(done)
      const stream = await openSet(api, `run=${done}`)
      await stream.closed
      expect(stream.events.map((event) => event.event)).toEqual(['snapshot', 'end', 'ready'])
    })

    scenario('view=summary: snapshots and updates are the runs\' list items, never outputs', async (api) => {
      const tag = freshTag()
      const id = await createTagged(api, [tag])
      await api.stageOk(id, makeStageUpdate({ stageNumber: 1, status: 'COMPLETED', output: 'a long stage output' }))
      const stream = await openSet(api, `tag=${tag}&view=summary`)
      const snapshot = await stream.next()
      expect(snapshot.event).toBe('snapshot')
      const listed = RunListPage.parse(await (await api.send({ path: `/runs?tag=${tag}` })).json()).runs[0]
      expect(RunSummary.strict().parse(data(snapshot))).toEqual(listed)
      expect(snapshot.data).not.toContain('a long stage output')
      expect((await stream.next()).event).toBe('ready')
      await api.stageOk(id, makeStageUpdate({ stageNumber: 2, status: 'PROCESSING', output: 'more output' }))
      const update = await stream.next()
      expect(update.event).toBe('update')
      const summary = RunSummary.strict().parse(data(update))
      expect(summary).toMatchObject({ id, currentStage: 2, stageCounts: { COMPLETED: 1, PROCESSING: 1, PENDING: 3, FAILED: 0, CANCELLED: 0 } })
      expect(update.data).not.toContain('more output')
      await stream.cancel()
      expect(stream.events.some((event) => event.event === 'output')).toBe(false)
    })

    scenario('refuses bad queries with 400 naming the parameter, an unknown run= with 404, and no credential with 401', async (api) => {
      const fields = async (query: string) => (await expectProblem(await api.send({ path: `/events?${query}` }), 400, 'invalid_query')).errors?.map((error) => error.field)
      const many = Array.from({ length: 51 }, (_, i) => `run=r${i}`).join('&')
      expect(await fields(many)).toEqual(['run'])
      expect(await fields('tags=x')).toEqual(['tags'])
      expect(await fields('run=a&tag=x')).toEqual(['tag'])
      expect(await fields('run=a&limit=5')).toEqual(['limit'])
      expect(await fields('view=everything')).toEqual(['view'])
      expect(await fields('limit=201')).toEqual(['limit'])
      expect(await fields('status=DONE')).toEqual(['status'])
      const id = await api.createRun()
      const absent = uniqueRunId('absent')
      // The refusal names the run (the extension member runId), so a client can ask again without it.
      expect((await expectProblem(await api.send({ path: `/events?run=${id}&run=${absent}` }), 404, 'run_not_found')).runId).toBe(absent)
      await expectProblem(await api.send({ path: `/events?run=${id}`, secret: null }), 401, 'unauthorized')
      await expectProblem(await api.send({ path: `/events?tag=x`, secret: 'wrong' }), 401, 'unauthorized')
      // NUL in a filter is 400 naming it (storable text); a run= id outside the run id rule is an
      // unknown run, 404, exactly as `/%00/status` (no run can have it), checked before credentials.
      expect(await fields('pipeline=%00')).toEqual(['pipeline'])
      expect(await fields('tag=%00')).toEqual(['tag'])
      expect(await fields('tag=ok&pipeline=p%00')).toEqual(['pipeline'])
      for (const run of ['%00', 'r1%00', '%ED%A0%80', 'a%20b', '..']) {
        await expectProblem(await api.send({ path: `/events?run=${run}` }), 404, 'run_not_found')
        await expectProblem(await api.send({ path: `/events?run=${id}&run=${run}`, secret: null }), 404, 'run_not_found')
      }
      await expectProblem(await api.send({ path: '/%00/status' }), 404, 'run_not_found')
      // 50 distinct runs is the limit, repeats count once.
      const fifty = Array.from({ length: 50 }, () => `run=${id}`).join('&') + Array.from({ length: 49 }, (_, i) => `&run=${id}x${i}`).join('')
      await expectProblem(await api.send({ path: `/events?${fifty}` }), 404, 'run_not_found')
    })

    {
      const asked: AuthorizeInput<unknown>[] = []
      scenario(
        "a run= stream asks authorize with action 'stream' for each run; one refusal answers the whole request; a filter stream asks with 'list'",
        async (api) => {
          const allowed = await api.createRun('set-allowed-' + crypto.randomUUID().slice(0, 8))
          const also = await api.createRun('set-allowed-' + crypto.randomUUID().slice(0, 8))
          const refused = await api.createRun()
          const stream = await openSet(api, `run=${allowed}&run=${also}`, { secret: null })
          expect((await stream.next()).event).toBe('snapshot')
          await stream.cancel()
          expect(asked.map((input) => [input.runId, input.action])).toEqual([
            [allowed, 'stream'],
            [also, 'stream'],
          ])
          asked.length = 0
          expect((await expectProblem(await api.send({ path: `/events?run=${allowed}&run=${refused}`, secret: null }), 403, 'forbidden')).runId).toBe(refused)
          expect(asked.map((input) => [input.runId, input.action])).toEqual([
            [allowed, 'stream'],
            [refused, 'stream'],
          ])
          asked.length = 0
          await expectProblem(await api.send({ path: `/events?tag=${freshTag()}`, secret: null }), 403, 'forbidden')
          expect(asked.map((input) => [input.runId, input.action])).toEqual([[undefined, 'list']])
        },
        {
          authorize: (input) => {
            asked.push(input)
            return input.runId?.startsWith('set-allowed-') === true
          },
        },
      )
    }

    scenario(
      'sends the keep-alive announcement and keep-alive comments while idle',
      async (api) => {
        const stream = await openSet(api, `tag=${freshTag()}`)
        expect((await stream.next()).event).toBe('ready')
        const deadline = Date.now() + 5_000
        while (stream.comments.length < 2 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10))
        expect(stream.comments.slice(0, 2)).toEqual(['keep-alive-ms 20', 'keep-alive'])
        await stream.cancel()
      },
      { live: { keepAliveMs: 20 } },
    )

    scenario(
      'set streams count towards the cap of open streams: 503 too_many_streams past it',
      async (api) => {
        const id = await api.createRun()
        const single = await api.send({ path: `/${id}/events` })
        expect(single.status).toBe(200)
        await expectProblem(await api.send({ path: `/events?run=${id}` }), 503, 'too_many_streams')
        await single.body?.cancel()
      },
      { live: { maxStreams: 1 } },
    )

    scenario(
      'a tag read token: a filter stream sees its tag\'s runs only; a run= stream naming a run without its tag is 401',
      async (api) => {
        const tag = freshTag('token')
        const mine = await createTagged(api, [tag])
        const other = await api.createRun()
        const token = await createRunReadToken({ tag, secret: READ_TOKEN_SECRET, expiresInSeconds: 600 })
        const headers = { Authorization: `Bearer ${token}` }
        // Its scope is ANDed in: asking for no tag at all still shows only the token's tag.
        const stream = await openSet(api, 'limit=5', { secret: null, headers })
        const first = await stream.next()
        expect(first.id).toBe(`${mine}:0`)
        expect(SetStreamReadyEvent.parse(data(await stream.next()))).toEqual({ runs: 1 })
        await stream.cancel()
        const listed = await openSet(api, `run=${mine}`, { secret: null, headers })
        expect((await listed.next()).event).toBe('snapshot')
        await listed.cancel()
        expect((await expectProblem(await api.send({ path: `/events?run=${mine}&run=${other}`, secret: null, headers }), 401, 'invalid_read_token')).runId).toBe(other)
      },
      { readTokens: { secret: READ_TOKEN_SECRET } },
    )
  })
}
