/**
 * The layer check (`npm run check:layers`: dependency-cruiser with `.dependency-cruiser.cjs`), run
 * by `npm test` as well as by CI. It passes on this tree, and it bites: in a temporary copy of the
 * tree, an upward import, a sideways import between peers and a circle of type-only imports are
 * each reported, and nothing else is added to what the tree itself reports.
 */
import { execFile } from 'node:child_process'
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'

const root = fileURLToPath(new URL('../..', import.meta.url))
// The package's exports map hides its bin and package.json, so the bin is found by its path.
const depcruise = join(root, 'node_modules', 'dependency-cruiser', 'bin', 'dependency-cruiser.mjs')

/** The arguments of `npm run check:layers`, so this test runs exactly what CI runs. */
function checkArguments(): string[] {
  const scripts = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts
  const [command, ...args] = (scripts['check:layers'] ?? '').split(/\s+/)
  expect(command).toBe('depcruise')
  return args
}

function runCheck(cwd: string, extra: string[] = []) {
  return new Promise<{ code: number | null; output: string }>((resolve) => {
    const child = execFile(
      process.execPath,
      [depcruise, ...checkArguments(), ...extra],
      { cwd, env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' }, maxBuffer: 64 * 1024 * 1024 },
      (_error, stdout, stderr) => resolve({ code: child.exitCode, output: `${stdout}${stderr}` }),
    )
  })
}

interface Violation {
  from: string
  to: string
  rule: { name: string }
  cycle?: { name: string }[]
}

/** The violations the check finds under `cwd`, one line each (the JSON report; its exit code is 0 either way). */
async function violationsIn(cwd: string): Promise<string[]> {
  const { output } = await runCheck(cwd, ['--output-type', 'json'])
  const result = JSON.parse(output) as { summary: { violations: Violation[] } }
  const violations = result.summary.violations.map((violation) => {
    if (!violation.cycle) return `${violation.rule.name}: ${violation.from} → ${violation.to}`
    // A circle is reported once, from whichever member the cruise met first: start it at its
    // alphabetically first member, so one circle always reads the same.
    const members = violation.cycle.map((step) => step.name)
    const first = members.indexOf([...members].sort()[0]!)
    const circle = [...members.slice(first), ...members.slice(0, first)]
    return `${violation.rule.name}: ${[...circle, circle[0]].join(' → ')}`
  })
  return violations.sort()
}

const scratch: string[] = []
afterAll(() => {
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true })
})

describe('the layer check', () => {
  it('passes on this tree: no upward or sideways import, no circle', async () => {
    const { code, output } = await runCheck(root)
    expect(output).toContain('no dependency violations found')
    expect(code).toBe(0)
  }, 120_000)

  it('reports an upward import, a sideways import and a circle of type-only imports planted in a copy of the tree', async () => {
    const copy = mkdtempSync(join(tmpdir(), 'layers-'))
    scratch.push(copy)
    // The generated Prisma client is left out (large, and never imported across layers); the
    // generated dashboard assets module is kept, since the dashboard's page imports it.
    const generated = join('src', 'generated')
    const notGenerated = (source: string) =>
      !source.includes(generated) || source.endsWith(generated) || source.endsWith(join(generated, 'dashboard-assets.ts'))
    for (const path of ['src', 'mock-server', 'test', 'tsconfig.json', 'package.json', '.dependency-cruiser.cjs']) {
      cpSync(join(root, path), join(copy, path), { recursive: true, filter: notGenerated })
    }
    symlinkSync(join(root, 'node_modules'), join(copy, 'node_modules'), 'dir')

    // Upward: the lowest layer imports the domain.
    writeFileSync(join(copy, 'src/core/planted-domain.ts'), 'export const planted = 1\n')
    writeFileSync(join(copy, 'src/internal/planted-upward.ts'), "import { planted } from '../core/planted-domain.js'\nexport const upward = planted\n")
    // Sideways: the client imports the server, a peer (type-only still counts).
    writeFileSync(join(copy, 'src/server/planted-peer.ts'), 'export interface PlantedPeer { peer: true }\n')
    writeFileSync(join(copy, 'src/client/planted-sideways.ts'), "import type { PlantedPeer } from '../server/planted-peer.js'\nexport type Sideways = PlantedPeer\n")
    // A circle made of type-only imports.
    writeFileSync(join(copy, 'src/core/planted-a.ts'), "import type { B } from './planted-b.js'\nexport interface A { b?: B }\n")
    writeFileSync(join(copy, 'src/core/planted-b.ts'), "import type { A } from './planted-a.js'\nexport interface B { a?: A }\n")

    const [tree, planted] = await Promise.all([violationsIn(root), violationsIn(copy)])
    const added = planted.filter((violation) => !tree.includes(violation))
    expect(added).toEqual(
      [
        'internal-imports-upward: src/internal/planted-upward.ts → src/core/planted-domain.ts',
        'client-imports-a-peer: src/client/planted-sideways.ts → src/server/planted-peer.ts',
        'no-circular: src/core/planted-a.ts → src/core/planted-b.ts → src/core/planted-a.ts',
      ].sort(),
    )
    // The tree's own violations (none once every circle is broken) are still reported in the copy.
    expect(planted).toEqual(expect.arrayContaining(tree))

    // The text `npm run check:layers` prints names the rule and both ends.
    const { code, output } = await runCheck(copy)
    expect(code).not.toBe(0)
    expect(output).toContain('error internal-imports-upward: src/internal/planted-upward.ts → src/core/planted-domain.ts')
  }, 180_000)
})
