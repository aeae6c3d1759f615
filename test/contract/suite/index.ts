/**
 * The handlers' behaviour from the outside, as requests and responses, registered against any
 * target: the Web handlers in memory, the Next.js route handlers, the MSW mock, the mock server
 * and the Express router on a real port over PostgreSQL. Every target runs the same scenarios,
 * so they cannot drift apart. One file per `describe` block; harness.ts holds what they share and
 * use-target.ts the per-scenario fixture.
 */
import { describeAuthentication } from './authentication.js'
import { describeErrors } from './errors.js'
import type { ContractTarget } from './harness.js'
import { describeHttpSemanticsSocket } from './http-semantics-socket.js'
import { describeHttpSemantics } from './http-semantics.js'
import { describeInputRules } from './input-rules.js'
import { describeListRuns } from './lists.js'
import { describeLiveStatus } from './live-status.js'
import { describePipelines } from './pipelines.js'
import { describeReadTokens } from './read-tokens.js'
import { describeRoutes } from './routes.js'
import { describeRunnerClocks } from './runner-clocks.js'
import { describeRunnerControl } from './runner-control.js'
import { describeRunStats } from './run-stats.js'
import { describeSemantics } from './semantics.js'
import { describeSetStreams } from './set-streams.js'
import { describeSignatures } from './signatures.js'
import { describeStageOutput } from './stage-output.js'
import { describeTimingAttempts } from './timing-attempts.js'
import { describeTagsAndMetadata } from './tags-metadata.js'
import { useTarget } from './use-target.js'

/**
 * Registers the contract scenarios for a target. `target` is called when a scenario starts, so
 * the caller may set up what it needs in `beforeAll`; each scenario closes the handlers it started.
 */
export function describeContract(name: string, target: () => ContractTarget): void {
  const context = useTarget(name, target)
  describeRoutes(context)
  describeSemantics(context)
  describeErrors(context)
  describeInputRules(context)
  describeHttpSemantics(context)
  describeHttpSemanticsSocket(context)
  describeSignatures(context)
  describeLiveStatus(context)
  describeReadTokens(context)
  describeAuthentication(context)
  describeRunnerControl(context)
  describeRunnerClocks(context)
  describeListRuns(context)
  describeTimingAttempts(context)
  // Runs as a collection (issue 24).
  describePipelines(context)
  describeTagsAndMetadata(context)
  // Runs as a collection, part 2 (issue 25).
  describeSetStreams(context)
  // Streamed stage output (issue 27).
  describeStageOutput(context)
  // What people see (issue 29): stage stats.
  describeRunStats(context)
}
