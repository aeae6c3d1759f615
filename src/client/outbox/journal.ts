/**
 * An append-only JSON Lines file that survives crashes: each record is one `write` of one line
 * followed by `fdatasync`, so a crash can tear at most the last line, which the next open cuts
 * off. Whole-file rewrites go through a temporary file and an atomic rename.
 * Internal: not exported from the package.
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, truncateSync } from 'node:fs'
import { type FileHandle, open } from 'node:fs/promises'
import { dirname } from 'node:path'

/** What {@link JsonlJournal.openSync} found on disk. */
export interface JournalContents {
  /** Every intact record, in file order. */
  records: unknown[]
  /** Lines in the middle of the file that were not JSON (skipped). */
  corruptLines: number
  /** Whether a torn last line (a crash mid-write) was cut off. */
  tornTail: boolean
}

/** One journal file; all writes go through the caller's single write queue. */
export class JsonlJournal {
  readonly path: string
  #handle: FileHandle | undefined
  #size: number

  private constructor(path: string, size: number) {
    this.path = path
    this.#size = size
  }

  /**
   * Reads the file (creating nothing), cuts off a torn last line, and returns the records.
   * Synchronous: it runs once, when the client is constructed.
   */
  static openSync(path: string): { journal: JsonlJournal; contents: JournalContents } {
    rmSync(`${path}.tmp`, { force: true })
    let text = ''
    try {
      text = readFileSync(path, 'utf8')
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
    }
    const end = text.lastIndexOf('\n') + 1
    const tornTail = end < text.length
    if (tornTail) {
      // Everything after the last newline is a write the crash interrupted; appending after it
      // would glue the next record onto the fragment.
      truncateSync(path, Buffer.byteLength(text.slice(0, end)))
    }
    const records: unknown[] = []
    let corruptLines = 0
    for (const line of text.slice(0, end).split('\n')) {
      if (line === '') continue
      try {
        records.push(JSON.parse(line))
      } catch {
        corruptLines++
      }
    }
    return {
      journal: new JsonlJournal(path, Buffer.byteLength(text.slice(0, end))),
      contents: { records, corruptLines, tornTail },
    }
  }

  /** Appends one record durably: one write of one line, then `fdatasync`. */
  async append(record: unknown): Promise<void> {
    const line = Buffer.from(`${JSON.stringify(record)}\n`, 'utf8')
    const handle = await this.#open()
    await handle.write(line)
    await handle.datasync()
    this.#size += line.byteLength
  }

  /** Empties the file durably. */
  async truncate(): Promise<void> {
    if (this.#size === 0) return
    const handle = await this.#open()
    await handle.truncate(0)
    await handle.datasync()
    this.#size = 0
  }

  /** Replaces the whole file with `records`, atomically (temporary file, fsync, rename). */
  async rewrite(records: readonly unknown[]): Promise<void> {
    await this.close()
    const text = records.map((record) => `${JSON.stringify(record)}\n`).join('')
    const temp = await open(`${this.path}.tmp`, 'w')
    try {
      await temp.writeFile(text, 'utf8')
      await temp.datasync()
    } finally {
      await temp.close()
    }
    renameSync(`${this.path}.tmp`, this.path)
    syncDirectory(dirname(this.path))
    this.#size = Buffer.byteLength(text)
  }

  /** Closes the file handle; a later append reopens it. */
  async close(): Promise<void> {
    const handle = this.#handle
    this.#handle = undefined
    await handle?.close()
  }

  async #open(): Promise<FileHandle> {
    if (!this.#handle) {
      const created = this.#size === 0
      this.#handle = await open(this.path, 'a')
      if (created) syncDirectory(dirname(this.path))
    }
    return this.#handle
  }
}

/** Makes a file's creation or rename durable; a no-op where directories cannot be opened. */
function syncDirectory(dir: string): void {
  let fd: number | undefined
  try {
    fd = openSync(dir, 'r')
    fsyncSync(fd)
  } catch {
    // Windows cannot open directories; its rename is durable enough for this purpose.
  } finally {
    if (fd !== undefined) closeSync(fd)
  }
}
