/**
 * RunList's two forms take different props: one only the other has is a type error, not a prop
 * silently ignored (the union of the two forms would otherwise accept either's). Type-checked by
 * `tsc` (the test project); the assertions below hold at run time too.
 */
import { createElement } from 'react'
import { describe, expect, expectTypeOf, it } from 'vitest'
import { RunList, type RunListProps } from '../../src/react/index.js'

describe('RunList props', () => {
  it("refuses the live form's props with runs, and the data form's without", () => {
    const runs: RunListProps extends infer P ? Extract<P, { runs: readonly unknown[] }>['runs'] : never = []
    // @ts-expect-error appliedFilters belongs to the data form: the live form applies a typed tag itself
    createElement(RunList, { url: '/api/pipeline', appliedFilters: { tag: 'x' } })
    // @ts-expect-error tagDelayMs belongs to the live form: with runs, the app applies the filters
    createElement(RunList, { runs, tagDelayMs: 100 })
    // @ts-expect-error url belongs to the live form
    createElement(RunList, { runs, url: '/api/pipeline' })
    // @ts-expect-error limit belongs to the live form
    createElement(RunList, { runs, limit: 10 })
    // Each form alone is fine.
    expect(createElement(RunList, { runs, appliedFilters: { tag: 'x' } }).props).toMatchObject({ appliedFilters: { tag: 'x' } })
    expect(createElement(RunList, { url: '/api/pipeline', tagDelayMs: 100, limit: 10 }).props).toMatchObject({ limit: 10 })
    expectTypeOf<Extract<RunListProps, { url?: string | undefined }>>().toHaveProperty('tagDelayMs')
  })
})
