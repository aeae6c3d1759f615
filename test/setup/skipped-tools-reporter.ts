/**
 * Prints one line at the end of a test run when tests were skipped because this machine lacks
 * a program they need (see test/support/optional-tools.ts): which tests, what is missing, and
 * how to enable them. Silent when nothing was skipped for that reason.
 */
import type { Reporter, TestModule } from 'vitest/node'
import { chromiumTool, pythonClientTool, pythonHandlersTool, pythonTool, REQUIRE_ALL_VARIABLE, requireAllTools } from '../support/optional-tools.js'
import { pgbouncerTool } from '../support/pgbouncer.js'

export default class SkippedToolsReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    if (requireAllTools()) return
    const ran = testModules.map((module) => module.moduleId.replaceAll('\\', '/'))
    const skipped = [chromiumTool(), pythonTool(), pythonClientTool(), pythonHandlersTool(), pgbouncerTool()].filter(
      (tool) => tool.path === undefined && ran.some((id) => id.endsWith(`/${tool.file}`)),
    )
    if (skipped.length === 0) return
    const what = skipped.map((tool) => `${tool.tests} (${tool.file}: ${tool.missing}; ${tool.enable})`).join('; ')
    process.stdout.write(`\nSKIPPED ${what}. ${REQUIRE_ALL_VARIABLE}=1 makes them fail instead of skipping (CI sets it).\n`)
  }
}
