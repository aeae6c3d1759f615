/** Contract scenarios, runner clocks: instants clamped into the tolerance window, and repeats that conflict with the stored outcome. */
import { describe, expect } from 'vitest'
import { makeCompleteRun, makeStageUpdate } from '../../support/fixtures.js'
import type { ContractContext } from './use-target.js'

/** Registers this block of the contract suite for one target (see index.ts). */
export function describeRunnerClocks({ name, scenario }: ContractContext): void {
  describe(`${name}: runner clocks and conflicting repeats`, () => {
    const HOUR = 3_600_000
    const TOLERANCE = 5 * 60_000
    const warnings: Array<{ message: string; details: Record<string, unknown> | undefined }> = []
    const logger = {
      warn: (message: unknown, details?: unknown) => void warnings.push({ message: String(message), details: details as Record<string, unknown> | undefined }),
      error: () => {},
    }
    const warningsOf = (runId: string, about: string) => warnings.filter((w) => w.details?.['runId'] === runId && w.message.includes(about))
    const ms = (iso: string | null | undefined) => Date.parse(iso ?? 'missing')

    scenario(
      'a runner clock 9 h ahead and a naive time before the run was created are stored clamped, never refused; one warning per run',
      async (api) => {
        const id = await api.createRun()
        const createdAt = (await api.status(id)).run.createdAt
        await api.stageOk(id, makeStageUpdate())
        // The run started with its first stage (docs/contract.md "Timing").
        const startedAt = (await api.status(id)).run.startedAt
        expect(startedAt).not.toBeNull()

        // Stage 1 from a runner whose clock is 9 h ahead: stored at the server's now + 5 min.
        const sentAt = Date.now()
        const ahead = await api.stageOk(id, makeStageUpdate({ status: 'COMPLETED', output: 'one', completedAt: new Date(sentAt + 9 * HOUR).toISOString() }))
        const answeredAt = Date.now()
        expect(ahead.outcome).toBe('applied')
        expect(ms(ahead.stage?.completedAt)).toBeGreaterThanOrEqual(sentAt + TOLERANCE)
        expect(ms(ahead.stage?.completedAt)).toBeLessThanOrEqual(answeredAt + TOLERANCE)

        // Stage 2 from a runner in UTC+9 that sent a naive local time, read as UTC: 9 h before the
        // run was created. Its first report is final, so it can finish no earlier than the run
        // started: stored as the run's startedAt.
        const naive = new Date(ms(createdAt) - 9 * HOUR).toISOString().slice(0, -1)
        const before = await api.stageOk(id, makeStageUpdate({ stageNumber: 2, status: 'COMPLETED', output: 'two', completedAt: naive }))
        expect(before).toMatchObject({ outcome: 'applied', stage: { completedAt: startedAt, startedAt } })

        // Read back as stored.
        const status = await api.status(id)
        expect(status.stages.map((stage) => [stage.stageNumber, stage.completedAt])).toEqual([
          [1, ahead.stage?.completedAt],
          [2, startedAt],
        ])

        // /complete the same way: 9 h ahead is clamped to now + 5 min, the run's completedAt too.
        const completedSentAt = Date.now()
        const completed = await api.completeOk(id, makeCompleteRun({ status: 'FAILED', error: 'stage 3 gave up', completedAt: new Date(completedSentAt + 9 * HOUR).toISOString() }))
        expect(completed.outcome).toBe('applied')
        expect(ms(completed.run.completedAt)).toBeGreaterThanOrEqual(completedSentAt + TOLERANCE)
        expect(ms(completed.run.completedAt)).toBeLessThanOrEqual(Date.now() + TOLERANCE)
        expect((await api.status(id)).run).toMatchObject({ status: 'FAILED', completedAt: completed.run.completedAt })

        // Three clamped instants, one warning for the run, naming the skew and the fix.
        const logged = warningsOf(id, 'completedAt')
        expect(logged).toHaveLength(1)
        expect(logged[0]?.message).toMatch(/the runner sent completedAt \S+, 9 hours ahead of the server's clock \(tolerance 5 minutes\); stored clamped to /)
        expect(logged[0]?.message).toContain('sync it (NTP)')
        expect(logged[0]?.details).toMatchObject({ runId: id, bound: 'ahead', toleranceMs: TOLERANCE, stored: ahead.stage?.completedAt })
        expect(logged[0]?.details?.['skewMs']).toBeGreaterThanOrEqual(9 * HOUR - (answeredAt - sentAt))

        // Another run gets its own warning: here, the naive time first.
        const other = await api.createRun()
        const otherCreated = (await api.status(other)).run.createdAt
        const otherNaive = new Date(ms(otherCreated) - 9 * HOUR).toISOString().slice(0, -1)
        expect((await api.completeOk(other, makeCompleteRun({ completedAt: otherNaive }))).run.completedAt).toBe(otherCreated)
        const otherLogged = warningsOf(other, 'completedAt')
        expect(otherLogged).toHaveLength(1)
        expect(otherLogged[0]?.message).toContain('9 hours before the run was created')
        expect(otherLogged[0]?.message).toContain("send UTC instants with 'Z'")
      },
      { logger },
    )

    const CREATED = new Date('2026-03-01T12:00:00.000Z')
    scenario(
      'clockSkewToleranceMs sets the window: 1 minute ahead is stored as sent, 2 minutes ahead as now + 1 minute',
      async (api) => {
        const id = await api.createRun()
        expect((await api.status(id)).run.createdAt).toBe(CREATED.toISOString())
        const inside = await api.stageOk(id, makeStageUpdate({ status: 'COMPLETED', completedAt: '2026-03-01T12:01:00.000Z' }))
        expect(inside.stage?.completedAt).toBe('2026-03-01T12:01:00.000Z')
        const outside = await api.stageOk(id, makeStageUpdate({ stageNumber: 2, status: 'COMPLETED', completedAt: '2026-03-01T12:02:00.000Z' }))
        expect(outside.stage?.completedAt).toBe('2026-03-01T12:01:00.000Z')
        expect(warningsOf(id, 'completedAt').map((w) => w.details?.['skewMs'])).toEqual([120_000])
      },
      { clock: () => CREATED, clockSkewToleranceMs: 60_000, logger },
    )

    // A runner's outbox delivering after an outage: the stage's PROCESSING reaches the server late,
    // just before its COMPLETED, whose completedAt (the runner's, right) is before that receipt.
    let serverNow = new Date('2026-03-01T12:00:00.000Z')
    scenario(
      "a stage's PROCESSING that arrived late: its completedAt is stored as its start (0 s), and the warning names the late delivery first, then the clock",
      async (api) => {
        const id = await api.createRun()
        serverNow = new Date('2026-03-01T12:00:10.000Z')
        await api.stageOk(id, makeStageUpdate({ status: 'PROCESSING' }))
        serverNow = new Date('2026-03-01T12:00:10.020Z')
        const completed = await api.stageOk(id, makeStageUpdate({ status: 'COMPLETED', output: 'one', completedAt: '2026-03-01T12:00:07.000Z' }))
        expect(completed.stage).toMatchObject({ startedAt: '2026-03-01T12:00:10.000Z', completedAt: '2026-03-01T12:00:10.000Z' })
        const logged = warningsOf(id, 'completedAt')
        expect(logged.map((w) => w.message)).toEqual([
          `pipeline-status: run ${id}: the runner sent completedAt 2026-03-01T12:00:07.000Z, 3 seconds before the stage started ` +
            "(2026-03-01T12:00:10.000Z, when the server received the stage's PROCESSING update); stored clamped to that start, " +
            "so the stage's duration is stored as 0 s. Either the stage's PROCESSING update arrived late (a runner's outbox " +
            "delivering after an outage or a server restart; nothing to fix then), or the runner's clock is behind, or it sent a " +
            "local time without an offset, which is read as UTC: sync its clock (NTP), or send UTC instants with 'Z' " +
            '(Python: datetime.now(timezone.utc).isoformat()) (stage 1; logged once per run)',
        ])
        expect(logged[0]?.details).toMatchObject({ runId: id, bound: 'before_start', skewMs: 3_000, stored: '2026-03-01T12:00:10.000Z' })
      },
      { clock: () => serverNow, logger },
    )

    scenario(
      'a final status again with a different output answers 200 conflict and changes nothing; identical or output-less repeats are duplicate; one warning per run',
      async (api) => {
        const id = await api.createRun()
        const first = await api.stageOk(id, makeStageUpdate({ status: 'COMPLETED', output: 'first' }))
        expect(first.outcome).toBe('applied')
        const before = await api.status(id)
        const etag = (await api.getStatus(id)).headers.get('etag')

        const conflict = await api.stageOk(id, makeStageUpdate({ status: 'COMPLETED', output: 'second' }))
        expect(conflict).toEqual({ ...first, outcome: 'conflict' })
        expect(await api.stageOk(id, makeStageUpdate({ status: 'COMPLETED', output: 'third' }))).toMatchObject({ outcome: 'conflict', stage: { output: 'first' } })
        expect(await api.stageOk(id, makeStageUpdate({ status: 'COMPLETED', output: 'first' }))).toMatchObject({ outcome: 'duplicate', stage: { output: 'first' } })
        expect(await api.stageOk(id, makeStageUpdate({ status: 'COMPLETED' }))).toMatchObject({ outcome: 'duplicate', stage: { output: 'first' } })
        expect(await api.stageOk(id, makeStageUpdate({ status: 'COMPLETED', output: null }))).toMatchObject({ outcome: 'duplicate' })
        expect(await api.status(id)).toEqual(before)
        expect((await api.getStatus(id)).headers.get('etag')).toBe(etag)

        // A failed stage whose error is sent again, different: the run's error stays the first.
        const failed = await api.stageOk(id, makeStageUpdate({ stageNumber: 2, status: 'FAILED', output: 'boom' }))
        expect(failed.run).toMatchObject({ status: 'FAILED', error: 'boom' })
        const again = await api.stageOk(id, makeStageUpdate({ stageNumber: 2, status: 'FAILED', output: 'other boom' }))
        expect(again).toMatchObject({ outcome: 'conflict', stage: { output: 'boom' }, run: { status: 'FAILED', error: 'boom' } })

        const logged = warningsOf(id, 'another output')
        expect(logged).toHaveLength(1)
        expect(logged[0]?.message).toContain('stage 1 is already COMPLETED with another output; the stored output stays')
        expect(logged[0]?.details).toMatchObject({ runId: id, stageNumber: 1, outcome: 'conflict' })
      },
      { logger },
    )
  })
}
