/**
 * The newest version of each run this process knows (DESIGN.md "Scale"): learned from its own
 * writes, from LISTEN notifications and version polls of the run watcher, and from reads it
 * answered. A read from a read replica is good enough for a run only when the replica's copy is
 * at least this version; otherwise it goes to the primary, so no client sees a run older than one
 * this process has shown or written. One bounded map, in this one module. Pure: no I/O, no timers.
 */

/** The default of {@link KnownVersions}'s bound: runs remembered at most. */
export const DEFAULT_MAX_KNOWN_RUNS = 10_000

/**
 * A least-recently-used map from run id to the newest version known, at most `maxRuns` entries
 * (each a run id and a number: about 100 bytes for a 36-character id, so 1 MB at the default).
 * When full, the run touched longest ago is forgotten; a replica read of a forgotten run is then
 * checked only against what the client presents (`If-None-Match`, `Last-Event-ID`).
 */
export class KnownVersions {
  readonly #max: number
  /** Map keeps insertion order: the first key is the least recently touched. */
  readonly #versions = new Map<string, number>()

  constructor(maxRuns: number = DEFAULT_MAX_KNOWN_RUNS) {
    this.#max = maxRuns
  }

  /** How many runs are remembered now (at most the bound). */
  get size(): number {
    return this.#versions.size
  }

  /** The newest version known of `runId`, or `undefined`; counts as a touch. */
  get(runId: string): number | undefined {
    const version = this.#versions.get(runId)
    if (version === undefined) return undefined
    this.#versions.delete(runId)
    this.#versions.set(runId, version)
    return version
  }

  /** Records that `runId` has at least `version` (an older one never lowers what is known). */
  note(runId: string, version: number): void {
    if (!Number.isSafeInteger(version) || version < 0) return
    const known = this.#versions.get(runId)
    if (known !== undefined) this.#versions.delete(runId)
    this.#versions.set(runId, known === undefined || version > known ? version : known)
    if (this.#versions.size > this.#max) {
      const oldest = this.#versions.keys().next()
      if (!oldest.done) this.#versions.delete(oldest.value)
    }
  }

  /** Forgets `runId` (a deleted run). */
  forget(runId: string): void {
    this.#versions.delete(runId)
  }
}

/**
 * The version a client presents in `If-None-Match` (`"7"`, `W/"7"`, a list: the highest) or
 * `Last-Event-ID` (`7`), or `undefined` when the header holds none. Only for the one request that
 * carries it: a client's claim never enters {@link KnownVersions} (a made-up `"999999"` would
 * otherwise send every reader of that run to the primary).
 */
export function presentedVersion(header: string | null): number | undefined {
  if (header === null) return undefined
  let best: number | undefined
  for (const part of header.split(',')) {
    let tag = part.trim()
    if (tag.startsWith('W/')) tag = tag.slice(2)
    if (tag.startsWith('"') && tag.endsWith('"') && tag.length >= 2) tag = tag.slice(1, -1)
    if (!/^\d{1,15}$/.test(tag)) continue
    const version = Number(tag)
    if (best === undefined || version > best) best = version
  }
  return best
}
