/**
 * What the OpenAPI document says about each route of the route table (`routes.ts`): its prose,
 * request body, answers, problem codes and headers. Keyed by the table's route names and typed
 * `Record<ServedRouteName, RouteDocs>`, so a route added to the table does not compile until it
 * is described here; its method, path and access come from the table, never written twice.
 */
import type { z } from 'zod'
import { CompleteRun, CreateRun } from './complete.js'
import { LIVE_EVENTS, RunEndEvent, RunSnapshotEvent, RunUpdateEvent } from './live-status.js'
import type { ProblemCode } from './problem.js'
import {
  CancelRunResponse,
  CompleteRunResponse,
  CreateRunResponse,
  HeartbeatResponse,
  RunStatusResponse,
  StageUpdateResponse,
} from './records.js'
import { ROUTE_TABLE, type RouteSpec, type ServedRouteName } from './routes.js'
import { CancelRun, Heartbeat } from './runner-control.js'
import { StageUpdate } from './stage-update.js'

/** A zod schema with the name it has under `components.schemas`. */
export interface NamedSchema {
  /** The component name, e.g. `StageUpdate`. */
  readonly name: string
  /** The zod schema the handlers use. */
  readonly schema: z.ZodType
}

/** Names a schema for the document's `components.schemas`. */
export function named(name: string, schema: z.ZodType): NamedSchema {
  return { name, schema }
}

/** A successful answer of a route. */
export interface RouteAnswer {
  /** What the answer means. */
  readonly description: string
  /** An `application/json` body. */
  readonly json?: NamedSchema
  /** A `text/event-stream` body: each event name and the schema of its `data:`. */
  readonly events?: Readonly<Record<string, NamedSchema>>
  /** An `application/json` body that is an OpenAPI document (this document). */
  readonly openApiDocument?: true
  /** Without a body (`304`). */
  readonly empty?: true
  /** Response headers it carries; required ones are always sent. */
  readonly headers?: readonly { readonly name: ResponseHeaderName; readonly required: boolean }[]
}

/** The response headers the registry can name (see `openapi.ts` for their schemas). */
export type ResponseHeaderName = 'ETag' | 'Cache-Control' | 'Retry-After' | 'Allow'

/** The request headers the registry can name beyond authentication. */
export type RequestHeaderName = 'Idempotency-Key' | 'If-None-Match' | 'Last-Event-ID'

/** What the document says about one route, beyond the table's method, path and access. */
export interface RouteDocs {
  /** One line for people. */
  readonly summary: string
  /** What it does, for people (Markdown). */
  readonly description: string
  /** The JSON request body, if any; `required: false` when it may be absent. */
  readonly body?: { readonly schema: NamedSchema; readonly required: boolean }
  /** The successful answers by status code. */
  readonly answers: Readonly<Record<number, RouteAnswer>>
  /** Every problem code the route may answer (`application/problem+json`), grouped by status in the document. */
  readonly problems: readonly ProblemCode[]
  /** Request headers it reads or that clients send, beyond authentication. */
  readonly requestHeaders?: readonly RequestHeaderName[]
}

/** One route of the contract as the document describes it: its table entry and its docs. */
export type ContractRoute = RouteSpec & RouteDocs

/** Every route can answer these: a too long URL, an unexpected error, a misconfigured Next.js route. */
const EVERY_ROUTE: readonly ProblemCode[] = ['uri_too_long', 'internal_error', 'configuration_error']
/** A route that reads or writes the database. */
const STORE: readonly ProblemCode[] = ['database_unavailable', 'database_not_migrated']
/** Checking a body: its encoding, size, media type and JSON. A signed read has its (empty) body checked too. */
const BODY: readonly ProblemCode[] = ['payload_too_large', 'unsupported_media_type', 'invalid_json', 'body_already_consumed']
/** A write: authentication, the body, validation. */
const WRITE: readonly ProblemCode[] = [...EVERY_ROUTE, ...STORE, ...BODY, 'unauthorized', 'invalid_signature', 'validation_failed']
/** A read of one run: every way to authenticate one, and the run must exist. */
const READ: readonly ProblemCode[] = [
  ...EVERY_ROUTE,
  ...STORE,
  ...BODY,
  'unauthorized',
  'invalid_signature',
  'invalid_read_token',
  'authentication_required',
  'forbidden',
  'run_not_found',
]

