/** What one live status event does to the run's status a subscriber holds. */
import type { EventSourceMessage } from 'eventsource-parser/stream'
import { applyOutputChunk, LIVE_EVENTS, mergeRunUpdate, RunEndEvent, RunSnapshotEvent, RunUpdateEvent, StageOutputEvent } from '../contract/live-status.js'
import type { RunStatusResponse } from '../contract/records.js'
import { RunSubscriptionError } from './subscription-errors.js'

/** The outcome of one event: the status to publish, if it changed, and whether the event was `end`. */
export interface AppliedRunEvent {
  readonly next: RunStatusResponse | undefined
  readonly end: boolean
}

/**
 * Applies one event to the status held: a `snapshot` replaces it, an `update` is merged into it
 * ({@link mergeRunUpdate}), an `output` chunk is appended to its stage when it is the next one
 * ({@link applyOutputChunk}; any other chunk changes nothing, and the next snapshot or update
 * repairs a gap), `end` brings its final run. Unknown event names are for later protocol
 * versions and change nothing.
 *
 * @throws RunSubscriptionError without a status when the event's data is not the contract's.
 */
export function applyRunEvent(status: RunStatusResponse | undefined, message: EventSourceMessage): AppliedRunEvent {
  const parse = <T>(schema: { parse: (value: unknown) => T }): T => {
    try {
      return schema.parse(JSON.parse(message.data))
    } catch (cause) {
      throw new RunSubscriptionError(`The stream sent a malformed ${message.event ?? 'message'} event`, { cause })
    }
  }
  switch (message.event) {
    case LIVE_EVENTS.snapshot:
      return { next: parse(RunSnapshotEvent), end: false }
    case LIVE_EVENTS.update:
      return { next: mergeRunUpdate(status, parse(RunUpdateEvent)), end: false }
    case LIVE_EVENTS.output: {
      const chunk = parse(StageOutputEvent)
      if (status === undefined) return { next: undefined, end: false }
      const next = applyOutputChunk(status, chunk)
      return { next: next === status ? undefined : next, end: false }
    }
    case LIVE_EVENTS.end: {
      const { run } = parse(RunEndEvent)
      const changed = status !== undefined && JSON.stringify(status.run) !== JSON.stringify(run)
      return { next: changed ? { run, stages: status.stages } : undefined, end: true }
    }
    default:
      return { next: undefined, end: false }
  }
}
