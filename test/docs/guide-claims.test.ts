/**
 * What the guides say in prose, checked against what the code does: the Next.js page's lists of
 * routes and returned handlers against `NextRouteHandlers` (src/next/index.ts), the models the
 * guides say to copy against the tables the package's migrations create, and the quick start's
 * account of a wrong secret against the quick start's runner run with one, against the mock.
 */
import { execFile } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { startMockServer, type MockServerRequestEntry } from 'pipeline-status-sdk/msw'
import ts from 'typescript'
import { describe, expect, it } from 'vitest'
import { extractCodeBlocks } from './code-blocks.js'

const root = fileURLToPath(new URL('../..', import.meta.url))
const read = (file: string) => readFileSync(join(root, file), 'utf8')
const execFileAsync = promisify(execFile)

/** The members of `NextRouteHandlers`, each with its doc comment. */
function nextRouteHandlerMembers(): Array<{ name: string; doc: string }> {
  const source = ts.createSourceFile('index.ts', read('src/next/index.ts'), ts.ScriptTarget.Latest, true)
  const members: Array<{ name: string; doc: string }> = []
  source.forEachChild((node) => {
    if (!ts.isInterfaceDeclaration(node) || node.name.text !== 'NextRouteHandlers') return
    for (const member of node.members) {
      const name = member.name && ts.isIdentifier(member.name) ? member.name.text : undefined
      if (name === undefined) continue
      const doc = ts
        .getJSDocCommentsAndTags(member)
        .map((comment) => comment.getText())
        .join('\n')
        .replace(/\n\s*\* ?/g, ' ')
      members.push({ name, doc })
    }
  })
  return members
}

/** The section of a markdown file under `heading`, up to the next heading of that level or higher. */
function section(markdown: string, heading: string): string {
  const start = markdown.indexOf(`\n${heading}\n`)
  expect(start, heading).toBeGreaterThan(-1)
  const level = heading.indexOf(' ')
  const rest = markdown.slice(start + heading.length + 2)
  const end = rest.search(new RegExp(`\\n#{1,${level}} `))
  return end === -1 ? rest : rest.slice(0, end)
}

describe('docs/nextjs.md and src/next/index.ts', () => {
  const members = nextRouteHandlerMembers()
  const page = read('docs/nextjs.md')

  it('lists every handler createNextRouteHandlers returns, and nothing else, under "Options"', () => {
    expect(members.map((member) => member.name)).toContain('events')
    const options = section(page, '## Options')
    const listed = new Set([...options.matchAll(/`(\w+)(?:\(\))?`/g)].map((match) => match[1]))
    const documentedOptions = new Set(['createNextRouteHandlers', 'createPipelineStatusHandlers', 'runIdParam', 'cors', 'openStreams', 'slowStreamsClosed'])
    expect([...listed].filter((name) => !documentedOptions.has(name!) && !/^\d+$/.test(name!)).sort()).toEqual(members.map((member) => member.name).sort())
  })

  it('gives each per-route handler the file and method its doc comment names', () => {
    const perRoute = section(page, '## One file per route')
    const routes = members.flatMap(({ name, doc }) => {
      const match = /`export const (\w+) = handlers\.(\w+)` in `([^`]+)`/.exec(doc)
      return match ? [{ name, method: match[1]!, handler: match[2]!, file: match[3]! }] : []
    })
    expect(routes.map((route) => route.name).sort()).toEqual(['cancel', 'complete', 'createRun', 'events', 'heartbeat', 'listRuns', 'runCounts', 'runMetadata', 'runSetEvents', 'runStats', 'runTags', 'stageOutput', 'stageUpdate', 'status'])
    for (const route of routes) {
      expect(route.handler).toBe(route.name)
      // The handlers are created on the first request (`next build` imports the files without DATABASE_URL).
      expect(perRoute).toMatch(new RegExp(`// ${route.file.replace(/[[\]./]/g, '\\$&')}(?:: |\\n(?:import [^\\n]*\\n|\\n)*)export const ${route.method}\\b[^\\n]*=> pipelineRoutes\\(\\)\\.${route.name}\\(`))
    }
    // The preflight handler is named where the routes are, for the cors option.
    expect(perRoute).toContain('export const OPTIONS = (request: Request) => pipelineRoutes().OPTIONS(request)')
  })

  it("declares the authorize example's helpers in the example itself", () => {
    const block = extractCodeBlocks(page, 'docs/nextjs.md').find((candidate) => candidate.code.includes('authorize: async'))
    expect(block?.code).toMatch(/async function userOwnsRun\(userId: string, runId: string\): Promise<boolean> \{/)
    expect(block?.code).toMatch(/async function findSession\(token: string\)/)
  })
})

