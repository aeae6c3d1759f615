/**
 * What `npm pack` puts in the tarball, as `npm pack --dry-run` lists it: the README's and the
 * guides' relative links must lead to files a reader of the installed package has
 * (node_modules/pipeline-status-sdk), and nothing built or cached by the examples ships.
 */
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { posix } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { beforeAll, describe, expect, it } from 'vitest'

const root = fileURLToPath(new URL('../..', import.meta.url))
let packed: string[] = []

beforeAll(async () => {
  // --ignore-scripts: only the file list is wanted here, not the prepack build.
  const { stdout } = await promisify(execFile)('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
    cwd: root,
    maxBuffer: 16 * 1024 * 1024,
  })
  packed = (JSON.parse(stdout) as Array<{ files: Array<{ path: string }> }>)[0]!.files.map((file) => file.path)
}, 60_000)

/** The relative link targets of a markdown file, resolved against the package root. */
function relativeLinks(file: string): string[] {
  const markdown = readFileSync(`${root}/${file}`, 'utf8').replace(/```[\s\S]*?```/g, '')
  return [...markdown.matchAll(/\]\(([^)\s]+)\)/g)]
    .map((match) => match[1]!.split('#')[0]!)
    .filter((target) => target !== '' && !/^[a-z][a-z0-9+.-]*:/i.test(target))
    .map((target) => posix.normalize(posix.join(posix.dirname(file), target)).replace(/\/$/, ''))
}

describe('the packed package', () => {
  it('ships the README, the licence, the guides and the examples', () => {
    expect(packed).toEqual(expect.arrayContaining(['README.md', 'LICENSE', 'package.json', 'docs/quick-start.md', 'examples/runner/runner.ts']))
  })

  it('holds every file the README and the guides link to', () => {
    const shippedGuides = packed.filter((path) => /^docs\/[^/]+\.md$/.test(path))
    const broken = ['README.md', ...shippedGuides].flatMap((file) =>
      relativeLinks(file)
        .filter((target) => !packed.some((path) => path === target || path.startsWith(`${target}/`)))
        .map((target) => `${file} → ${target}`),
    )
    expect(broken).toEqual([])
  })

  it('leaves out generated docs, build output of the examples, and caches', () => {
    const unwanted = /^docs\/api\/|(^|\/)(node_modules|\.next|generated|__pycache__)\/|\.(pyc|tsbuildinfo)$/
    expect(packed.filter((path) => unwanted.test(path))).toEqual([])
  })

  it('ships prisma/ with its migrations, and the schema points only at files that ship', () => {
    expect(packed).toEqual(expect.arrayContaining(['prisma/schema.prisma', 'prisma/migrations/migration_lock.toml', 'prisma/migrations/20261124204841_init/migration.sql']))
    const comments = readFileSync(`${root}/prisma/schema.prisma`, 'utf8')
      .split('\n')
      .filter((line) => line.trim().startsWith('//'))
      .join('\n')
    // Paths named in its comments, e.g. `docs/operations.md` or `./migrations`.
    const named = [...comments.matchAll(/(?:\.\/)?\b((?:docs|scripts|test|src|examples|migrations)\/[\w./-]*|migrations)\b/g)].map((match) =>
      posix.normalize(match[1]!.startsWith('migrations') ? `prisma/${match[1]}` : match[1]!).replace(/\/$/, ''),
    )
    expect(named.length).toBeGreaterThan(0)
    for (const path of named) expect(packed.some((file) => file === path || file.startsWith(`${path}/`)), path).toBe(true)
  })
})
