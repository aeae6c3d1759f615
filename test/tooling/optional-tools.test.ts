/**
 * `npm test` on a machine without Chromium, from the outside: vitest run as a child process on
 * the Next.js end-to-end test with CHROMIUM_PATH at a missing file. It passes, skipping the
 * tests, and ends with one line naming them and how to enable them; with
 * PIPELINE_STATUS_REQUIRE_ALL=1 (what CI sets) the same run fails and says why.
 */
import { execFile } from 'node:child_process'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const root = fileURLToPath(new URL('../..', import.meta.url))
const vitest = join(dirname(createRequire(import.meta.url).resolve('vitest/package.json')), 'vitest.mjs')

function runVitest(env: NodeJS.ProcessEnv) {
  return new Promise<{ code: number | null; output: string }>((resolve) => {
    const child = execFile(
      process.execPath,
      [vitest, 'run', 'test/e2e/nextjs.test.ts', '--color=false'],
      { cwd: root, env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0', CHROMIUM_PATH: '/nonexistent/chromium', ...env }, maxBuffer: 16 * 1024 * 1024 },
      (_error, stdout, stderr) => resolve({ code: child.exitCode, output: `${stdout}${stderr}` }),
    )
  })
}

describe('tests that need a program this machine lacks', () => {
  it('are skipped, and the run says so in one line with how to enable them', async () => {
    const { code, output } = await runVitest({ PIPELINE_STATUS_REQUIRE_ALL: '' })
    expect(code).toBe(0)
    const lines = output.split('\n').filter((line) => line.startsWith('SKIPPED '))
    expect(lines).toEqual([
      'SKIPPED the Next.js example in Chromium (test/e2e/nextjs.test.ts: no Chromium at /nonexistent/chromium; ' +
        'apt-get install -y chromium, or set CHROMIUM_PATH to a Chromium or Chrome binary). ' +
        'PIPELINE_STATUS_REQUIRE_ALL=1 makes them fail instead of skipping (CI sets it).',
    ])
  }, 120_000)

  it('fail instead with PIPELINE_STATUS_REQUIRE_ALL=1', async () => {
    const { code, output } = await runVitest({ PIPELINE_STATUS_REQUIRE_ALL: '1' })
    expect(code).toBe(1)
    expect(output).toContain('the Next.js example in Chromium cannot run: no Chromium at /nonexistent/chromium.')
    expect(output).not.toContain('SKIPPED ')
  }, 120_000)
})
