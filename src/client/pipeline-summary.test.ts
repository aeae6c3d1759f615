import { describe, expect, it } from 'vitest'
import type { DeadLetter } from './outbox/entry.js'
import { UNDELIVERED_CAUSE_LINES, type Undelivered, undeliveredLetter, undeliveredWarnings } from './pipeline-summary.js'

/** A dead-lettered output chunk of stage 2, as the outbox records it. */
function chunk(seq: number, refusal: Pick<DeadLetter, 'reason' | 'status' | 'code'>): DeadLetter {
  return {
    id: `chunk-${seq}`,
    runId: 'r',
    route: 'stageOutput',
    stageNumber: 2,
    body: JSON.stringify({ seq, text: 'x' }),
    queuedAt: '2026-12-07T00:00:00.000Z',
    deadLetteredAt: '2026-12-07T00:00:01.000Z',
    ...refusal,
  }
}

/** The server's refusal of chunk `seq` after chunk `expected` went missing: each detail names other offsets. */
const outOfOrder = (seq: number, expected: number) =>
  chunk(seq, { status: 409, code: 'output_out_of_order', reason: `HTTP 409 output_out_of_order: Stage 2 expects chunk seq ${expected} next, got ${seq}` })

const CASCADE_CAUSE = "the server applies a stage's chunks only in order, so none after a missing one can be stored (output_out_of_order)"

describe('undeliveredWarnings: a chunk cascade is one line', () => {
  it('groups the chunks refused as out of order after a missing one, whatever their offsets, naming that chunk and the count', () => {
    // Chunk 3 expired in the outbox (an unanswered attempt of it may have been stored, so the outbox
    // still sent the later ones): the server refused each of them as out of order.
    const expired = chunk(3, { reason: 'expired: undelivered 259300 s after its first attempt (maxAgeMs 259200000)' })
    const letters = [expired, outOfOrder(4, 3), outOfOrder(5, 3), outOfOrder(6, 3)]
    expect(undeliveredWarnings(letters.map((letter) => undeliveredLetter(letter, false)))).toEqual([
      `Stage 2 output chunk 3 was not delivered (dead-lettered): ${expired.reason}`,
      `3 later chunks of the streamed output of stage 2 (chunks 4 to 6) were not delivered (dead-lettered) because stage 2 output chunk 3 was not: ${CASCADE_CAUSE}`,
    ])
  })

  it("takes the first out-of-order refusal as the cascade's first when no earlier chunk of the stage is named, and an earlier process's apart", () => {
    const earlier = { skipped: new Set<number>(), ended: false }
    const undelivered = [
      ...[outOfOrder(7, 5), outOfOrder(8, 5)].map((letter) => undeliveredLetter(letter, earlier)),
      ...[outOfOrder(1, 0), outOfOrder(2, 0)].map((letter) => undeliveredLetter(letter, false)),
    ]
    expect(undeliveredWarnings(undelivered)).toEqual([
      "An earlier process's stage 2 output chunk 7 was not delivered (dead-lettered): HTTP 409 output_out_of_order: Stage 2 expects chunk seq 5 next, got 7",
      `1 later chunk of the streamed output of an earlier process's stage 2 (chunk 8) was not delivered (dead-lettered) because an earlier process's stage 2 output chunk 7 was not: ${CASCADE_CAUSE}`,
      'Stage 2 output chunk 1 was not delivered (dead-lettered): HTTP 409 output_out_of_order: Stage 2 expects chunk seq 0 next, got 1',
      `1 later chunk of the streamed output of stage 2 (chunk 2) was not delivered (dead-lettered) because stage 2 output chunk 1 was not: ${CASCADE_CAUSE}`,
    ])
  })
})

/** An update of stage `stage` lost on its first send. */
const lost = (subject: Undelivered['subject'], reason = 'HTTP 503 database_unavailable'): Undelivered => ({ subject, state: 'failed', reason })
const progress = (stage = 2) => lost({ kind: 'progress', stageNumber: String(stage) })

describe('undeliveredWarnings: each kind of update is named once, with a count', () => {
  it('says hundreds of refused progress reports of a stage in one short line', () => {
    const warnings = undeliveredWarnings([
      lost({ kind: 'status', stageNumber: '2', status: 'PROCESSING' }),
      ...Array.from({ length: 312 }, () => progress()),
      progress(3),
      lost({ kind: 'completion' }),
    ])
    expect(warnings).toEqual([
      '315 updates were not delivered (failed): HTTP 503 database_unavailable (stage 2 PROCESSING, stage 2 progress report ×312, stage 3 progress report, the completion)',
    ])
  })

  it("names a stage's output chunks once, with their count and range, and keeps a single update's wording", () => {
    const chunks = [5, 3, 9].map((seq) => lost({ kind: 'output', stageNumber: '2', seq: String(seq) }))
    expect(undeliveredWarnings([...chunks, progress()])).toEqual([
      '4 updates were not delivered (failed): HTTP 503 database_unavailable (stage 2 output chunk ×3 (chunks 3 to 9), stage 2 progress report)',
    ])
    expect(undeliveredWarnings([progress()])).toEqual(['Stage 2 progress report was not delivered (failed): HTTP 503 database_unavailable'])
  })

  it(`names at most ${UNDELIVERED_CAUSE_LINES} causes on lines of their own; the updates of further causes share one last line`, () => {
    // Each report dead-lettered as expired has a reason of its own (its age).
    const expired = (i: number) => ({ ...progress(), state: 'dead-lettered' as const, reason: `expired: undelivered ${259_201 + i} s after its first attempt` })
    const warnings = undeliveredWarnings(Array.from({ length: 500 }, (_, i) => expired(i)))
    expect(warnings).toHaveLength(UNDELIVERED_CAUSE_LINES + 1)
    expect(warnings[0]).toBe('Stage 2 progress report was not delivered (dead-lettered): expired: undelivered 259201 s after its first attempt')
    expect(warnings.at(-1)).toBe(
      `${500 - UNDELIVERED_CAUSE_LINES} more updates were not delivered for other causes, the first (dead-lettered): ` +
        `expired: undelivered ${259_201 + UNDELIVERED_CAUSE_LINES} s after its first attempt (stage 2 progress report ×${500 - UNDELIVERED_CAUSE_LINES})`,
    )
  })
})
