/**
 * The client entry must stay small and server-free: following every import from
 * src/client/index.ts reaches no Prisma, pg, express, msw, Next.js or server code.
 * (The built bundle is checked too, by the package tests; this catches it before a build.)
 */
import { readFileSync } from 'node:fs'
import { dirname, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { expect, it } from 'vitest'
import { CLIENT_SOURCE_GRAPH } from '../support/client-graph.js'

const root = fileURLToPath(new URL('../../', import.meta.url))
// After comments are stripped, `from '...'`, `import '...'` and `import('...')` only occur in imports.
const IMPORT = /\bfrom\s*['"]([^'"]+)['"]|\bimport\s*\(?\s*['"]([^'"]+)['"]/g
const COMMENTS = /\/\*[\s\S]*?\*\/|(?<![:'"])\/\/[^\n]*/g

function importGraph(entry: string): { files: string[]; packages: Set<string> } {
  const files: string[] = []
  const packages = new Set<string>()
  const queue = [entry]
  while (queue.length > 0) {
    const file = queue.pop() as string
    if (files.includes(file)) continue
    files.push(file)
    for (const match of readFileSync(file, 'utf8').replace(COMMENTS, '').matchAll(IMPORT)) {
      const specifier = (match[1] ?? match[2]) as string
      if (specifier.startsWith('.')) queue.push(resolve(dirname(file), specifier.replace(/\.js$/, '.ts')))
      else packages.add(specifier.startsWith('@') ? specifier.split('/').slice(0, 2).join('/') : (specifier.split('/')[0] as string))
    }
  }
  return { files: files.map((f) => relative(root, f)), packages }
}

it('imports only the contract, the signature primitives, the shared logger, error guard, conflict text, backoff and missing-scheme rule, the keep-alive deadline and sleep, ky, zod, the SSE parser and node built-ins', () => {
  const { files, packages } = importGraph(resolve(root, 'src/client/index.ts'))
  expect(files.length).toBeGreaterThan(5)
  for (const file of files) expect(file).toMatch(CLIENT_SOURCE_GRAPH)
  expect([...packages].filter((name) => !name.startsWith('node:')).sort()).toEqual(['eventsource-parser', 'ky', 'zod'])
})
