/**
 * What a stream last sent of a run's stages, so that its next `update` holds only the stages
 * changed since (DESIGN.md "Live status"). The output is kept apart and compared by value, never
 * copied into the JSON of the rest. Set streams use it per member run; it follows the rule of
 * `OpenStream.deliver` (event-stream.ts), which single-run streams apply with their
 * `outputs=changed` option on top. Not importable outside this package.
 */
import type { RunUpdateEvent } from '../../contract/live-status.js'
import type { StageOutputRecord } from '../../contract/records.js'

/** One stage as last sent: the rest as JSON, the output apart. */
interface SentStage {
  readonly rest: string
  readonly output: string | null
}

/** The stages one stream last sent of one run. */
export class StageDiff {
  #stages = new Map<number, SentStage>()

  /** Records the stages as sent (a snapshot). */
  remember(stages: readonly StageOutputRecord[]): void {
    this.#stages = new Map(stages.map(({ output, ...rest }) => [rest.stageNumber, { rest: JSON.stringify(rest), output }]))
  }

  /** The stages that differ from those last sent, in their order; then records `stages` as sent. */
  changed(stages: readonly StageOutputRecord[]): RunUpdateEvent['stages'] {
    const changed: RunUpdateEvent['stages'] = []
    for (const stage of stages) {
      const sent = this.#stages.get(stage.stageNumber)
      const { output, ...rest } = stage
      if (sent?.output === output && sent.rest === JSON.stringify(rest)) continue
      changed.push(stage)
    }
    this.remember(stages)
    return changed
  }
}
