#!/usr/bin/env node
// Writes dist/openapi.json, the package's `pipeline-status-sdk/openapi.json` export, from the
// freshly built contract entry (tsup runs it on success): the document is generated from the zod
// schemas and the route registry, never written by hand, with the default base path as its server.
import { writeFile } from 'node:fs/promises'
import { fileURLToPath, pathToFileURL } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const { createOpenApiDocument } = await import(pathToFileURL(`${root}dist/index.js`).href)
await writeFile(`${root}dist/openapi.json`, `${JSON.stringify(createOpenApiDocument(), null, 2)}\n`)
