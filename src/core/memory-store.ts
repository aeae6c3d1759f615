import { isFinalStatus } from '../contract/status.js'
import type { RunSnapshot, RunState, StageState } from './state.js'
import type { Store, StoreTransaction } from './store.js'

/**
 * A `Store` in process memory, for the MSW mock, the mock server and tests. Transactions run
 * one at a time and their writes become visible only when they succeed, like a database's.
 *
 * @example
 * ```ts
 * import { MemoryStore } from 'pipeline-status-sdk/server'
 * const store = new MemoryStore()
 * ```
 */
export class MemoryStore implements Store<MemoryStore> {
  readonly #runs = new Map<string, RunState>()
  readonly #stages = new Map<string, Map<number, StageState>>()
  #queue: Promise<unknown> = Promise.resolve()

  async transaction<T>(fn: (tx: StoreTransaction<MemoryStore>) => Promise<T>): Promise<T> {
    const run = async (): Promise<T> => {
      const runs = new Map<string, RunState>()
      const stages: Array<[string, StageState]> = []
      const tx: StoreTransaction<MemoryStore> = {
        client: this,
        lockRun: async (runId) => runs.get(runId) ?? this.#runs.get(runId) ?? null,
        getStage: async (runId, stageNumber) => {
          const staged = stages.findLast(([id, s]) => id === runId && s.stageNumber === stageNumber)
          return staged?.[1] ?? this.#stages.get(runId)?.get(stageNumber)
        },
        saveStage: async (runId, stage) => void stages.push([runId, stage]),
        saveRun: async (next) => void runs.set(next.id, next),
      }
      const result = await fn(tx)
      for (const [id, next] of runs) this.#runs.set(id, next)
      for (const [runId, stage] of stages) this.#stagesOf(runId).set(stage.stageNumber, stage)
      return result
    }
    const result = this.#queue.then(run, run)
    this.#queue = result.catch(() => undefined)
    return result
  }

  async insertRun(run: RunState): Promise<{ created: boolean; run: RunState }> {
    return this.transaction(async () => {
      const existing = this.#runs.get(run.id)
      if (existing) return { created: false, run: existing }
      this.#runs.set(run.id, run)
      return { created: true, run }
    })
  }

  async getRun(runId: string): Promise<RunSnapshot | null> {
    const run = this.#runs.get(runId)
    if (!run) return null
    const stages = [...(this.#stages.get(runId)?.values() ?? [])].sort((a, b) => a.stageNumber - b.stageNumber)
    return { run, stages }
  }

  async listStaleRuns(updatedBefore: Date, limit: number): Promise<RunState[]> {
    return [...this.#runs.values()]
      .filter((run) => !isFinalStatus(run.status) && run.updatedAt.getTime() < updatedBefore.getTime())
      .sort((a, b) => a.updatedAt.getTime() - b.updatedAt.getTime() || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
      .slice(0, limit)
  }

  /** Removes every run and stage. */
  reset(): void {
    this.#runs.clear()
    this.#stages.clear()
  }

  /** The ids of all stored runs, in insertion order. */
  runIds(): string[] {
    return [...this.#runs.keys()]
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
