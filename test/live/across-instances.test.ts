/**
 * Live status across instances (DESIGN.md "Live status"): two Express examples on one
 * PostgreSQL; a subscriber on the first sees every stage change posted to the second, in both
 * modes (version polling, LISTEN/NOTIFY). LISTEN mode survives its connection being killed, and
 * a dropped subscriber resumes with Last-Event-ID. A set stream on the first sees runs created,
 * tagged and untagged on the second join and leave.
 */
import pg from 'pg'
import { type RunStatusResponse, subscribeToRun } from 'pipeline-status-sdk'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type ExpressExample, startExpressExample } from '../../examples/express/app.js'
import { createTestDatabase, type TestDatabase, usesPostgres } from '../setup/test-database.js'
import { postOk } from '../support/handler-requests.js'
import { openSse } from './sse-reader.js'

const SECRET = 'across-instances-secret'
const quiet = { info: () => {}, warn: () => {}, error: () => {} }

/** The ten changes of a five-stage run, in the order the runner posts them. */
const CHANGES = [1, 2, 3, 4, 5].flatMap((stageNumber) => [
  { stageNumber, status: 'PROCESSING' as const },
  { stageNumber, status: 'COMPLETED' as const },
])

const post = (base: string, path: string, body: unknown): Promise<Response> => postOk(SECRET, base, path, body)

function stageUpdate(change: (typeof CHANGES)[number]) {
  return { stageNumber: change.stageNumber, stageName: `Stage ${change.stageNumber}`, status: change.status, output: `out ${change.stageNumber}` }
}

