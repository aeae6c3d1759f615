/**
 * A streamed run that is deleted (on the PrismaStore, PostgreSQL when DATABASE_URL is set, else
 * PGlite). The app deleting a run that is still running (`prisma.pipelineRun.delete`, by hand):
 * its stream ends with `: closed deleted <runId>` instead of sending keep-alives for a run that
 * is gone (the poll no longer finds its version, a read finds no run); the reconnect is 404. The
 * retention sweep deletes finished runs only: their own streams ended at `end`, and a `run=` set
 * stream that still follows another run stays open.
 */
import { createPipelineStatusHandlers, createStaleRunSweeper } from 'pipeline-status-sdk/server'
import { describe, expect, it } from 'vitest'
import { readEvents } from '../contract/suite/read-events.js'
import { makeStageUpdate } from '../support/fixtures.js'
import { handlerRequests } from '../support/handler-requests.js'
import { recordingLogger } from '../support/loggers.js'
import { useTestDatabase } from '../support/use-test-database.js'

const SECRET = 'webhook-secret-for-deleted-run-tests'
const { get, post } = handlerRequests(SECRET)
const fixture = useTestDatabase()

function handlersOnDatabase() {
  const logger = recordingLogger()
  const handlers = createPipelineStatusHandlers({ store: fixture.store, secret: SECRET, logger, live: { pollIntervalMs: 20 } })
  return { handlers, logger }
}

describe('a streamed run that is deleted', () => {
  it('deleted while running: its stream ends with `: closed deleted <runId>`, one warning; the reconnect is 404', async () => {
    const { handlers, logger } = handlersOnDatabase()
    try {
      expect((await handlers.fetch(post('/runs', { id: 'deleted-running' }))).status).toBe(201)
      expect((await handlers.fetch(post('/deleted-running/stage-update', makeStageUpdate({ stageNumber: 1, status: 'PROCESSING' })))).status).toBe(200)
      const stream = readEvents(await handlers.fetch(get('/deleted-running/events')))
      expect((await stream.next()).event).toBe('snapshot')

      // The app deletes it itself (its stages and chunks go with it).
      await fixture.db.prisma.pipelineRun.delete({ where: { id: 'deleted-running' } })
      await stream.closed
      expect(stream.comments.at(-1)).toBe('closed deleted deleted-running')
      expect(stream.events.map((event) => event.event)).toEqual(['snapshot'])
      expect(logger.lines.filter((line) => line.level === 'warn').map((line) => line.details?.['cause'])).toEqual(['deleted'])
      expect((await handlers.fetch(get('/deleted-running/events'))).status).toBe(404)
    } finally {
      await handlers.close()
    }
  })

  it("the retention sweep deletes a run= stream's finished run: the stream stays open for the other, without a comment", async () => {
    const { handlers, logger } = handlersOnDatabase()
    try {
      for (const id of ['retained-done', 'retained-running']) expect((await handlers.fetch(post('/runs', { id }))).status).toBe(201)
      expect((await handlers.fetch(post('/retained-done/cancel', {}))).status).toBe(200)
      const stream = readEvents(await handlers.fetch(get('/events?run=retained-done&run=retained-running')))
      expect((await stream.next()).event).toBe('snapshot')
      expect((await stream.next()).event).toBe('end')
      expect((await stream.next()).event).toBe('snapshot')
      expect((await stream.next()).event).toBe('ready')

      // The sweeper's retention pass, a minute ahead: the cancelled run is past its retention of 1 ms.
      const sweeper = createStaleRunSweeper({ store: fixture.store, staleAfterMs: 3_600_000, retention: { CANCELLED: 1 }, clock: () => new Date(Date.now() + 60_000), logger: { warn: () => {}, error: () => {} } })
      expect(await sweeper.purge()).toEqual({ CANCELLED: 1 })
      expect(await fixture.store.getRun('retained-done')).toBeNull()
      // Still following the other run: its next change arrives.
      expect((await handlers.fetch(post('/retained-running/stage-update', makeStageUpdate({ stageNumber: 1, status: 'PROCESSING' })))).status).toBe(200)
      const update = await stream.next()
      expect({ event: update.event, id: update.id }).toMatchObject({ event: 'update', id: expect.stringMatching(/^retained-running:/) })
      expect(stream.comments.filter((comment) => comment.startsWith('closed'))).toEqual([])
      expect(logger.lines.filter((line) => line.level === 'warn')).toEqual([])
      await stream.cancel()
    } finally {
      await handlers.close()
    }
  })
})
