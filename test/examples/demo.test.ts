/** `npm run demo`, the README's main job: it must print every stage and the run COMPLETED, and exit 0. */
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { expect, it } from 'vitest'

const root = fileURLToPath(new URL('../..', import.meta.url))

it('runs five stages against the real handlers on embedded PostgreSQL and reads them back', async () => {
  const env: NodeJS.ProcessEnv = { ...process.env, DEMO_STAGE_DELAY_MS: '50' }
  delete env['DATABASE_URL']
  const { stdout } = await promisify(execFile)(process.execPath, [join(root, 'node_modules/tsx/dist/cli.mjs'), 'examples/demo/demo.ts'], {
    cwd: root,
    env,
  })
  expect(stdout).toContain('(database: pglite)')
  for (const name of ['Input Processing', 'Signal Amplification', 'General Translation', 'Brand Contextualization', 'Opportunity Generation']) {
    expect(stdout).toMatch(new RegExp(`\\d\\. ${name}\\s+COMPLETED`))
  }
  expect(stdout).toMatch(/run \S+: COMPLETED/)
  expect(stdout).toContain('Demo finished: the run is COMPLETED.')
})