/** Resolves once `read()` holds, polling every 5 ms. */
async function until(read: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!read()) {
    if (Date.now() > deadline) throw new Error('Timed out')
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

/** Terminates every backend of this database that holds a LISTEN (the listeners of both instances). */
async function killListeners(url: string): Promise<number> {
  const admin = new pg.Client({ connectionString: url })
  await admin.connect()
  try {
    const result = await admin.query<{ pid: number }>(
      `SELECT pg_terminate_backend(pid), pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'pipeline-status-listener'`,
    )
    return result.rowCount ?? 0
  } finally {
    await admin.end()
  }
}

for (const mode of ['poll', 'listen'] as const) {
  describe.skipIf(!usesPostgres())(`live status across two instances on one PostgreSQL (${mode} mode)`, () => {
    let db: TestDatabase
    let first: ExpressExample
    let second: ExpressExample

    beforeAll(async () => {
      db = await createTestDatabase()
      const options = { port: 0, secret: SECRET, databaseUrl: db.url, liveMode: mode, log: quiet }
      first = await startExpressExample(options)
      second = await startExpressExample(options)
    })
    afterAll(async () => {
      await first?.close()
      await second?.close()
      await db?.close()
    })

    it('a subscriber on the first sees every stage change posted to the second, in order, and the stream ends', async () => {
      const runId = `across-${mode}-${crypto.randomUUID().slice(0, 8)}`
      await post(second.url, '/runs', { id: runId })
      const wire = await openSse(`${first.url}/${runId}/events`, { 'X-Webhook-Secret': SECRET })
      expect(wire.response.headers.get('content-type')).toMatch(/^text\/event-stream/)
      const seen: RunStatusResponse[] = []
      const subscription = subscribeToRun(runId, { url: first.url, headers: { 'X-Webhook-Secret': SECRET }, onUpdate: (status) => void seen.push(status) })
      await wire.waitFor((event) => event.event === 'snapshot')
      await until(() => seen.length > 0)

      const stateOf = (status: RunStatusResponse | undefined, n: number) => status?.stages.find((stage) => stage.stageNumber === n)?.status
      for (const [index, change] of CHANGES.entries()) {
        await post(second.url, `/${runId}/stage-update`, stageUpdate(change))
        // The next change is posted only once this one arrived, so none may share an event.
        await wire.waitFor((event) => event.event === 'update' && Number(event.id) >= index + 1)
        await until(() => stateOf(seen.at(-1), change.stageNumber) === change.status)
        if (mode === 'listen' && index === 4) expect(await killListeners(db.url as string)).toBeGreaterThanOrEqual(1)
      }
      await wire.ended
      await subscription.done

      const updates = wire.events.filter((event) => event.event === 'update')
      // One event per change (stage 1 PROCESSING also starts the run, in the same write).
      const observed = updates.flatMap((event) =>
        (JSON.parse(event.data) as RunStatusResponse).stages.map((stage) => ({ stageNumber: stage.stageNumber, status: stage.status })),
      )
      expect(observed).toEqual(CHANGES)
      const ids = wire.events.filter((event) => event.event !== 'end').map((event) => Number(event.id))
      for (let i = 1; i < ids.length; i++) expect(ids[i]).toBeGreaterThan(ids[i - 1] as number)
      expect(wire.events.at(-1)?.event).toBe('end')
      expect(JSON.parse(wire.events.at(-1)?.data ?? '{}').run.status).toBe('COMPLETED')
      expect(subscription.state).toBe('finished')
      expect(seen.at(-1)?.stages.map((stage) => stage.status)).toEqual(Array(5).fill('COMPLETED'))
    })

    it('a set stream on the first: a run created on the second joins, a tag added there joins it, its removal makes it leave', async () => {
      const tag = `set-${mode}-${crypto.randomUUID().slice(0, 8)}`
      const created = `joins-${mode}-${crypto.randomUUID().slice(0, 8)}`
      const tagged = `tagged-${mode}-${crypto.randomUUID().slice(0, 8)}`
      await post(second.url, '/runs', { id: tagged })
      const wire = await openSse(`${first.url}/events?tag=${tag}&view=summary`, { 'X-Webhook-Secret': SECRET })
      expect(wire.response.status).toBe(200)
      expect(JSON.parse((await wire.waitFor((event) => event.event === 'ready')).data)).toEqual({ runs: 0 })

      await post(second.url, '/runs', { id: created, tags: [tag] })
      const join = await wire.waitFor((event) => event.event === 'snapshot' && event.id === `${created}:0`)
      expect(JSON.parse(join.data)).toMatchObject({ id: created, tags: [tag], status: 'PENDING' })

      await post(second.url, `/${tagged}/tags`, { add: [tag] })
      await wire.waitFor((event) => event.event === 'snapshot' && event.id?.startsWith(`${tagged}:`) === true)
      // A change of a member made on the second reaches the first as an update.
      await post(second.url, `/${tagged}/stage-update`, stageUpdate(CHANGES[0] as (typeof CHANGES)[number]))
      const update = await wire.waitFor((event) => event.event === 'update' && event.id?.startsWith(`${tagged}:`) === true)
      expect(JSON.parse(update.data)).toMatchObject({ id: tagged, status: 'PROCESSING', currentStage: 1 })

      await post(second.url, `/${tagged}/tags`, { remove: [tag] })
      const leave = await wire.waitFor((event) => event.event === 'leave')
      expect(JSON.parse(leave.data)).toEqual({ runId: tagged })
      wire.abort()
      await wire.ended
      // Membership is the created run alone now: a fresh stream shows it.
      const again = await openSse(`${first.url}/events?tag=${tag}&view=summary`, { 'X-Webhook-Secret': SECRET })
      expect(JSON.parse((await again.waitFor((event) => event.event === 'ready')).data)).toEqual({ runs: 1 })
      again.abort()
      await again.ended
    })

    it('a subscriber whose connection drops mid-run resumes with Last-Event-ID and reaches the final state', async () => {
      const runId = `resume-${mode}-${crypto.randomUUID().slice(0, 8)}`
      await post(second.url, '/runs', { id: runId })
      const wire = await openSse(`${first.url}/${runId}/events`, { 'X-Webhook-Secret': SECRET })
      for (const change of CHANGES.slice(0, 4)) await post(second.url, `/${runId}/stage-update`, stageUpdate(change))
      const last = await wire.waitFor((event) => event.event === 'update' && Number(event.id) === 4)
      wire.abort()
      await wire.ended
      // Missed while away.
      for (const change of CHANGES.slice(4)) await post(second.url, `/${runId}/stage-update`, stageUpdate(change))
      const resumed = await openSse(`${first.url}/${runId}/events`, { 'X-Webhook-Secret': SECRET, 'Last-Event-ID': String(last.id) })
      await resumed.ended
      // A version the run had: brought up to date by one update (no snapshot), then end.
      expect(resumed.events.map((event) => event.event)).toEqual(['update', 'end'])
      const update = JSON.parse(resumed.events[0]?.data ?? '{}') as RunStatusResponse
      expect(update.run.status).toBe('COMPLETED')
      expect(update.stages.map((stage) => stage.status)).toEqual(Array(5).fill('COMPLETED'))
      expect(Number(resumed.events[0]?.id)).toBeGreaterThan(Number(last.id))
    })
  })
}
