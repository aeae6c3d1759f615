/**
 * The Python client (clients/python) through its own `unittest` suite, run by Python 3 in a
 * child process: unit tests (signing vectors, storable output), and the client against the mock
 * server, the Express example, and the Express adapter with signing only, on this run's database
 * (a throwaway PostgreSQL database with DATABASE_URL, else PGlite), each behind a recording,
 * fault-injecting proxy. Fails when any
 * Python test fails or errors. Without Python 3.9+ it is skipped (test/support/optional-tools.ts),
 * unless PIPELINE_STATUS_REQUIRE_ALL is set.
 */
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestDatabase, type TestDatabase } from '../setup/test-database.js'
import { pythonClientTool, toolForTests } from '../support/optional-tools.js'

const root = fileURLToPath(new URL('../..', import.meta.url))
const python = toolForTests(pythonClientTool())

describe.skipIf(!python)('the Python client (clients/python)', () => {
  let db: TestDatabase | undefined

  beforeAll(async () => {
    // The Express example gets a database of its own; PGlite (no DATABASE_URL) runs in the child.
    if (process.env['DATABASE_URL']) db = await createTestDatabase({ poolSize: 1 })
  })
  afterAll(async () => {
    await db?.close()
  })

  it('passes its unittest suite against the mock server and the Express example', async () => {
    const { code, output } = await new Promise<{ code: number | null; output: string }>((resolve) => {
      const child = execFile(
        python!,
        ['-m', 'unittest', 'discover', '-v', '-s', 'clients/python/tests'],
        {
          cwd: root,
          env: {
            ...process.env,
            PYTHONPATH: join(root, 'clients/python'),
            PYTHONDONTWRITEBYTECODE: '1',
            PSC_NODE: process.execPath,
            PSC_TEST_DATABASE_URL: db?.url ?? '',
          },
          maxBuffer: 64 * 1024 * 1024,
          timeout: 500_000,
        },
        (_error, stdout, stderr) => resolve({ code: child.exitCode, output: `${stdout}${stderr}` }),
      )
    })
    // unittest prints "Ran N tests" and "OK" only when every test passed; show its output otherwise.
    expect({ code, ok: /\nOK\b/.test(output) && !/FAILED \(/.test(output) }, output).toEqual({ code: 0, ok: true })
    const ran = Number(/Ran (\d+) tests?/.exec(output)?.[1] ?? 0)
    expect(ran).toBeGreaterThanOrEqual(30)
    expect(output).not.toMatch(/skipped=/)
  }, 600_000)
})
