/**
 * Type-checks the TypeScript code blocks of the documentation against the built package, as a
 * user's project would see it: each block is a module of its own in a throwaway project whose
 * `node_modules/pipeline-status-sdk` links to this repository, so `pipeline-status-sdk/client`
 * resolves through the exports map to `dist/client/index.d.ts`.
 *
 * Blocks fenced as ```ts, ```typescript or ```tsx are checked as ES modules (the project is
 * `"type": "module"`); ```ts cjs marks a block the docs say works in CommonJS too, which is
 * checked a second time as a `.cts` file (`require` conditions, `dist/*.d.cts`, no top-level
 * `await`). ```ts ignore (any info string whose words include `ignore`) skips one, for code
 * that cannot compile on its own (another runtime's globals, a fragment). The ambient
 * {@link PRELUDE} stands in for what an app already has.
 */
import { execFileSync } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import ts from 'typescript'

/** One fenced code block of a markdown file. */
export interface CodeBlock {
  /** The markdown file, relative to the repository (or any label). */
  file: string
  /** 1-based line in the markdown file of the block's first code line. */
  line: number
  /** The info string's first word, lower-cased (`ts`, `tsx`, `sh`, ...). */
  lang: string
  /** The info string's other words (`ignore`, ...). */
  flags: string[]
  code: string
}

/** A compiler diagnostic, located in the markdown file that holds the block. */
export interface BlockDiagnostic {
  file: string
  line: number
  column: number
  code: number
  message: string
}

const TS_LANGS = new Set(['ts', 'typescript', 'tsx'])

/** Whether a block is checked: TypeScript and not marked `ignore`. */
export function isChecked(block: CodeBlock): boolean {
  return TS_LANGS.has(block.lang) && !block.flags.includes('ignore')
}

/**
 * The fenced code blocks of a markdown text (``` or ~~~, indented ones inside lists too; the
 * fence's indentation is removed from the code).
 */
export function extractCodeBlocks(markdown: string, file: string): CodeBlock[] {
  const lines = markdown.split(/\r?\n/)
  const blocks: CodeBlock[] = []
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(`{3,}|~{3,})\s*(.*)$/.exec(lines[i] ?? '')
    // A backtick fence's info string never holds a backtick (that would be inline code).
    if (!open || (open[2]?.startsWith('`') && open[3]?.includes('`'))) continue
    const [, indent = '', fence = '', info = ''] = open
    const [lang = '', ...flags] = info.trim().split(/\s+/).filter(Boolean)
    const body: string[] = []
    let j = i + 1
    for (; j < lines.length; j++) {
      const text = lines[j] ?? ''
      const close = /^\s*(`{3,}|~{3,})\s*$/.exec(text)
      if (close && close[1]?.[0] === fence[0] && (close[1]?.length ?? 0) >= fence.length) break
      body.push(text.startsWith(indent) ? text.slice(indent.length) : text.trimStart())
    }
    blocks.push({ file, line: i + 2, lang: lang.toLowerCase(), flags: flags.map((f) => f.toLowerCase()), code: body.join('\n') })
    i = j
  }
  return blocks
}

/**
 * Declarations every block can use without importing them: what an app has of its own and
 * the samples only refer to. `prisma` is a client generated from the package's own schema, so
 * model and field names in the samples are checked too.
 */
export const PRELUDE = `import type { PrismaClient } from '../generated/prisma/client.js'

declare global {
  /** The app's PrismaClient, generated from a schema holding the package's models. */
  const prisma: PrismaClient
  /** The app's own session lookup. */
  function getSession(request: Request): Promise<{ userId: string; isAdmin: boolean } | null>
  /** The app's own rule for who may read a run. */
  function userOwnsRun(userId: string, runId: string): Promise<boolean>
}
export {}
`

/**
 * The app's own module exporting its client and the `pg` pool under it, as samples import them:
 * `@/lib/prisma` (a Next.js alias) or `./prisma.js`.
 */
const APP_PRISMA_MODULE = `import type { PrismaClient } from '../generated/prisma/client.js'
import type pg from 'pg'
export declare const prisma: PrismaClient
/** The \`pg\` pool under the client's adapter (\`new PrismaPg(pool)\`), for the store's \`pool\`. */
export declare const pool: pg.Pool
/** The app's connections (\`createPgConnections\`): \`db.pool\` is \`pool\`, \`db.handlerOptions({ prisma })\` the store and live options. */
export declare const db: import('pipeline-status-sdk/pg').PgConnections
/** The same connections made on first use (docs/nextjs.md: \`next build\` imports the app without DATABASE_URL). */
export declare function getDb(): import('pipeline-status-sdk/pg').PgConnections
/** The same client, made on first use. */
export declare function getPrisma(): PrismaClient
`

