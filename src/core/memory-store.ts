import { isFinalStatus } from '../contract/status.js'
import { type RunChangeListener, RunChangeEmitter } from './run-changes.js'
import { INITIAL_RUN_VERSION, nextRunVersion } from './run-version.js'
import { decideHeartbeat, lastSeenAt, silenceLimitMs } from './run-liveness.js'
import { chunksUpTo, withStreamedOutput } from './stage-output.js'
import type { FinishedRunsDeletion, OutputChunkRow, RunSnapshot, RunStageRead, RunStageWrite, RunState, RunTouch, RunWrite, StageState, VersionedRun } from './state.js'
import type { GetRunOptions, Store, StoreTransaction } from './store.js'
import { compareRunsForList, countKey, isAfterPosition, matchesNothing, matchesRunFilter, type RunCountRequest, type RunListItem, type RunListRequest, type RunWindowEntry, toRunListItem } from './run-list.js'
import type { StageStats } from '../contract/run-stats.js'
import { computeStageStats, type RunStatsRequest } from './run-stats.js'

/**
 * A `Store` in process memory, for the MSW mock, the mock server and tests. Transactions run
 * one at a time and their writes become visible only when they succeed, like a database's.
 * Run versions follow the same rule as in PostgreSQL (`nextRunVersion`), so `ETag`s match.
 *
 * @example
 * ```ts
 * import { MemoryStore } from 'pipeline-status-sdk/server'
 * const store = new MemoryStore()
 * ```
 */
export class MemoryStore implements Store<MemoryStore> {
  readonly #runs = new Map<string, RunState>()
  readonly #versions = new Map<string, number>()
  readonly #stages = new Map<string, Map<number, StageState>>()
  /** Streamed output chunks by run, in the order they were applied (so by version). */
  readonly #chunks = new Map<string, OutputChunkRow[]>()
  #queue: Promise<unknown> = Promise.resolve()
  readonly #changes = new RunChangeEmitter()

