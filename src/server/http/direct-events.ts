/**
 * Live streams written straight to an adapter's own response (issue 31 item 5): a `Request` the
 * Node bridge built with `directEvents` says that the bridge itself writes the answer, so the live
 * route answers it with a bodiless `Response` that carries the open stream, and the bridge
 * attaches the stream to the Node response ({@link directEventsOf}). An idle stream then holds no
 * Web stream, reader, pending read or `Response` body: measured in bench/README.md, "Idle
 * streams". Every other caller gets the ordinary Web stream body. Edge-safe: symbols only.
 * Internal.
 */
import type { EventStreamBody } from '../live/event-sink.js'

const DIRECT_EVENTS = Symbol('pipeline-status-sdk.direct-events')
type WithDirectEvents = { [DIRECT_EVENTS]?: true | EventStreamBody }

/** Marks `request` as built by an adapter that writes a live stream's answer itself with {@link directEventsOf}. */
export function markDirectEvents(request: Request): void {
  ;(request as Request & WithDirectEvents)[DIRECT_EVENTS] = true
}

/** Whether {@link markDirectEvents} marked `request` (and it is a `GET`: a `HEAD` gets no stream). */
export function acceptsDirectEvents(request: Request): boolean {
  return request.method === 'GET' && (request as Request & WithDirectEvents)[DIRECT_EVENTS] === true
}

/** A `Response` of `init` without a body, carrying `body` for the adapter to attach. */
export function directEventsResponse(body: EventStreamBody, init: ResponseInit): Response {
  const response = new Response(null, init) as Response & WithDirectEvents
  response[DIRECT_EVENTS] = body
  return response
}

/** The stream a {@link directEventsResponse} carries; `undefined` for any other `Response`. */
export function directEventsOf(response: Response): EventStreamBody | undefined {
  const body = (response as Response & WithDirectEvents)[DIRECT_EVENTS]
  return typeof body === 'object' ? body : undefined
}
