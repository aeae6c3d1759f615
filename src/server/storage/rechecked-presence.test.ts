import { describe, expect, it } from 'vitest'
import { RecheckedPresence } from './rechecked-presence.js'

const RECHECK_MS = 60_000

/** A presence whose probe answers when the test says (`answer`), logging what it says into `said`. */
function presence() {
  const said: string[] = []
  const answers: Array<(answer: true | string) => void> = []
  let now = 1_000_000
  const checked = new RecheckedPresence({
    what: 'it',
    recheckMs: RECHECK_MS,
    now: () => now,
    probe: () => new Promise<true | string>((resolve) => answers.push(resolve)),
    onMissing: (cause) => void said.push(`missing: ${cause}`),
    onPresentAgain: () => void said.push('there again'),
  })
  return {
    checked,
    said,
    /** Answers the oldest probe not answered yet. */
    answer: (value: true | string) => (answers.shift() as (answer: true | string) => void)(value),
    asked: () => answers.length,
    advance: (ms: number) => void (now += ms),
  }
}

describe('RecheckedPresence', () => {
  it('a probe that answers "there" after a statement found it gone meanwhile says nothing false: still missing, not "there again"', async () => {
    const p = presence()
    // Missing, said; a minute later it is asked again…
    const first = p.checked.present()
    p.answer('no table')
    expect(await first).toBe(false)
    p.advance(RECHECK_MS)
    const recheck = p.checked.present()
    expect(p.asked()).toBe(1)
    // …and while the database is asked, a statement sent before finds it gone.
    p.checked.missing('a statement found it gone')
    p.answer(true)
    expect(await recheck).toBe(false)
    expect(await p.checked.present()).toBe(false)
    expect(p.said).toEqual(['missing: no table'])
    // The next recheck, with nothing newer, finds it there and says so once.
    p.advance(RECHECK_MS)
    const again = p.checked.present()
    p.answer(true)
    expect(await again).toBe(true)
    expect(p.said).toEqual(['missing: no table', 'there again'])
  })

  it('the first answer "there", with no statement meanwhile: there, nothing said', async () => {
    const p = presence()
    const first = p.checked.present()
    p.answer(true)
    expect(await first).toBe(true)
    expect(p.said).toEqual([])
  })
})