/** The Next.js app's route handlers, created on the first request (docs/nextjs.md), as \`@/lib/pipeline-routes\`. */
const APP_ROUTES_MODULE = `export declare function pipelineRoutes(): import('pipeline-status-sdk/next').NextRouteHandlers
`

const COMPILER_OPTIONS = {
  target: 'ES2023',
  lib: ['ES2023'],
  module: 'NodeNext',
  moduleResolution: 'NodeNext',
  moduleDetection: 'force',
  strict: true,
  types: ['node'],
  skipLibCheck: true,
  noEmit: true,
  jsx: 'react-jsx',
  // Next.js apps import with an `@/` alias (extensionless, as their bundler allows).
  paths: {
    '@/lib/prisma': ['./lib/prisma.d.ts'],
    '@/lib/pipeline-routes': ['./lib/pipeline-routes.d.ts'],
    '@/generated/prisma/client': ['./generated/prisma/client.ts'],
    // Next.js apps resolve `next/server` with their bundler; NodeNext would need `next/server.js`.
    'next/server': ['../node_modules/next/server.d.ts'],
  },
}

/** The result of {@link typeCheckBlocks}. */
export interface TypeCheckResult {
  diagnostics: BlockDiagnostic[]
  /** Every file the program loaded, absolute, to check what the imports resolved to. */
  loadedFiles: string[]
}

/**
 * Compiles the blocks in one program against the package at `root` (its `dist/` must be
 * built) and returns the diagnostics located in the markdown files.
 */
export async function typeCheckBlocks(root: string, blocks: readonly CodeBlock[]): Promise<TypeCheckResult> {
  const base = await mkdtemp(join(tmpdir(), 'pss-docs-'))
  try {
    const project = join(base, 'project')
    await mkdir(join(project, 'node_modules'), { recursive: true })
    await mkdir(join(project, 'prelude'))
    await mkdir(join(project, 'lib'))
    // Other packages (express, msw, zod, @types/node) resolve from the repository's node_modules.
    await symlink(join(root, 'node_modules'), join(base, 'node_modules'), 'dir')
    await symlink(root, join(project, 'node_modules/pipeline-status-sdk'), 'dir')
    await symlink(join(root, 'src/generated'), join(project, 'generated'), 'dir')
    await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'docs-samples', private: true, type: 'module' }))
    await writeFile(join(project, 'prelude/globals.d.ts'), PRELUDE)
    await writeFile(join(project, 'lib/prisma.d.ts'), APP_PRISMA_MODULE)
    await writeFile(join(project, 'lib/pipeline-routes.d.ts'), APP_ROUTES_MODULE)
    // The same module as `./prisma.js`, for samples that import the app's client relatively.
    await writeFile(join(project, 'prisma.d.ts'), APP_PRISMA_MODULE.replace('../generated/', './generated/'))

    const byFile = new Map<string, CodeBlock>()
    for (const [index, block] of blocks.entries()) {
      const stem = `${block.file.replace(/[^A-Za-z0-9]+/g, '_')}_L${block.line}_${index}`
      const path = join(project, `${stem}.${block.lang === 'tsx' ? 'tsx' : 'ts'}`)
      byFile.set(path, block)
      await writeFile(path, block.code)
      if (block.flags.includes('cjs')) {
        // The same code as a CommonJS module: imports become require() calls.
        const cjsPath = join(project, `${stem}.cts`)
        byFile.set(cjsPath, { ...block, file: `${block.file} (as CommonJS)` })
        await writeFile(cjsPath, block.code)
      }
    }

    const parsed = ts.convertCompilerOptionsFromJson(COMPILER_OPTIONS, project)
    if (parsed.errors.length > 0) throw new Error(ts.formatDiagnostics(parsed.errors, formatHost(project)))
    const roots = [join(project, 'prelude/globals.d.ts'), ...byFile.keys()]
    // `paths` are relative to the tsconfig's folder, as parseJsonConfigFileContent would set it.
    const program = ts.createProgram({ rootNames: roots, options: { ...parsed.options, pathsBasePath: project } })

    const diagnostics: BlockDiagnostic[] = []
    for (const diagnostic of ts.getPreEmitDiagnostics(program)) {
      const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n')
      const source = diagnostic.file
      const block = source ? byFile.get(source.fileName) : undefined
      if (source && block && diagnostic.start !== undefined) {
        const position = source.getLineAndCharacterOfPosition(diagnostic.start)
        diagnostics.push({ file: block.file, line: block.line + position.line, column: position.character + 1, code: diagnostic.code, message })
      } else if (!source || source.fileName.startsWith(project)) {
        // Global, option and prelude errors would make every block's result meaningless.
        diagnostics.push({ file: source ? relative(project, source.fileName) : '(compiler)', line: 0, column: 0, code: diagnostic.code, message })
      }
    }
    diagnostics.sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line || a.column - b.column)
    return { diagnostics, loadedFiles: program.getSourceFiles().map((file) => file.fileName) }
  } finally {
    await rm(base, { recursive: true, force: true })
  }
}

