/**
 * The events of a set stream (`GET {base}/events`, docs/design.md "Runs as a collection"), parsed
 * and named by the run they are about: what `subscribeToRuns` and the page's shared connections
 * both read. Internal.
 */
import type { EventSourceMessage } from 'eventsource-parser/stream'
import { z } from 'zod'
import { LIVE_EVENTS, RunEndEvent, RunLeaveEvent, RunSnapshotEvent, RunUpdateEvent, SetStreamReadyEvent, type SetStreamView, StageOutputEvent } from '../contract/live-status.js'
import type { PipelineRunRecord, RunStatusResponse } from '../contract/records.js'
import { RunSummary } from '../contract/run-list.js'
import { RunSubscriptionError } from './subscription-errors.js'

/** One event of a set stream, by the run it names; `undefined` for an event name of a later protocol version. */
export type SetStreamEvent =
  | { readonly kind: 'snapshot'; readonly runId: string; readonly full: RunStatusResponse }
  | { readonly kind: 'snapshot'; readonly runId: string; readonly summary: RunSummary }
  | { readonly kind: 'update'; readonly runId: string; readonly full: RunUpdateEvent }
  | { readonly kind: 'update'; readonly runId: string; readonly summary: RunSummary }
  | { readonly kind: 'output'; readonly runId: string; readonly chunk: StageOutputEvent }
  | { readonly kind: 'end'; readonly runId: string; readonly run: PipelineRunRecord | RunSummary }
  | { readonly kind: 'leave'; readonly runId: string }
  | { readonly kind: 'ready'; readonly runs: number }

// A summary view's `end` may carry the run as a list item or as stored: whichever parses.
const SummaryEnd = z.object({ run: z.union([RunSummary, RunEndEvent.shape.run]) })

/**
 * Parses one event of a stream opened with `view`.
 *
 * @throws RunSubscriptionError without a status when the data is not the contract's (the
 * subscription stops: a server that sends malformed events will send them again).
 */
export function parseSetEvent(message: EventSourceMessage, view: SetStreamView): SetStreamEvent | undefined {
  const parse = <T>(schema: { parse: (value: unknown) => T }): T => {
    try {
      return schema.parse(JSON.parse(message.data))
    } catch (cause) {
      throw new RunSubscriptionError(`The set stream sent a malformed ${message.event ?? 'message'} event`, { cause })
    }
  }
  switch (message.event) {
    case LIVE_EVENTS.snapshot: {
      if (view === 'summary') {
        const summary = parse(RunSummary)
        return { kind: 'snapshot', runId: summary.id, summary }
      }
      const full = parse(RunSnapshotEvent)
      return { kind: 'snapshot', runId: full.run.id, full }
    }
    case LIVE_EVENTS.update: {
      if (view === 'summary') {
        const summary = parse(RunSummary)
        return { kind: 'update', runId: summary.id, summary }
      }
      const full = parse(RunUpdateEvent)
      return { kind: 'update', runId: full.run.id, full }
    }
    case LIVE_EVENTS.output: {
      const chunk = parse(StageOutputEvent)
      return { kind: 'output', runId: chunk.runId, chunk }
    }
    case LIVE_EVENTS.end: {
      const { run } = view === 'summary' ? parse(SummaryEnd) : parse(RunEndEvent)
      return { kind: 'end', runId: run.id, run }
    }
    case LIVE_EVENTS.leave:
      return { kind: 'leave', runId: parse(RunLeaveEvent).runId }
    case LIVE_EVENTS.ready:
      return { kind: 'ready', runs: parse(SetStreamReadyEvent).runs }
    default:
      return undefined
  }
}
