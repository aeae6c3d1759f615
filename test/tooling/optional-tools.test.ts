/**
 * `npm test` on a machine without Chromium or PostgreSQL, from the outside: vitest run as a child
 * process on the Next.js end-to-end test (CHROMIUM_PATH at a missing file) and the tests that need
 * two PostgreSQL sessions (no DATABASE_URL). It passes, skipping those tests, and ends with one
 * line naming each skipped group, how many tests, why and how to enable them; with
 * PIPELINE_STATUS_REQUIRE_ALL=1 (what CI sets) a missing program fails the run and says why.
 */
import { execFile } from 'node:child_process'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const root = fileURLToPath(new URL('../..', import.meta.url))
const vitest = join(dirname(createRequire(import.meta.url).resolve('vitest/package.json')), 'vitest.mjs')

function runVitest(env: NodeJS.ProcessEnv, files = ['test/e2e/nextjs.test.ts']) {
  return new Promise<{ code: number | null; output: string }>((resolve) => {
    const child = execFile(
      process.execPath,
      [vitest, 'run', ...files, '--color=false'],
      { cwd: root, env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0', CHROMIUM_PATH: '/nonexistent/chromium', ...env }, maxBuffer: 16 * 1024 * 1024 },
      (_error, stdout, stderr) => resolve({ code: child.exitCode, output: `${stdout}${stderr}` }),
    )
  })
}

describe('tests that need a program this machine lacks', () => {
  it('are skipped, and the run says so in one line with how to enable them', async () => {
    const { code, output } = await runVitest({ PIPELINE_STATUS_REQUIRE_ALL: '', DATABASE_URL: '' }, [
      'test/e2e/nextjs.test.ts',
      'test/live/across-instances.test.ts',
    ])
    expect(code).toBe(0)
    const lines = output.split('\n').filter((line) => line.startsWith('SKIPPED '))
    expect(lines).toHaveLength(1)
    const suffix = '. Tests skipped for a missing program fail instead with PIPELINE_STATUS_REQUIRE_ALL=1 (CI sets it).'
    expect(lines[0]!.endsWith(suffix)).toBe(true)
    const groups = lines[0]!.slice('SKIPPED '.length, -suffix.length).split('; "').map((group, index) => (index === 0 ? group : `"${group}`))
    // Files run in parallel, so the order of the groups is the order the files finished in.
    expect(groups.sort()).toEqual([
      expect.stringMatching(
        /^"live status across two instances on one PostgreSQL \(listen mode\)" \(test\/live\/across-instances\.test\.ts, \d+ tests: no DATABASE_URL \(they need a PostgreSQL server; PGlite has a single session\); set DATABASE_URL=postgresql:\/\/USER@HOST:5432\/DATABASE\)$/,
      ),
      expect.stringMatching(
        /^"live status across two instances on one PostgreSQL \(poll mode\)" \(test\/live\/across-instances\.test\.ts, \d+ tests: no DATABASE_URL/,
      ),
      expect.stringMatching(
        /^"the Next.js example" \(test\/e2e\/nextjs\.test\.ts, \d+ tests: no Chromium at \/nonexistent\/chromium; apt-get install -y chromium, or set CHROMIUM_PATH to a Chromium or Chrome binary\)$/,
      ),
    ])
  }, 300_000) // a child vitest run: its start-up alone took over 120 s at a load average of 20

  it('fail instead with PIPELINE_STATUS_REQUIRE_ALL=1', async () => {
    const { code, output } = await runVitest({ PIPELINE_STATUS_REQUIRE_ALL: '1' })
    expect(code).toBe(1)
    expect(output).toContain('the Next.js example in Chromium cannot run: no Chromium at /nonexistent/chromium.')
    expect(output).not.toContain('SKIPPED ')
  }, 300_000) // a child vitest run: its start-up alone took over 120 s at a load average of 20
})
