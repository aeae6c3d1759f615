/**
 * LISTEN mode never leaves a stream stale for good (DESIGN.md "Live status": "a slow safety poll
 * of streamed runs (every few seconds) so a notification lost to a crash is caught up"): an
 * instance whose LISTEN is verified still reads the versions of its streamed runs every
 * `live.safetyPollIntervalMs`, so a change written by an instance without `notifyChannel` (no
 * notification at all) reaches its streams, and it says so once per process, naming the cause
 * and the fix. The interval is short here only to keep the test quick; ceilings are 5× or more.
 */
import { RunUpdateEvent } from 'pipeline-status-sdk'
import { createPgRunListener } from 'pipeline-status-sdk/pg'
import { createPipelineStatusHandlers, createPrismaStore } from 'pipeline-status-sdk/server'
import { describe, expect, it } from 'vitest'
import { readEvents } from '../contract/suite/read-events.js'
import { createTestDatabase, usesPostgres } from '../setup/test-database.js'
import { makeStageUpdate } from '../support/fixtures.js'
import { quiet, recordingLogger } from '../support/loggers.js'
import { handlerRequests } from '../support/handler-requests.js'
import { until } from '../support/until.js'

const SECRET = 'safety-poll-secret'
const CHANNEL = 'pipeline_status'
const { get, post } = handlerRequests(SECRET)

function stagesOf(event: { event?: string | undefined; data: string }): Array<[number, string]> {
  expect(event.event).toBe('update')
  return RunUpdateEvent.parse(JSON.parse(event.data)).stages.map((stage) => [stage.stageNumber, stage.status])
}

describe.skipIf(!usesPostgres())('the safety poll in LISTEN mode', () => {
  it('delivers a write from an instance without notifyChannel to a verified listener, and warns once per process', async () => {
    const db = await createTestDatabase()
    const listen = createPgRunListener({ connectionString: db.url as string, channel: CHANNEL })
    const versionReads: string[][] = []
    const store = createPrismaStore({ prisma: db.prisma, notifyChannel: CHANNEL })
    // The listener's own store, counting its version reads (so we can tell the safety poll ran).
    const readerStore = new Proxy(store, {
      get(target, key, receiver) {
        if (key === 'getRunVersions') {
          return async (ids: string[]) => {
            versionReads.push([...ids])
            return target.getRunVersions(ids)
          }
        }
        const value = Reflect.get(target, key, receiver) as unknown
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value
      },
    })
    const logger = recordingLogger()
    const reader = createPipelineStatusHandlers({ store: readerStore, secret: SECRET, logger, live: { listen, safetyPollIntervalMs: 150 } })
    // The writing instance lacks notifyChannel: it sends no notification at all.
    const writer = createPipelineStatusHandlers({ store: createPrismaStore({ prisma: db.prisma }), secret: SECRET, logger: quiet })
    try {
      for (const id of ['quiet-1', 'quiet-2']) expect((await writer.fetch(post('/runs', { id }))).status).toBe(201)
      const streams = await Promise.all(['quiet-1', 'quiet-2'].map(async (id) => readEvents(await reader.fetch(get(`/${id}/events`)))))
      for (const stream of streams) expect((await stream.next()).event).toBe('snapshot')
      await until('LISTEN to be verified', () => listen.connected, 25_000)

      for (const [index, id] of ['quiet-1', 'quiet-2'].entries()) {
        await writer.fetch(post(`/${id}/stage-update`, makeStageUpdate({ stageNumber: 1, status: 'PROCESSING', output: '' })))
        // Nothing but the safety poll can bring this: LISTEN is verified and no notification is sent.
        expect(stagesOf(await (streams[index] as (typeof streams)[number]).next())).toEqual([[1, 'PROCESSING']])
        expect(listen.connected).toBe(true)
      }
      await writer.fetch(post('/quiet-1/stage-update', makeStageUpdate({ stageNumber: 1, status: 'COMPLETED', output: 'one' })))
      expect(stagesOf(await (streams[0] as (typeof streams)[number]).next())).toEqual([[1, 'COMPLETED']])
      // Let the next safety ticks judge the last change too: still one warning for the process.
      const reads = versionReads.length
      await until('two more safety ticks', () => versionReads.length >= reads + 2, 30_000)

      // Each safety tick is one batched query for every streamed run.
      for (const batch of versionReads) expect([...batch].sort()).toEqual(['quiet-1', 'quiet-2'])
      const warnings = logger.lines.filter((line) => line.level === 'warn')
      expect(warnings).toHaveLength(1)
      expect(warnings[0]?.message).toMatch(/safety poll found version \d+ of run quiet-1, which no LISTEN notification announced/)
      expect(warnings[0]?.message).toMatch(/without notifyChannel/)
      expect(warnings[0]?.message).toMatch(/a notification was lost/)
      for (const stream of streams) await stream.cancel()
    } finally {
      await reader.close()
      await writer.close()
      await db.close()
    }
  }, 60_000)

  it('stays quiet when every writer notifies, and costs nothing while no run is streamed', async () => {
    const db = await createTestDatabase()
    const listen = createPgRunListener({ connectionString: db.url as string, channel: CHANNEL })
    let versionReads = 0
    const store = createPrismaStore({ prisma: db.prisma, notifyChannel: CHANNEL })
    const readerStore = new Proxy(store, {
      get(target, key, receiver) {
        if (key === 'getRunVersions') {
          return async (ids: string[]) => {
            versionReads++
            return target.getRunVersions(ids)
          }
        }
        const value = Reflect.get(target, key, receiver) as unknown
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value
      },
    })
    const logger = recordingLogger()
    const reader = createPipelineStatusHandlers({ store: readerStore, secret: SECRET, logger, live: { listen, safetyPollIntervalMs: 100 } })
    const writer = createPipelineStatusHandlers({ store: createPrismaStore({ prisma: db.prisma, notifyChannel: CHANNEL }), secret: SECRET, logger: quiet })
    try {
      expect((await writer.fetch(post('/runs', { id: 'loud' }))).status).toBe(201)
      const stream = readEvents(await reader.fetch(get('/loud/events')))
      expect((await stream.next()).event).toBe('snapshot')
      await until('LISTEN to be verified', () => listen.connected, 25_000)
      for (const status of ['PROCESSING', 'COMPLETED'] as const) {
        await writer.fetch(post('/loud/stage-update', makeStageUpdate({ stageNumber: 1, status, output: '' })))
        expect(stagesOf(await stream.next())).toEqual([[1, status]])
      }
      const reads = versionReads
      await until('three more safety ticks', () => versionReads >= reads + 3, 30_000)
      await stream.cancel()
      // The stream is gone: no query after the tick already armed (which finds nothing to read).
      const after = versionReads
      await new Promise((resolve) => setTimeout(resolve, 500))
      expect(versionReads - after).toBeLessThanOrEqual(1)
      expect(logger.lines).toEqual([])
    } finally {
      await reader.close()
      await writer.close()
      await db.close()
    }
  }, 60_000)
})