  async transaction<T>(fn: (tx: StoreTransaction<MemoryStore>) => Promise<T>): Promise<T> {
    return this.#serialized(async () => {
      const runs = new Map<string, RunState>()
      const stages: Array<[string, StageState]> = []
      // Chunk changes in call order: a chunk to insert, or a stage whose chunks go (`seq` absent).
      const chunkChanges: Array<{ runId: string; stageNumber: number; seq?: number; text?: string }> = []
      const tx: StoreTransaction<MemoryStore> = {
        client: this,
        lockRun: async (runId) => runs.get(runId) ?? this.#runs.get(runId) ?? null,
        getStage: async (runId, stageNumber) => {
          const staged = stages.findLast(([id, s]) => id === runId && s.stageNumber === stageNumber)
          return staged?.[1] ?? this.#stages.get(runId)?.get(stageNumber)
        },
        getStages: async (runId) => {
          const merged = new Map(this.#stages.get(runId))
          for (const [id, stage] of stages) if (id === runId) merged.set(stage.stageNumber, stage)
          return [...merged.values()].sort((a, b) => a.stageNumber - b.stageNumber)
        },
        saveStage: async (runId, stage) => void stages.push([runId, stage]),
        saveRun: async (next) => void runs.set(next.id, next),
        saveOutputChunk: async (runId, stageNumber, seq, text) => void chunkChanges.push({ runId, stageNumber, seq, text }),
        deleteOutputChunks: async (runId, stageNumber) => void chunkChanges.push({ runId, stageNumber }),
      }
      const result = await fn(tx)
      for (const [id, next] of runs) {
        this.#storeRun(next)
        this.#versions.set(id, nextRunVersion(this.#versionOf(id)))
      }
      for (const [runId, stage] of stages) this.#stagesOf(runId).set(stage.stageNumber, stage)
      for (const change of chunkChanges) {
        if (change.seq === undefined) this.#dropChunks(change.runId, change.stageNumber)
        else this.#addChunk(change.runId, { stageNumber: change.stageNumber, seq: change.seq, version: this.#versionOf(change.runId), text: change.text ?? '' })
      }
      for (const id of runs.keys()) this.#changes.emit({ runId: id, version: this.#versionOf(id) })
      return result
    })
  }

  async readRunStage(runId: string, stageNumber: number): Promise<RunStageRead | null> {
    const run = this.#runs.get(runId)
    if (!run) return null
    return { run, version: this.#versionOf(runId), stage: this.#stages.get(runId)?.get(stageNumber) }
  }

  async writeRunStage(write: RunStageWrite): Promise<boolean> {
    return this.#serialized(async () => {
      const { run, stage } = write
      if (!this.#runs.has(run.id) || this.#versionOf(run.id) !== write.expectedVersion) return false
      this.#storeRun(run)
      this.#versions.set(run.id, write.version)
      this.#stagesOf(run.id).set(stage.stageNumber, stage)
      if (write.dropOutputChunks) this.#dropChunks(run.id, stage.stageNumber)
      if (write.chunk) this.#addChunk(run.id, { stageNumber: stage.stageNumber, seq: write.chunk.seq, version: write.version, text: write.chunk.text })
      this.#changes.emit({ runId: run.id, version: write.version })
      return true
    })
  }

  async readRun(runId: string): Promise<VersionedRun | null> {
    const run = this.#runs.get(runId)
    return run ? { run, version: this.#versionOf(runId) } : null
  }

  async writeRun(write: RunWrite): Promise<boolean> {
    return this.#serialized(async () => {
      const { run } = write
      const stored = this.#runs.get(run.id)
      if (!stored || this.#versionOf(run.id) !== write.expectedVersion) return false
      if (
        write.expectedLastActivityAt !== undefined &&
        (stored.lastActivityAt ?? null)?.getTime() !== (write.expectedLastActivityAt ?? null)?.getTime()
      ) {
        return false
      }
      this.#storeRun(run)
      this.#versions.set(run.id, write.version)
      this.#changes.emit({ runId: run.id, version: write.version })
      return true
    })
  }

  async getRunVersions(runIds: readonly string[]): Promise<Map<string, number>> {
    const versions = new Map<string, number>()
    // Indexed, not for…of: the live streams' watcher asks for every streamed run several times a
    // second, too rarely for V8 to optimize away the iterator's result objects.
    for (let index = 0; index < runIds.length; index++) {
      const id = runIds[index] as string
      if (this.#runs.has(id)) versions.set(id, this.#versionOf(id))
    }
    return versions
  }

  onRunChange(listener: RunChangeListener): () => void {
    return this.#changes.subscribe(listener)
  }

  async touchRun(touch: RunTouch): Promise<RunStageRead | null> {
    return this.#serialized(async () => {
      const stored = this.#runs.get(touch.runId)
      if (!stored) return null
      const stageOf = (run: RunState) => (touch.stageNumber === undefined ? undefined : this.#stages.get(run.id)?.get(touch.stageNumber))
      if (decideHeartbeat(stored) === 'stale') return { run: stored, version: this.#versionOf(stored.id), stage: stageOf(stored) }
      const run: RunState = {
        ...stored,
        lastActivityAt: touch.at,
        heartbeatIntervalMs: touch.heartbeatIntervalMs ?? stored.heartbeatIntervalMs ?? null,
      }
      this.#runs.set(run.id, run)
      return { run, version: this.#versionOf(run.id), stage: stageOf(run) }
    })
  }

  async deleteFinishedRuns(deletion: FinishedRunsDeletion): Promise<number> {
    return this.#serialized(async () => {
      const doomed = [...this.#runs.values()]
        .filter((run) => run.status === deletion.status && run.updatedAt.getTime() < deletion.updatedBefore.getTime())
        .sort((a, b) => a.updatedAt.getTime() - b.updatedAt.getTime())
        .slice(0, deletion.limit)
      for (const run of doomed) {
        this.#runs.delete(run.id)
        this.#versions.delete(run.id)
        this.#stages.delete(run.id)
        this.#chunks.delete(run.id)
      }
      return doomed.length
    })
  }

  async insertRun(run: RunState): Promise<{ created: boolean; run: RunState }> {
    return this.#serialized(async () => {
      const existing = this.#runs.get(run.id)
      if (existing) return { created: false, run: existing }
      this.#runs.set(run.id, run)
      this.#versions.set(run.id, INITIAL_RUN_VERSION)
      // A new run may join set streams' windows.
      this.#changes.emit({ runId: run.id, version: INITIAL_RUN_VERSION })
      return { created: true, run }
    })
  }

  async getRun(runId: string, options: GetRunOptions = {}): Promise<RunSnapshot | null> {
    const run = this.#runs.get(runId)
    if (!run) return null
    const withText = options.streamedText !== false
    const stages = [...(this.#stages.get(runId)?.values() ?? [])]
      .sort((a, b) => a.stageNumber - b.stageNumber)
      .map((stage) => withStreamedOutput(stage, withText ? () => this.#streamedText(runId, stage.stageNumber) : undefined))
    return withText ? { run, stages, version: this.#versionOf(runId) } : { run, stages, version: this.#versionOf(runId), streamedText: false }
  }

  async getRuns(runIds: readonly string[], options: GetRunOptions = {}): Promise<Map<string, RunSnapshot>> {
    const snapshots = new Map<string, RunSnapshot>()
    for (const runId of runIds) {
      const snapshot = await this.getRun(runId, options)
      if (snapshot) snapshots.set(runId, snapshot)
    }
    return snapshots
  }

  async getOutputChunk(runId: string, stageNumber: number, seq: number): Promise<string | undefined> {
    return this.#chunks.get(runId)?.find((chunk) => chunk.stageNumber === stageNumber && chunk.seq === seq)?.text
  }

  async getStreamedOutput(runId: string, stageNumber: number, lastSeq: number): Promise<string> {
    return this.#streamedText(runId, stageNumber, lastSeq)
  }

  async getOutputChunksSince(runId: string, version: number, limit?: number): Promise<OutputChunkRow[]> {
    const chunks = this.#chunks.get(runId) ?? []
    // Kept in version order: the first one after `version` is found by bisection, so a live
    // stream's read costs the chunks it gets, not the text.
    const low = chunksUpTo(chunks, version)
    return chunks.slice(low, limit === undefined ? undefined : low + limit).map((chunk) => ({ ...chunk }))
  }

  async listStaleRuns(updatedBefore: Date, limit: number, now?: Date): Promise<RunState[]> {
    return [...this.#runs.values()]
      .filter((run) => {
        if (isFinalStatus(run.status)) return false
        const cutoff =
          now && run.heartbeatIntervalMs ? now.getTime() - silenceLimitMs(run, 0) : updatedBefore.getTime()
        return lastSeenAt(run).getTime() < cutoff
      })
      .sort((a, b) => a.updatedAt.getTime() - b.updatedAt.getTime() || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
      .slice(0, limit)
  }

  async listRuns(request: RunListRequest): Promise<RunListItem[]> {
    return this.#listed(request).map((run) => toRunListItem(run, this.#versionOf(run.id), [...(this.#stages.get(run.id)?.values() ?? [])]))
  }

  async listRunWindow(request: RunListRequest): Promise<RunWindowEntry[]> {
    return this.#listed(request).map((run) => ({ id: run.id, version: this.#versionOf(run.id) }))
  }

  /** The runs `request` lists, in the list's order. */
  #listed(request: RunListRequest): RunState[] {
    const { filter, after, limit } = request
    if (matchesNothing(filter)) return []
    return [...this.#runs.values()]
      .filter((run) => matchesRunFilter(run, filter) && (after === undefined || isAfterPosition(run, after)))
      .sort(compareRunsForList)
      .slice(0, limit)
  }

  async countRuns(request: RunCountRequest): Promise<Record<string, number>> {
    const counts: Record<string, number> = {}
    if (matchesNothing(request.filter)) return counts
    for (const run of this.#runs.values()) {
      if (!matchesRunFilter(run, request.filter)) continue
      const key = countKey(run, request.groupBy)
      counts[key] = (counts[key] ?? 0) + 1
    }
    return counts
  }

  async runStats(request: RunStatsRequest): Promise<StageStats[]> {
    if (matchesNothing(request.filter)) return []
    const runs = [...this.#runs.values()]
      .filter((run) => matchesRunFilter(run, request.filter))
      .map((run) => ({ run, stages: this.#stages.get(run.id)?.values() ?? [] }))
    return computeStageStats(runs, request.since)
  }

  /** Removes every run and stage. */
  reset(): void {
    this.#runs.clear()
    this.#versions.clear()
    this.#stages.clear()
    this.#chunks.clear()
  }

  /** The ids of all stored runs, in insertion order. */
  runIds(): string[] {
    return [...this.#runs.keys()]
  }

  /** Runs `fn` after every write queued before it, like transactions taking turns. */
  #serialized<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.#queue.then(fn, fn)
    this.#queue = result.catch(() => undefined)
    return result
  }

  /**
   * Stores a run decided by the state machine. The last activity and the announced interval are
   * the heartbeat's alone (as in PostgreSQL, where other writes leave those columns alone), so a
   * heartbeat between a read and its write is never undone.
   */
  #storeRun(run: RunState): void {
    const stored = this.#runs.get(run.id)
    this.#runs.set(run.id, {
      ...run,
      lastActivityAt: stored?.lastActivityAt ?? null,
      heartbeatIntervalMs: stored?.heartbeatIntervalMs ?? null,
    })
  }

  /** A stage's streamed text: its chunks' text (up to chunk `lastSeq`) in `seq` order. */
  #streamedText(runId: string, stageNumber: number, lastSeq = Infinity): string {
    return (this.#chunks.get(runId) ?? [])
      .filter((chunk) => chunk.stageNumber === stageNumber && chunk.seq <= lastSeq)
      .sort((a, b) => a.seq - b.seq)
      .map((chunk) => chunk.text)
      .join('')
  }

  #addChunk(runId: string, chunk: OutputChunkRow): void {
    let chunks = this.#chunks.get(runId)
    if (!chunks) {
      chunks = []
      this.#chunks.set(runId, chunks)
    }
    chunks.push(chunk)
  }

  #dropChunks(runId: string, stageNumber: number): void {
    const chunks = this.#chunks.get(runId)
    if (chunks) this.#chunks.set(runId, chunks.filter((chunk) => chunk.stageNumber !== stageNumber))
  }

  #versionOf(runId: string): number {
    return this.#versions.get(runId) ?? INITIAL_RUN_VERSION
  }

  #stagesOf(runId: string): Map<number, StageState> {
    let stages = this.#stages.get(runId)
    if (!stages) {
      stages = new Map()
      this.#stages.set(runId, stages)
    }
    return stages
  }
}
