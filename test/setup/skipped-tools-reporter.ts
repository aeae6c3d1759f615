/**
 * Prints one line at the end of a test run naming every group of tests that was skipped, from
 * what actually skipped (not from what might have): the file and suite, how many tests, and
 * why, with the way to enable them where the reason is a program or a server this machine lacks
 * (see test/support/optional-tools.ts). Silent when nothing was skipped.
 */
import type { Reporter, TestCase, TestModule } from 'vitest/node'
import { knownRequirements, REQUIRE_ALL_VARIABLE } from '../support/optional-tools.js'

/** The file relative to the repository, with forward slashes. */
function fileOf(module: TestModule): string {
  const id = module.moduleId.replaceAll('\\', '/')
  const at = id.search(/\/(test|src|mock-server)\//)
  return at === -1 ? id : id.slice(at + 1)
}

/** The outermost suite's name, or the file's when the test stands at the top level. */
function groupOf(test: TestCase): string {
  let outermost: string | undefined
  for (let parent = test.parent; parent.type === 'suite'; parent = parent.parent) outermost = parent.name
  return outermost ?? test.name
}

/** One entry per (file, outermost suite) with at least one skipped test. */
export function skippedGroups(testModules: ReadonlyArray<TestModule>): string[] {
  const requirements = knownRequirements()
  const lines: string[] = []
  for (const module of testModules) {
    const file = fileOf(module)
    const groups = new Map<string, { count: number; notes: Set<string> }>()
    for (const test of module.children.allTests('skipped')) {
      const result = test.result()
      // `it.todo` is not a skip for a missing program; only skips are reported.
      if (test.options.mode === 'todo') continue
      const group = groupOf(test)
      const entry = groups.get(group) ?? { count: 0, notes: new Set<string>() }
      entry.count += 1
      if (result.state === 'skipped' && result.note) entry.notes.add(result.note)
      groups.set(group, entry)
    }
    for (const [group, { count, notes }] of groups) {
      const requirement = requirements.find((candidate) => candidate.file === file && candidate.path === undefined)
      const why = notes.size > 0
        ? [...notes].join('; ')
        : requirement
          ? `${requirement.missing}; ${requirement.enable}`
          : 'skipped in the file (no reason recorded)'
      lines.push(`"${group}" (${file}, ${count} ${count === 1 ? 'test' : 'tests'}: ${why})`)
    }
  }
  return lines
}

export default class SkippedToolsReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    const groups = skippedGroups(testModules)
    if (groups.length === 0) return
    process.stdout.write(
      `\nSKIPPED ${groups.join('; ')}. Tests skipped for a missing program fail instead with ${REQUIRE_ALL_VARIABLE}=1 (CI sets it).\n`,
    )
  }
}
