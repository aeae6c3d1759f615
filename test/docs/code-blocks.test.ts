/**
 * The documentation cannot drift from the code: every TypeScript block of README.md and
 * docs/*.md, and every `@example` of the API reference (the TSDoc of src/ and mock-server/), is
 * type-checked against the built package (test/setup/global-setup.ts builds
 * `dist/` and generates the Prisma client before any test runs). See test/docs/code-blocks.ts
 * for how, and docs/README.md for the `ts ignore` convention and the prelude.
 */
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { beforeAll, describe, expect, it } from 'vitest'
import {
  type CodeBlock,
  type TypeCheckResult,
  collectDocumentedBlocks,
  documentedMarkdownFiles,
  extractCodeBlocks,
  formatBlockDiagnostics,
  isChecked,
  typeCheckBlocks,
} from './code-blocks.js'

const root = fileURLToPath(new URL('../..', import.meta.url))

const documented = collectDocumentedBlocks(root)
/** The `@example` blocks of the API reference (the doc comments of src/ and mock-server/), as TypeDoc shows them. */
const examples = documented.filter((block) => !block.file.endsWith('.md'))
const checked = documented.filter(isChecked)

/**
 * Samples that must fail, compiled in the same program as the docs: they prove that the package
 * resolves with its real types (not `any`) and that errors point at the right markdown line.
 */
const CANARY = extractCodeBlocks(
  [
    '# canary',
    '',
    '```ts',
    "import { DEFAULT_BASE_PATH } from 'pipeline-status-sdk'",
    "import { PrismaAPIClient } from 'pipeline-status-sdk/client'",
    '',
    'const base: number = DEFAULT_BASE_PATH',
    "new PrismaAPIClient({ baseUrl: 'http://localhost:3000', retries: 3 })",
    '```',
    '',
    '```ts',
    "await prisma.pipelineRun.findMany({ where: { state: 'FAILED' } })",
    '```',
    '',
    '```ts',
    "import { createPipelineStatusHandlers } from 'pipeline-status-sdk/server'",
    "createPipelineStatusHandlers({ prisma, onRunCompleted: async (tx) => void (await tx.report.count()) })",
    '```',
    '',
    '```ts cjs',
    "import { PrismaAPIClient } from 'pipeline-status-sdk/client'",
    'await new PrismaAPIClient().close()',
    '```',
  ].join('\n'),
  '(canary).md',
)

let result: TypeCheckResult

beforeAll(async () => {
  if (!existsSync(join(root, 'dist/client/index.d.ts'))) {
    throw new Error('dist/ is missing: the global setup builds it (npm run build)')
  }
  result = await typeCheckBlocks(root, [...checked, ...CANARY])
}, 180_000)

describe('code blocks in the documentation', () => {
  it('checks as CommonJS the samples the docs say work there', () => {
    expect(checked.filter((block) => block.flags.includes('cjs')).map((block) => block.file)).toContain('docs/quick-start.md')
  })

  it('finds the examples of the API reference, runPipeline\'s among them', () => {
    const runPipelineExamples = examples.filter((block) => block.file === 'src/client/run-pipeline.ts')
    expect(runPipelineExamples).toHaveLength(2)
    expect(examples.length).toBeGreaterThanOrEqual(80)
    expect(examples.filter((block) => !isChecked(block))).toEqual([])
  })

  it('finds the TypeScript samples of every guide', () => {
    const guides = documentedMarkdownFiles(root).filter((file) => file.startsWith('docs/') && file !== 'docs/README.md')
    const withSamples = new Set(checked.map((block: CodeBlock) => block.file))
    expect(guides.filter((file) => !withSamples.has(file))).toEqual([])
  })

  it('type-check against the built package', () => {
    const problems = result.diagnostics.filter((d) => !d.file.startsWith('(canary).md'))
    expect(problems, `Doc samples that do not compile:\n${formatBlockDiagnostics(problems)}`).toEqual([])
  })

  it('resolve the package through its exports map to dist/', () => {
    const fromRepo = result.loadedFiles.filter((file) => file.startsWith(root))
    expect(fromRepo).toContain(join(root, 'dist/client/index.d.ts'))
    // The CommonJS copies of `ts cjs` blocks resolve through the `require` conditions.
    expect(fromRepo).toContain(join(root, 'dist/client/index.d.cts'))
    expect(fromRepo.filter((file) => file.startsWith(join(root, 'src/')) && !file.startsWith(join(root, 'src/generated/')))).toEqual([])
  })

  it('report a wrong sample at its markdown line', () => {
    const canary = result.diagnostics.filter((d) => d.file.startsWith('(canary).md'))
    expect(canary.map(({ file, line, code }) => ({ file, line, code }))).toEqual([
      { file: '(canary).md', line: 7, code: 2322 }, // string is not assignable to number
      { file: '(canary).md', line: 8, code: 2353 }, // `retries` is not an option
      { file: '(canary).md', line: 12, code: 2353 }, // `state` is not a field of PipelineRun
      { file: '(canary).md', line: 17, code: 2339 }, // the hook's `tx` is the app's transaction client, which has no `report`
      // Top-level await is fine in the ES module, and an error once the block is CommonJS.
      { file: '(canary).md (as CommonJS)', line: 22, code: 1309 },
    ])
  })
})