/** One line per diagnostic: `docs/contract.md:42:7 TS2345 message`. */
export function formatBlockDiagnostics(diagnostics: readonly BlockDiagnostic[]): string {
  return diagnostics.map((d) => `${d.file}:${d.line}:${d.column} TS${d.code} ${d.message.replaceAll('\n', '\n    ')}`).join('\n')
}

function formatHost(cwd: string): ts.FormatDiagnosticsHost {
  return { getCanonicalFileName: (name) => name, getCurrentDirectory: () => cwd, getNewLine: () => '\n' }
}

/**
 * The fenced code blocks of the `@example` tags in a TypeScript source: what the API reference
 * shows under "Example". Lines are the source file's (the block's first code line), so a
 * diagnostic points at the doc comment to fix.
 */
export function extractExampleBlocks(source: string, file: string): CodeBlock[] {
  const blocks: CodeBlock[] = []
  for (const comment of source.matchAll(/\/\*\*[\s\S]*?\*\//g)) {
    const firstLine = source.slice(0, comment.index).split('\n').length
    // The comment's text without its `/**`, `*/` and leading ` * `, line for line.
    const lines = comment[0]
      .replace(/^\/\*\*/, '')
      .replace(/\*\/$/, '')
      .split('\n')
      .map((line) => line.replace(/^\s*\* ?/, ''))
    // Which lines belong to an @example tag: from the tag to the next block tag outside a fence.
    const inExample: boolean[] = []
    let example = false
    let fenced = false
    for (const line of lines) {
      if (/^\s*(`{3,}|~{3,})/.test(line)) fenced = !fenced
      else if (!fenced && /^@\w+/.test(line)) example = line.startsWith('@example')
      inExample.push(example)
    }
    for (const block of extractCodeBlocks(lines.join('\n'), file)) {
      // extractCodeBlocks counts from 1 and points past the fence: block.line - 2 is the fence.
      if (!inExample[block.line - 2]) continue
      blocks.push({ ...block, line: firstLine + block.line - 1 })
    }
  }
  return blocks
}

/** The markdown files whose code blocks are documentation: README.md, then docs/*.md by name. */
export function documentedMarkdownFiles(root: string): string[] {
  return [
    'README.md',
    ...readdirSync(join(root, 'docs'))
      .filter((name) => name.endsWith('.md'))
      .sort()
      .map((name) => `docs/${name}`),
  ]
}

/**
 * Every documented code block of the repository at `root`: the fenced blocks of README.md and
 * docs/*.md, then the `@example` blocks of the sources (src/ and mock-server/, not the generated
 * Prisma client, whose examples are Prisma's), as the API reference shows them.
 */
export function collectDocumentedBlocks(root: string): CodeBlock[] {
  const sourceFiles = execFileSync('git', ['ls-files', '--', 'src/**.ts', 'mock-server/**.ts'], { cwd: root, encoding: 'utf8' })
    .split('\n')
    .filter((file) => file.endsWith('.ts') && !file.endsWith('.test.ts') && !file.startsWith('src/generated/'))
  return [
    ...documentedMarkdownFiles(root).flatMap((file) => extractCodeBlocks(readFileSync(join(root, file), 'utf8'), file)),
    ...sourceFiles.flatMap((file) => extractExampleBlocks(readFileSync(join(root, file), 'utf8'), file)),
  ]
}
