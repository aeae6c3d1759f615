import { describe, expect, it } from 'vitest'
import type { DeadLetter } from './outbox/entry.js'
import { undeliveredLetter, undeliveredWarnings } from './pipeline-summary.js'

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
