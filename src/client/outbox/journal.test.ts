import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { JsonlJournal } from './journal.js'

let dir: string
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'journal-'))
})
afterEach(() => rmSync(dir, { recursive: true, force: true }))

describe('JsonlJournal', () => {
  it('appends records as lines and reads them back', async () => {
    const path = join(dir, 'j.jsonl')
    const { journal, contents } = JsonlJournal.openSync(path)
    expect(contents).toEqual({ records: [], corruptLines: 0, tornTail: false })
    expect(existsSync(path)).toBe(false)
    await journal.append({ a: 1 })
    await journal.append({ b: 'é\n' })
    await journal.close()
    expect(readFileSync(path, 'utf8')).toBe('{"a":1}\n{"b":"é\\n"}\n')
    expect(JsonlJournal.openSync(path).contents.records).toEqual([{ a: 1 }, { b: 'é\n' }])
  })

  it('cuts off a torn last line so the next record starts on its own line', async () => {
    const path = join(dir, 'j.jsonl')
    writeFileSync(path, '{"a":1}\nnot json\n{"b":2}\n{"c":')
    const { journal, contents } = JsonlJournal.openSync(path)
    expect(contents).toEqual({ records: [{ a: 1 }, { b: 2 }], corruptLines: 1, tornTail: true })
    await journal.append({ d: 4 })
    await journal.close()
    expect(JsonlJournal.openSync(path).contents.records).toEqual([{ a: 1 }, { b: 2 }, { d: 4 }])
  })

  it('truncates and rewrites atomically', async () => {
    const path = join(dir, 'j.jsonl')
    const { journal } = JsonlJournal.openSync(path)
    await journal.append({ a: 1 })
    await journal.rewrite([{ x: 1 }, { y: 2 }])
    await journal.append({ z: 3 })
    expect(JsonlJournal.openSync(path).contents.records).toEqual([{ x: 1 }, { y: 2 }, { z: 3 }])
    await journal.truncate()
    expect(readFileSync(path, 'utf8')).toBe('')
    await journal.append({ again: true })
    await journal.close()
    expect(readFileSync(path, 'utf8')).toBe('{"again":true}\n')
  })

  it('ignores a temporary file left by a crash during a rewrite', async () => {
    const path = join(dir, 'j.jsonl')
    writeFileSync(path, '{"kept":1}\n')
    writeFileSync(`${path}.tmp`, '{"half":')
    expect(JsonlJournal.openSync(path).contents.records).toEqual([{ kept: 1 }])
  })
})
