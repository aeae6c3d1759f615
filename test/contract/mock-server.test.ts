/** The contract suite against the mock served over real HTTP, as `pipeline-status mock` serves it. */
import { describeContract } from './suite/index.js'
import { mockServerTarget } from './targets.js'

describeContract('mock server over HTTP', () => mockServerTarget)