describe('the models the guides say to copy', () => {
  const created = readdirSync(join(root, 'prisma/migrations'), { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .flatMap((entry) => [...read(`prisma/migrations/${entry.name}/migration.sql`).matchAll(/CREATE TABLE "(\w+)"/g)].map((match) => match[1]!))
    .sort()

  it('are the tables the package migrations create, in the quick start, operations and the shipped schema', () => {
    expect(created).toEqual(['PipelineCatalogue', 'PipelineRun', 'StageOutput', 'StageOutputChunk', 'WebhookMessage'])
    const models = [...read('prisma/schema.prisma').matchAll(/^model (\w+) \{/gm)].map((match) => match[1]).sort()
    expect(models).toEqual(created)
    const quickStart = read('docs/quick-start.md')
    const operations = read('docs/operations.md')
    const copy = (text: string) => /Copy the\s+(five|\w+)\s+blocks\s+([^.]+)/.exec(text)
    for (const [file, text] of [['docs/quick-start.md', quickStart], ['docs/operations.md', operations]] as const) {
      const sentence = copy(text)
      expect(sentence?.[1], file).toBe('six')
      for (const table of [...created, 'RunStatus']) expect(sentence?.[2], `${file} names ${table}`).toContain(`\`${table}\``)
      expect(text, file).not.toMatch(/leave it out|only with `createPostgresReplayStore`\)?; leave/)
    }
  })

  it('are named in full wherever README.md, docs/ and the examples count or list them', () => {
    const blocks = [...read('prisma/schema.prisma').matchAll(/^(?:model|enum) (\w+) \{/gm)].map((match) => match[1]!).sort()
    expect(blocks).toEqual([...created, 'RunStatus'].sort())
    // The Next example's copy must hold the same blocks, or its `prisma migrate dev` drops a table.
    expect([...read('examples/nextjs/prisma/schema.prisma').matchAll(/^(?:model|enum) (\w+) \{/gm)].map((match) => match[1]!).sort()).toEqual(blocks)
    const numbers = ['one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight']
    const files = [
      'README.md',
      ...readdirSync(join(root, 'docs')).filter((name) => name.endsWith('.md')).map((name) => `docs/${name}`),
      ...readdirSync(join(root, 'examples'), { withFileTypes: true })
        .filter((entry) => entry.isDirectory() && existsSync(join(root, 'examples', entry.name, 'README.md')))
        .map((entry) => `examples/${entry.name}/README.md`),
    ]
    const alternatives = [...blocks].sort((a, b) => b.length - a.length).join('|')
    const name = `\`?\\b(?:${alternatives})\\b\`?`
    const list = new RegExp(`${name}(?:,\\s+${name})*,?\\s+and\\s+${name}`, 'g')
    let counted = 0
    for (const file of files) {
      const text = read(file)
      // "the five blocks", "the four models": the count of what is copied.
      for (const match of text.matchAll(/\b(one|two|three|four|five|six|seven|eight) (blocks|models)\b/g)) {
        counted += 1
        const expected = match[2] === 'blocks' ? blocks.length : created.length
        expect(`${file}: ${match[0]}`).toBe(`${file}: ${numbers[expected - 1]} ${match[2]}`)
      }
      // A list of three or more of the blocks is a list of what to copy: it names every model (and
      // the enum too, when it names the enum among them).
      for (const match of text.matchAll(list)) {
        const named = [...new Set([...match[0].matchAll(new RegExp(`\\b(?:${alternatives})\\b`, 'g'))].map((found) => found[0]))].sort()
        if (named.length >= 3) expect(`${file}: ${named.join(', ')}`).toBe(`${file}: ${(named.includes('RunStatus') ? blocks : created).join(', ')}`)
      }
    }
    expect(counted).toBeGreaterThanOrEqual(4)
  })
})

describe("the migrate command's output quoted in the docs", () => {
  it('counts the migrations the package ships', () => {
    const shipped = readdirSync(join(root, 'prisma/migrations'), { withFileTypes: true }).filter((entry) => entry.isDirectory()).length
    const quoted = [...read('docs/operations.md').matchAll(/pipeline-status migrate: applied (\d+) migrations?/g)].map((match) => Number(match[1]))
    expect(quoted.length).toBeGreaterThan(0)
    for (const count of quoted) expect(count).toBe(shipped)
  })
})

describe("the quick start's wrong secret", () => {
  it('is what its runner does with one: createRun rejects with the quoted 401 before any stage runs, exit code 1', async () => {
    const guide = read('docs/quick-start.md')
    const blocks = extractCodeBlocks(guide, 'docs/quick-start.md')
    const runner = blocks.find((block) => block.code.startsWith('// runner.ts\n'))
    expect(runner).toBeDefined()
    const quoted = blocks.find((block) => block.lang === 'text' && block.code.startsWith('StatusHttpError: '))?.code.trim()
    expect(quoted).toBe(
      'StatusHttpError: POST http://127.0.0.1:4010/api/pipeline/runs failed with 401 (unauthorized: X-Webhook-Secret does not match) after 1 attempt(s)',
    )
    if (!existsSync(join(root, 'dist/client/index.js'))) throw new Error('dist/ is missing: the global setup builds it (npm run build)')

    const requests: MockServerRequestEntry[] = []
    const server = await startMockServer({ secret: 'dev-secret', autoCreateRuns: true, onRequest: (entry) => requests.push(entry) })
    const base = await mkdtemp(join(tmpdir(), 'pss-wrong-secret-'))
    try {
      await mkdir(join(base, 'node_modules'))
      await symlink(root, join(base, 'node_modules/pipeline-status-sdk'), 'dir')
      await writeFile(join(base, 'package.json'), JSON.stringify({ name: 'wrong-secret', private: true, type: 'module' }))
      await writeFile(join(base, 'runner.ts'), runner!.code)
      const env: NodeJS.ProcessEnv = { ...process.env, FRONTEND_WEBHOOK_URL: server.url, WEBHOOK_SECRET: 'not-the-secret' }
      delete env['PIPELINE_STATUS_SIGNING_SECRET']
      const tsx = createRequire(import.meta.url).resolve('tsx/cli')
      const result = await execFileAsync(process.execPath, [tsx, 'runner.ts', 'first-run'], { cwd: base, env, timeout: 60_000 }).then(
        () => ({ code: 0, stderr: '' }),
        (error: { code?: number; stderr?: string }) => ({ code: error.code, stderr: error.stderr ?? '' }),
      )
      expect(result.code).toBe(1)
      expect(result.stderr).toContain(quoted!.replace('http://127.0.0.1:4010', server.url))
      // Its one request, refused; no stage update was sent, none waits in the outbox.
      expect(requests.map((entry) => [entry.method, entry.path, entry.status, entry.problem?.code])).toEqual([['POST', '/api/pipeline/runs', 401, 'unauthorized']])
      expect(readdirSync(join(base, '.pipeline-outbox'))).toEqual([])
    } finally {
      await server.close()
      await rm(base, { recursive: true, force: true })
    }
  }, 120_000)
})
