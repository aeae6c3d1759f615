/**
 * The API reference as `npm run docs` builds it (TypeDoc, typedoc.json: warnings are errors),
 * into a throwaway folder, and what a reader sees on it: one H1 on the landing page, its links
 * without a stray `|`, the guides as rendered pages (not raw Markdown copies), and on an
 * overloaded function each overload with an example of its own, none shown twice.
 */
import { execFile } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const root = fileURLToPath(new URL('../..', import.meta.url))
const require = createRequire(import.meta.url)
let out = ''
let log = ''

beforeAll(async () => {
  out = await mkdtemp(join(tmpdir(), 'pss-typedoc-'))
  const typedoc = join(require.resolve('typedoc/package.json'), '..', 'bin', 'typedoc')
  try {
    const result = await promisify(execFile)(process.execPath, [typedoc, '--out', out], { cwd: root, maxBuffer: 16 * 1024 * 1024 })
    log = `${result.stdout}${result.stderr}`
  } catch (error) {
    const { stdout = '', stderr = '' } = error as { stdout?: string; stderr?: string }
    throw new Error(`typedoc failed (typedoc.json treats warnings as errors):\n${stdout}\n${stderr}`, { cause: error })
  }
}, 300_000)

afterAll(async () => {
  if (out) await rm(out, { recursive: true, force: true })
})

const page = (path: string) => readFileSync(join(out, path), 'utf8')

/** The example code blocks of a page, in order (TypeDoc renders each `@example` under an "Example" heading). */
function exampleBlocks(html: string): string[] {
  return [...html.matchAll(/id="example[^"]*"[\s\S]*?<pre><code[^>]*>([\s\S]*?)<\/code>/g)].map((match) => match[1] ?? '')
}

describe('the API reference', () => {
  it('builds without a warning', () => {
    expect(log).not.toMatch(/warning/i)
    expect(existsSync(join(out, 'index.html'))).toBe(true)
  })

  it('has one H1 on its landing page and no stray "|" before a link text', () => {
    const index = page('index.html')
    expect(index.match(/<h1[\s>]/g)).toHaveLength(1)
    const linkTexts = [...index.matchAll(/<a [^>]*>([\s\S]*?)<\/a>/g)].map((match) => match[1]!.trim())
    expect(linkTexts.filter((text) => text.startsWith('|'))).toEqual([])
    expect(linkTexts).toContain('<code>pipeline-status-sdk/client</code>')
  })

  it('links the guides as rendered pages, not copies of their Markdown', () => {
    const index = page('index.html')
    const guides = [...index.matchAll(/href="([^"]*)"/g)].map((match) => match[1]!).filter((href) => /quick-start|contract|nextjs|security|operations/.test(href))
    expect(guides.length).toBeGreaterThanOrEqual(5)
    for (const href of guides) expect(href).toMatch(/^documents\/docs_[\w-]+\.html(#.*)?$/)
    const media = existsSync(join(out, 'media')) ? readdirSync(join(out, 'media')) : []
    // Only the repository's README (linked from the quick start, not a guide) stays a copy.
    expect(media.filter((name) => name.endsWith('.md') && name !== 'README.md')).toEqual([])
    // A guide's own links to other guides open their pages too.
    expect(page('documents/docs_quick-start.html')).toMatch(/href="docs_nextjs\.html"/)
  })

  it('gives each overload of the handler factories an example of its own, none repeated', () => {
    for (const [file, overloads] of [
      ['functions/pipeline-status-sdk_server.createPipelineStatusHandlers.html', 3],
      ['functions/pipeline-status-sdk_express.createExpressRouter.html', 3],
      // The function form (options made at the first request), the two typed object forms, then
      // either form, as an object or by a function (two examples): five, on four overloads.
      ['functions/pipeline-status-sdk_next.createNextRouteHandlers.html', 5],
    ] as const) {
      const examples = exampleBlocks(page(file))
      expect(examples, file).toHaveLength(overloads)
      expect(new Set(examples).size, file).toBe(overloads)
    }
  })
})
