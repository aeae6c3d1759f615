/**
 * The Python client (clients/python) through its own `unittest` suite, run by Python 3 in a
 * child process with the command its README documents (`python3 -m unittest` in clients/python,
 * no PYTHONPATH): unit tests (signing vectors, storable output), and the client against the mock
 * server, the Express example, and the Express adapter with signing only, on this run's database
 * (a throwaway PostgreSQL database with DATABASE_URL, else PGlite), each behind a recording,
 * fault-injecting proxy. Fails when any Python test fails, errors or is skipped. Also: the
 * README's command from the repository's root finds the same tests, and the tests that need a
 * server say so when this machine cannot start one (skipped with the reason and its fix, or
 * failed under PIPELINE_STATUS_REQUIRE_ALL). Without Python 3.9+ it is skipped
 * (test/support/optional-tools.ts), unless PIPELINE_STATUS_REQUIRE_ALL is set.
 */
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestDatabase, type TestDatabase } from '../setup/test-database.js'
import { pythonClientTool, toolForTests } from '../support/optional-tools.js'

const root = fileURLToPath(new URL('../..', import.meta.url))
const clientDir = join(root, 'clients/python')
const python = toolForTests(pythonClientTool())

/** `python3 -m unittest <args>` in `cwd`, as a person types it: no PYTHONPATH. */
function unittest(cwd: string, args: string[], env: Record<string, string> = {}, timeout = 30_000): Promise<{ code: number | null; output: string }> {
  const inherited: Record<string, string | undefined> = { ...process.env }
  delete inherited['PYTHONPATH']
  return new Promise((resolve) => {
    const child = execFile(
      python!,
      ['-m', 'unittest', ...args],
      { cwd, env: { ...inherited, PYTHONDONTWRITEBYTECODE: '1', ...env }, maxBuffer: 64 * 1024 * 1024, timeout },
      (_error, stdout, stderr) => resolve({ code: child.exitCode, output: `${stdout}${stderr}` }),
    )
  })
}

/** unittest prints "Ran N tests" and "OK" only when every test passed. */
function ran(output: string): number {
  return Number(/Ran (\d+) tests?/.exec(output)?.[1] ?? 0)
}

describe.skipIf(!python)('the Python client (clients/python)', () => {
  let db: TestDatabase | undefined

  beforeAll(async () => {
    // The Express example gets a database of its own; PGlite (no DATABASE_URL) runs in the child.
    if (process.env['DATABASE_URL']) db = await createTestDatabase({ poolSize: 1 })
  })
  afterAll(async () => {
    await db?.close()
  })

  it('the README commands find the tests: `python3 -m unittest` in clients/python, `discover -s clients/python` from the root', async () => {
    for (const [cwd, args] of [
      [clientDir, ['-k', 'SigningTest']],
      [root, ['discover', '-s', 'clients/python', '-k', 'SigningTest']],
    ] as const) {
      const { code, output } = await unittest(cwd, [...args])
      expect({ code, ran: ran(output), ok: /\nOK\b/.test(output) }, output).toEqual({ code: 0, ran: 3, ok: true })
    }
  })

  it('the tests that need a server name what is missing and its fix when skipped, and fail under PIPELINE_STATUS_REQUIRE_ALL', async () => {
    const noNode = { PSC_NODE: join(root, 'no-such-node'), PIPELINE_STATUS_REQUIRE_ALL: '' }
    const skipped = await unittest(clientDir, ['-v', '-k', 'test_the_catalogue_check', '-k', 'test_a_signing_only_runner'], noNode)
    expect(skipped.code, skipped.output).toBe(0)
    expect(skipped.output).toMatch(/OK \(skipped=3\)/)
    const reason = `no Node.js at ${noNode.PSC_NODE} (install Node.js 22.12 or later, or set PSC_NODE to its binary)`
    // -v names each skip; the reason is on stderr too, for a run without -v.
    expect(skipped.output).toContain(`skipped 'needs the mock server from this repository: ${reason}'`)
    expect(skipped.output).toContain(`skipped: the tests that need the Express example from this repository: ${reason}`)

    const required = await unittest(clientDir, ['-k', 'test_the_catalogue_check'], { ...noNode, PIPELINE_STATUS_REQUIRE_ALL: '1' })
    expect(required.code).toBe(1)
    expect(required.output).toMatch(/FAILED \(errors=2\)/)
    expect(required.output).toContain(`needs the mock server from this repository: ${reason}; not skipped because PIPELINE_STATUS_REQUIRE_ALL is set`)
  })

  it('passes its unittest suite against the mock server and the Express example', async () => {
    const { code, output } = await unittest(clientDir, ['-v'], { PSC_NODE: process.execPath, PSC_TEST_DATABASE_URL: db?.url ?? '' }, 500_000)
    // unittest prints "Ran N tests" and "OK" only when every test passed; show its output otherwise.
    expect({ code, ok: /\nOK\b/.test(output) && !/FAILED \(/.test(output) }, output).toEqual({ code: 0, ok: true })
    // Every module of clients/python/tests ran (107 tests when this was written).
    expect(ran(output)).toBeGreaterThanOrEqual(100)
    expect(output).not.toMatch(/skipped=/)
  }, 600_000)
})
