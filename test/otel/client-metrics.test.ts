/**
 * The runner's metrics through `registerPipelineStatusTracing` (DESIGN.md "Observability"): the
 * updates waiting in the outbox (a gauge) and those kept as dead letters (a counter).
 */
import { PrismaAPIClient } from 'pipeline-status-sdk/client'
import { ATTRIBUTES, METRICS } from 'pipeline-status-sdk/otel'
import { createPipelineStatusHandlers, MemoryStore } from 'pipeline-status-sdk/server'
import { describe, expect, it } from 'vitest'
import { quiet } from '../support/loggers.js'
import { useTempDirs } from '../support/temp-dirs.js'
import { useTelemetry } from './support.js'
import { nearCeiling } from '../client/support/outbox-jitter.js'

const SECRET = 'otel-secret'
const telemetry = useTelemetry()

describe('the client’s metrics', () => {
  const dir = useTempDirs('otel-outbox-')

  it('gauge the outbox’s depth and count dead letters by route', async () => {
    const handlers = createPipelineStatusHandlers({ store: new MemoryStore(), secret: SECRET, logger: quiet })
    let mode: 'up' | 'down' | 'refusing' = 'up'
    const client = new PrismaAPIClient({
      baseUrl: 'https://app.test',
      secret: SECRET,
      followRunStream: false,
      logger: quiet,
      retry: { limit: 0 },
      outbox: { dir: dir(), retryDelayMs: 60_000, maxRetryDelayMs: 60_000, random: nearCeiling },
      fetch: async (input, init) => {
        if (mode === 'down') throw new TypeError('fetch failed', { cause: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }) })
        if (mode === 'refusing') {
          return new Response(JSON.stringify({ type: 'about:blank', title: 'Conflict', status: 409, code: 'stage_finished', detail: 'no' }), {
            status: 409,
            headers: { 'content-type': 'application/problem+json' },
          })
        }
        return handlers.fetch(new Request(input, init))
      },
    })
    try {
      await client.createRun('metered')
      const depth = async () => {
        await telemetry.collect()
        return telemetry.points(METRICS.clientOutboxDepth)[0]?.value
      }
      expect(await depth()).toBe(0)
      mode = 'down'
      await client.markStageProcessing('metered', 1)
      await client.markStageComplete('metered', 1, 'done')
      expect(client.pendingCount('metered')).toBe(2)
      expect(await depth()).toBe(2)

      mode = 'refusing'
      expect(await client.markStageProcessing('other_run', 1)).toBe(false)
      await telemetry.collect()
      const letters = telemetry.points(METRICS.clientDeadLetters)
      expect(letters).toEqual([expect.objectContaining({ attributes: { [ATTRIBUTES.route]: 'stageUpdate', [ATTRIBUTES.deadLetterKind]: 'dead_letter' }, value: 1 })])
    } finally {
      mode = 'up'
      await client.close({ timeoutMs: 5_000 })
    }
    await telemetry.collect()
    expect(telemetry.points(METRICS.clientOutboxDepth)[0]?.value ?? 0).toBe(0)
  })
})
