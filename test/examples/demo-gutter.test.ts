/** The demo's gutter before each line of a stage's streamed text, however the polled pieces cut the lines. */
import { expect, it } from 'vitest'
import { GUTTER, withGutter } from '../../examples/demo/gutter.js'

/** Prints `pieces` one after another, as the demo does as the text grows. */
const print = (pieces: string[]) => {
  let shown = ''
  let out = ''
  for (const piece of pieces) {
    out += withGutter(shown, piece)
    shown += piece
  }
  return out
}

it('starts every line with the gutter, also a line whose piece came after one that ended in a line break', () => {
  const expected = `${GUTTER}# Report\n${GUTTER}\n${GUTTER}Demand is rising.\n`
  expect(print(['# Report\n', '\n', 'Demand is rising.\n'])).toBe(expected)
  expect(print(['# Report\n\nDemand ', 'is rising.\n'])).toBe(expected)
  expect(print(['# Rep', 'ort\n\nDemand is rising.\n'])).toBe(expected)
  expect(print(['# Report\n\nDemand is rising.\n'])).toBe(expected)
})
