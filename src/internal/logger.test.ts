import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { consoleLogger, silentLogger } from './logger.js'

/** Every non-test TypeScript file under `dir`. */
function sources(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((file) => file.endsWith('.ts') && !file.endsWith('.test.ts'))
    .map((file) => join(dir, file))
}

describe('the logger rule: debug and info are opt-in, and only the client calls them', () => {
  it('the default loggers have warn and error only', () => {
    expect(Object.keys(consoleLogger).sort()).toEqual(['error', 'warn'])
    expect(Object.keys(silentLogger).sort()).toEqual(['error', 'warn'])
  })

  it('the handlers, stores, sweeper and migrations never log at debug or info (the default logger would drop it)', () => {
    const root = join(import.meta.dirname, '..')
    const calls = ['server', 'pg', 'core']
      .flatMap((dir) => sources(join(root, dir)))
      .flatMap((file) =>
        readFileSync(file, 'utf8')
          .split('\n')
          .map((line, index) => ({ where: `${file.slice(root.length + 1)}:${index + 1}`, line }))
          .filter(({ line }) => /\b(logger|log)\??\.(debug|info)\b/i.test(line) && !/^\s*(\*|\/\/)/.test(line)),
      )
      .map(({ where, line }) => `${where}: ${line.trim()}`)
      // The one exception: createPgConnections' start line (the live mode and why). Its logger
      // defaults to `console`, which has `info`, not to the package's dropping default, and a
      // logger without `info` gets the line on `warn`, so it is never dropped.
      .filter((call) => !/^pg\/connections\.ts:\d+: else if \(logger\.info\) logger\.info\(line\)$/.test(call))
    expect(calls).toEqual([])
  })
})
