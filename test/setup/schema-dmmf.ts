/**
 * Reads a Prisma schema's DMMF (Prisma's own parsed description of models, fields, native
 * types, defaults and indexes) by running the installed Prisma CLI with a tiny generator that
 * writes it out. The generated client carries no DMMF, and `@prisma/internals` is not a
 * dependency; the generator protocol is the public way Prisma hands the DMMF to code.
 */
import { execFile } from 'node:child_process'
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

/** The parts of Prisma's DMMF that the drift test compares. */
export interface Dmmf {
  datamodel: {
    enums: Array<{ name: string; dbName: string | null; values: Array<{ name: string; dbName: string | null }> }>
    models: DmmfModel[]
    indexes: DmmfIndex[]
  }
}

export interface DmmfModel {
  name: string
  dbName: string | null
  fields: DmmfField[]
}

export interface DmmfField {
  name: string
  dbName?: string | null
  kind: 'scalar' | 'object' | 'enum' | 'unsupported'
  type: string
  isList: boolean
  isRequired: boolean
  isUpdatedAt: boolean
  nativeType: [string, string[]] | null
  default?: unknown
  relationFromFields?: string[]
  relationToFields?: string[]
  relationOnDelete?: string
  relationOnUpdate?: string
}

export interface DmmfIndex {
  model: string
  type: 'id' | 'unique' | 'normal' | 'fulltext'
  dbName?: string | null
  fields: Array<{ name: string }>
}

/** The project's schema file. */
export const SCHEMA_PATH = fileURLToPath(new URL('../../prisma/schema.prisma', import.meta.url))

const run = promisify(execFile)

/** Parses schema text with the installed Prisma CLI and returns its DMMF. */
export async function readDmmf(schema: string): Promise<Dmmf> {
  const dir = await mkdtemp(join(tmpdir(), 'pss-dmmf-'))
  try {
    await copyFile(fileURLToPath(new URL('./dmmf-generator.mjs', import.meta.url)), join(dir, 'dmmf-generator.mjs'))
    const generator = 'generator dmmf {\n  provider = "node dmmf-generator.mjs"\n  output   = "./out"\n}'
    await writeFile(join(dir, 'schema.prisma'), schema.replace(/^generator\s+\w+\s*\{[^}]*\}/gm, generator))
    const cli = createRequire(import.meta.url).resolve('prisma/build/index.js')
    const out = join(dir, 'dmmf.json')
    await run(process.execPath, [cli, 'generate', '--schema', 'schema.prisma'], {
      cwd: dir,
      env: {
        ...process.env,
        DMMF_OUT: out,
        // `generate` never runs the schema engine, but the CLI looks for it (see scripts/README.md).
        PRISMA_SCHEMA_ENGINE_BINARY: process.env['PRISMA_SCHEMA_ENGINE_BINARY'] ?? process.execPath,
        PRISMA_HIDE_UPDATE_MESSAGE: '1',
        CHECKPOINT_DISABLE: '1',
      },
    })
    return JSON.parse(await readFile(out, 'utf8')) as Dmmf
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}
