/**
 * The handlers must run on edge runtimes (Cloudflare Workers, Vercel Edge, Deno): the server
 * entry and the Next.js entry may use Web APIs only, never a Node built-in.
 */
import { build } from 'esbuild'
import { describe, expect, it } from 'vitest'

async function imports(entry: string) {
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    write: false,
    metafile: true,
    platform: 'neutral',
    format: 'esm',
    mainFields: ['module', 'main'],
    logLevel: 'silent',
  })
  const external = Object.values(result.metafile.outputs).flatMap((output) => output.imports.map((i) => i.path))
  return { inputs: Object.keys(result.metafile.inputs), external }
}

describe('edge runtimes', () => {
  for (const entry of ['src/server/index.ts', 'src/next/index.ts']) {
    it(`${entry} bundles for a neutral platform without Node built-ins`, async () => {
      const { inputs, external } = await imports(entry)
      expect(external.filter((path) => path.startsWith('node:') || ['crypto', 'stream', 'http', 'buffer'].includes(path))).toEqual([])
      expect(inputs.filter((path) => path.includes('node_modules') && !path.includes('node_modules/zod/'))).toEqual([])
      expect(inputs).toContain('src/server/handlers.ts')
      expect(inputs).not.toContain('src/server/http/node-bridge.ts')
    })
  }
})
