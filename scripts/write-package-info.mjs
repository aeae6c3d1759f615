#!/usr/bin/env node
// Writes src/contract/package-info.ts: the package's name and version as constants, so that the
// OpenAPI document and the CLI carry two strings instead of bundling the whole package.json
// (scripts, devDependencies) into the chunk every entry shares. `npm run build` runs it first
// (prebuild); src/contract/openapi.test.ts checks that the committed file matches package.json.
import { readFile, writeFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const { name, version } = JSON.parse(await readFile(`${root}package.json`, 'utf8'))
const quote = (value) => `'${String(value).replaceAll('\\', '\\\\').replaceAll("'", "\\'")}'`
const target = `${root}src/contract/package-info.ts`
const text = `// Generated from package.json by scripts/write-package-info.mjs (npm run build runs it); do not edit.

/** The package's name, from package.json. */
export const PACKAGE_NAME = ${quote(name)}

/** The package's version, from package.json. */
export const PACKAGE_VERSION = ${quote(version)}
`
const current = await readFile(target, 'utf8').catch(() => '')
if (current !== text) await writeFile(target, text)
