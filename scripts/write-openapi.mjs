#!/usr/bin/env node
// Writes <out dir>/openapi.json, the package's `pipeline-status-sdk/openapi.json` export, from the
// freshly built contract entry in that same folder (tsup runs it on success, with its out dir:
// `dist/` by default, the Next.js example's own copy of the package with `--out-dir`): the
// document is generated from the zod schemas and the route registry, never written by hand, with
// the default base path as its server.
// Run: node scripts/write-openapi.mjs [out dir, default dist]
import { writeFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const outDir = resolve(root, process.argv[2] ?? 'dist')
const { createOpenApiDocument } = await import(pathToFileURL(resolve(outDir, 'index.js')).href)
await writeFile(resolve(outDir, 'openapi.json'), `${JSON.stringify(createOpenApiDocument(), null, 2)}\n`)
