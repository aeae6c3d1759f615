/**
 * docs/components.md "Under a strict Content-Security-Policy": with zod's `jitless` set before the
 * package loads, loading `pipeline-status-sdk/react` and parsing an event never calls
 * `new Function` (the eval a CSP without 'unsafe-eval' reports); without it zod does. Each case
 * runs in its own Node process (zod's setting and its probe are once per process).
 */
import { execFile } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { promisify } from 'node:util'
import { expect, it } from 'vitest'

const root = fileURLToPath(new URL('../..', import.meta.url))

const PROBE = `
import { config } from 'zod'
if (process.argv[2] === 'jitless') config({ jitless: true })
let built = 0
const Original = globalThis.Function
globalThis.Function = new Proxy(Original, { construct: (target, args) => (built++, Reflect.construct(target, args)) })
await import(${JSON.stringify(pathToFileURL(join(root, 'src/react/index.ts')).href)})
const { RunUpdateEvent } = await import(${JSON.stringify(pathToFileURL(join(root, 'src/index.ts')).href)})
RunUpdateEvent.safeParse({ run: { id: 'run_1' }, stages: [] })
console.log(JSON.stringify({ built }))
`

async function evalsBuilt(mode: 'jitless' | 'default'): Promise<number> {
  const dir = await mkdtemp(join(root, 'node_modules/.pss-csp-'))
  try {
    const file = join(dir, 'probe.mts')
    await writeFile(file, PROBE)
    const { stdout } = await promisify(execFile)(process.execPath, [join(root, 'node_modules/tsx/dist/cli.mjs'), file, mode], { cwd: root, timeout: 60_000 })
    return (JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as { built: number }).built
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

it("with zod's jitless set first, the package's parsing builds no function from a string (no CSP eval report)", async () => {
  expect(await evalsBuilt('jitless')).toBe(0)
  // The check has teeth: without the setting, zod's probe (and its compiled parsers) do.
  expect(await evalsBuilt('default')).toBeGreaterThan(0)
}, 120_000)
