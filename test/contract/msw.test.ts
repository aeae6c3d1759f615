/** The contract suite against the MSW mock in-process (`setupServer(...mock.handlers)`). */
import { describeContract } from './suite/index.js'
import { mswTarget } from './targets.js'

describeContract('msw mock in-process', () => mswTarget)