/** The file name the document is served under, after the base path: `{basePath}/openapi.json`. */
export const OPENAPI_DOCUMENT_NAME = ROUTE_TABLE.openApi.path.slice(1)

const NO_STORE = { name: 'Cache-Control', required: true } as const

/** The docs of each route of the table, in the order the document lists them. */
const ROUTE_DOCS = {
  createRun: {
    summary: 'Create a run',
    description:
      'Creates a run, or returns the existing one with that id (idempotent by id). Without an `id` the server picks a random UUID, so a caller that retries should choose the id itself. The body may be absent (then without `Content-Type`).',
    body: { schema: named('CreateRun', CreateRun), required: false },
    answers: {
      201: { description: 'The run was created.', json: named('CreateRunResponse', CreateRunResponse), headers: [NO_STORE] },
      200: { description: 'A run with this id already existed; it is returned as stored.', json: named('CreateRunResponse', CreateRunResponse), headers: [NO_STORE] },
    },
    problems: WRITE,
    requestHeaders: ['Idempotency-Key'],
  },
  stageUpdate: {
    summary: 'Report a stage',
    description:
      "Stores one stage's status and derives the run's in the same write. The same update again is a no-op answered 200 (`duplicate`); a final status again with a different `output` is 200 `conflict` (the stored output stays; nothing changes); a late `PROCESSING` is `stale`; an update that contradicts a finished run's outcome is 409 and changes nothing. `stageNumber` must be 1..N, N being the last stage of the server's catalogue (five by default). A `PROCESSING` update may carry the attempt fields: a higher `attempt` than stored is applied and resets the stage's progress, a lower one is `stale`, one without `attempt` leaves the stored one; the stage's first applied update sets its `startedAt` (and the run's, for its first stage).",
    body: { schema: named('StageUpdate', StageUpdate), required: true },
    answers: {
      200: { description: 'Stored, or recognised as a retry, a late arrival or a conflicting repeat (`outcome`).', json: named('StageUpdateResponse', StageUpdateResponse), headers: [NO_STORE] },
    },
    problems: [...WRITE, 'run_not_found', 'run_finished', 'stage_finished'],
    requestHeaders: ['Idempotency-Key'],
  },
  status: {
    summary: "Read a run's status",
    description:
      'The run and its stored stages, ordered by stage number; a stage that never reported is absent (`PENDING`). The `ETag` is the run version: sent back as `If-None-Match`, it answers 304 without a body until the run or one of its stages changes.',
    answers: {
      200: {
        description: 'The run and its stages.',
        json: named('RunStatusResponse', RunStatusResponse),
        headers: [
          { name: 'ETag', required: false },
          { name: 'Cache-Control', required: true },
        ],
      },
      304: {
        description: 'Not modified since the `If-None-Match` tag: no body.',
        empty: true,
        headers: [
          { name: 'ETag', required: true },
          { name: 'Cache-Control', required: true },
        ],
      },
    },
    problems: READ,
    requestHeaders: ['If-None-Match'],
  },
  complete: {
    summary: 'End a run',
    description:
      "Ends the run explicitly and hands the body's app-specific fields to the app's `onRunCompleted` hook, exactly once per run (`applied`), also when the last stage had already completed the run. Later calls answer `duplicate`; `COMPLETED` for a run that FAILED or was CANCELLED is 409.",
    body: { schema: named('CompleteRun', CompleteRun), required: true },
    answers: {
      200: { description: 'Completed (`applied`) or already completed (`duplicate`).', json: named('CompleteRunResponse', CompleteRunResponse), headers: [NO_STORE] },
    },
    problems: [...WRITE, 'run_not_found', 'run_finished'],
    requestHeaders: ['Idempotency-Key'],
  },
  heartbeat: {
    summary: 'Say the runner is alive',
    description:
      "Records the run's last activity (and the announced heartbeat interval) without changing its status or version; with `progress` (and `stageNumber`) it also stores the running stage's progress, the highest `seq` winning. The answer carries the run as stored, so a runner learns here that its run was cancelled, failed by the stale-run sweeper or completed elsewhere. The body may be absent.",
    body: { schema: named('Heartbeat', Heartbeat), required: false },
    answers: {
      200: { description: 'Recorded; `run` is the run as stored.', json: named('HeartbeatResponse', HeartbeatResponse), headers: [NO_STORE] },
    },
    problems: [...WRITE, 'run_not_found'],
    requestHeaders: ['Idempotency-Key'],
  },
  cancel: {
    summary: 'Cancel a run',
    description:
      "Cancels the run and its `PROCESSING` stage in one write (the web app's call). Idempotent: a second cancel answers 200 `duplicate`; a run already COMPLETED or FAILED is 409 and changes nothing. JSON only, so no cross-site form can send it. Authorized by the webhook secret or signature, or by the app's `authorize` hook with `action: 'cancel'`.",
    body: { schema: named('CancelRun', CancelRun), required: true },
    answers: {
      200: { description: 'Cancelled (`applied`) or already cancelled (`duplicate`).', json: named('CancelRunResponse', CancelRunResponse), headers: [NO_STORE] },
    },
    problems: [...WRITE, 'run_not_found', 'run_finished', 'authentication_required', 'forbidden'],
    requestHeaders: ['Idempotency-Key'],
  },
  events: {
    summary: "Stream a run's status (Server-Sent Events)",
    description:
      "A Server-Sent Events stream of the run: `event: snapshot` first (the status document), then `event: update` (the run and every stage changed since the previous event), then `event: end` once the run is finished, and the server closes. Each event's `id:` is the run version; a reconnect with `Last-Event-ID` is brought up to date. `retry:` comes first, then the comment `: keep-alive-ms <ms>` announcing the keep-alive interval; a `: keep-alive` comment follows every interval (15 s by default), and a subscriber that receives nothing for about three intervals should reconnect. With the query `outputs=changed`, an `update` stage whose output is unchanged since this stream sent it has no `output` member (keep the one you have). The `data:` of each event is JSON, described by the schemas `x-sse-events` names.",
    answers: {
      200: {
        description: 'The event stream.',
        events: {
          [LIVE_EVENTS.snapshot]: named('RunSnapshotEvent', RunSnapshotEvent),
          [LIVE_EVENTS.update]: named('RunUpdateEvent', RunUpdateEvent),
          [LIVE_EVENTS.end]: named('RunEndEvent', RunEndEvent),
        },
      },
    },
    problems: [...READ, 'too_many_streams'],
    requestHeaders: ['Last-Event-ID'],
  },
  openApi: {
    summary: 'This OpenAPI document',
    description: 'The OpenAPI 3.1 document of the contract, with the base path it is served under as its server URL. Needs no secret.',
    answers: { 200: { description: 'The OpenAPI document.', openApiDocument: true, headers: [{ name: 'Cache-Control', required: true }] } },
    problems: EVERY_ROUTE,
  },
} as const satisfies Record<ServedRouteName, RouteDocs>

/**
 * The routes of the contract, by name, as the document describes them: each table entry
 * (method, path relative to the base path, access) with its docs.
 */
export const CONTRACT_ROUTES = Object.fromEntries(
  (Object.keys(ROUTE_DOCS) as ServedRouteName[]).map((name) => [name, { ...ROUTE_TABLE[name], ...ROUTE_DOCS[name] }]),
) as { readonly [R in ServedRouteName]: (typeof ROUTE_TABLE)[R] & (typeof ROUTE_DOCS)[R] }

/** The name of a route in {@link CONTRACT_ROUTES}. */
export type ContractRouteName = ServedRouteName
