import { execFile } from 'node:child_process'
import { copyFile, readFile, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'
import { defineConfig } from 'tsup'

/** The entry whose built files start with `'use client'`: its components and hooks run in the browser. */
const CLIENT_ENTRY = 'react/index'

/**
 * esbuild drops module directives when it bundles, so the React entry gets its `'use client'`
 * here, after the build: a Next.js server component can then render RunTimeline and RunList
 * straight from `pipeline-status-sdk/react`. The source maps gain one empty first line to match.
 */
async function markClientEntry(outDir: string): Promise<void> {
  for (const extension of ['js', 'cjs']) {
    const file = join(outDir, `${CLIENT_ENTRY}.${extension}`)
    const code = await readFile(file, 'utf8')
    if (code.startsWith("'use client'")) continue
    await writeFile(file, `'use client';\n${code}`)
    const map = JSON.parse(await readFile(`${file}.map`, 'utf8')) as { mappings: string }
    map.mappings = `;${map.mappings}`
    await writeFile(`${file}.map`, JSON.stringify(map))
  }
}

export default defineConfig((cli) => {
  const outDir = resolve(cli.outDir ?? 'dist')
  return {
    entry: {
      index: 'src/index.ts',
      'client/index': 'src/client/index.ts',
      'server/index': 'src/server/index.ts',
      'next/index': 'src/next/index.ts',
      'express/index': 'src/express/index.ts',
      'msw/index': 'mock-server/index.ts',
      [CLIENT_ENTRY]: 'src/react/index.ts',
      'pg/index': 'src/pg/index.ts',
      'otel/index': 'src/otel/index.ts',
      // The `pipeline-status` bin; not an export.
      cli: 'mock-server/bin.ts',
    },
    format: ['esm', 'cjs'],
    // Shared modules (contract, core) become chunks that every entry imports, so each is
    // emitted once and `instanceof`/types stay the same across subpaths (msw does the same).
    splitting: true,
    dts: true,
    sourcemap: true,
    clean: true,
    target: 'node22',
    platform: 'node',
    treeshake: true,
    async onSuccess() {
      await markClientEntry(outDir)
      // The `./react/styles.css` export, as written.
      await copyFile('src/react/styles.css', join(outDir, 'react', 'styles.css'))
      // <out dir>/openapi.json (the `./openapi.json` export), generated from the contract built there.
      await promisify(execFile)(process.execPath, ['scripts/write-openapi.mjs', outDir])
    },
  }
})
