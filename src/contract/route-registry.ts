/**
 * What the OpenAPI document says about each route of the route table (`routes.ts`): its prose,
 * request body, answers, problem codes and headers. Keyed by the table's route names and typed
 * `Record<ServedRouteName, RouteDocs>`, so a route added to the table does not compile until it
 * is described here; its method, path and access come from the table, never written twice.
 */
import { z } from 'zod'
import { CompleteRun, CreateRun } from './complete.js'
import {
  describeStreamClosedComments,
  LIVE_EVENTS,
  MAX_SET_STREAM_RUNS,
  RunEndEvent,
  RunLeaveEvent,
  RunSnapshotEvent,
  RunUpdateEvent,
  SetStreamReadyEvent,
  StageOutputEvent,
} from './live-status.js'
import type { ProblemCode } from './problem.js'
import {
  CancelRunResponse,
  CompleteRunResponse,
  CreateRunResponse,
  HeartbeatResponse,
  RunLabelsResponse,
  RunStatusResponse,
  StageUpdateResponse,
} from './records.js'
import { ROUTE_TABLE, type RouteSpec, type ServedRouteName } from './routes.js'
import { RunCounts, RunListPage, RunSummary } from './run-list.js'
import { DEFAULT_STATS_DAYS, MAX_STATS_DAYS, RunStatsResponse } from './run-stats.js'
import { RunMetadataPatch, RunTagsChange } from './run-labels.js'
import { StageOutputChunk, StageOutputChunkResponse } from './output-chunks.js'
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
  /** A page of the dashboard: `html` its shell (`text/html`), `asset` one of its files (`text/javascript`, `text/css`). */
  readonly page?: 'html' | 'asset'
  /** Response headers it carries; required ones are always sent. */
  readonly headers?: readonly { readonly name: ResponseHeaderName; readonly required: boolean }[]
}

/** The response headers the registry can name (see `openapi.ts` for their schemas). */
export type ResponseHeaderName = 'ETag' | 'Cache-Control' | 'Retry-After' | 'Allow' | 'Content-Security-Policy' | 'X-Content-Type-Options'

/** The request headers the registry can name beyond authentication. */
export type RequestHeaderName = 'Idempotency-Key' | 'If-None-Match' | 'Last-Event-ID'

/** A query parameter of a route, as the document describes it. */
export interface QueryParameterDoc {
  /** Its name, e.g. `limit`. */
  readonly name: string
  /** What it does, for people. */
  readonly description: string
  /** The JSON Schema of one value. */
  readonly schema: Readonly<Record<string, unknown>>
  /** It must be given. */
  readonly required?: true
  /** It may be repeated (`?status=FAILED&status=CANCELLED`); the schema is then an array's. */
  readonly repeated?: true
}

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
  /** Its query parameters. */
  readonly query?: readonly QueryParameterDoc[]
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

/**
 * A list, count, stats or set stream: the secret, a tag read token (a run token is refused) or
 * the app's `authorize`, the query, the store's methods.
 */
const SET_READ: readonly ProblemCode[] = [...EVERY_ROUTE, ...STORE, 'unauthorized', 'invalid_read_token', 'authentication_required', 'forbidden', 'invalid_query', 'not_implemented']

const STATUSES = ['PENDING', 'PROCESSING', 'COMPLETED', 'FAILED', 'CANCELLED']
/** The filters lists, counts and set streams share. */
const LIST_FILTERS: readonly QueryParameterDoc[] = [
  { name: 'status', repeated: true, description: 'Runs in any of these statuses (repeat the parameter). An unknown status is 400 `invalid_query` naming `status`.', schema: { type: 'array', items: { type: 'string', enum: STATUSES } } },
  { name: 'pipeline', description: 'Runs of this pipeline; a pipeline no longer configured is allowed (old runs keep their name). Text with a NUL is 400 `invalid_query` naming `pipeline`, as every filter value that is not storable text.', schema: { type: 'string', minLength: 1 } },
  { name: 'tag', repeated: true, description: 'Runs carrying every one of these tags (repeat the parameter); each 1 to 128 UTF-16 code units without NUL, the rule of `POST /runs`.', schema: { type: 'array', items: { type: 'string', minLength: 1, maxLength: 128 } } },
  { name: 'createdAfter', description: 'Runs created at or after this instant (inclusive; ISO 8601, no offset = UTC; a fraction finer than a millisecond rounds up; an offset\'s `+` written `%2B`).', schema: { type: 'string' } },
  { name: 'createdBefore', description: 'Runs created before this instant (exclusive; ISO 8601, no offset = UTC; a fraction finer than a millisecond rounds up; an offset\'s `+` written `%2B`).', schema: { type: 'string' } },
]

/** A set stream's `snapshot`: the status document (view `full`) or the run's list item (view `summary`). */
const SetStreamSnapshotEvent = z.union([RunSnapshotEvent, RunSummary])
/** A set stream's `update`: `{ run, stages }` (view `full`) or the run's list item (view `summary`). */
const SetStreamUpdateEvent = z.union([RunUpdateEvent, RunSummary])

/** The file name the document is served under, after the base path: `{basePath}/openapi.json`. */
export const OPENAPI_DOCUMENT_NAME = ROUTE_TABLE.openApi.path.slice(1)

const NO_STORE = { name: 'Cache-Control', required: true } as const
/** The dashboard's answers: cached only with revalidation, its policy and `nosniff`. */
const DASHBOARD_HEADERS = [NO_STORE, { name: 'Content-Security-Policy', required: true }, { name: 'X-Content-Type-Options', required: true }] as const

/** The docs of each route of the table, in the order the document lists them. */
const ROUTE_DOCS = {
  createRun: {
    summary: 'Create a run',
    description:
      'Creates a run, or returns the existing one with that id (idempotent by id). Without an `id` the server picks a random UUID, so a caller that retries should choose the id itself. The body may be absent (then without `Content-Type`). `pipeline` names one of the server\'s pipelines (`default` when absent; another name is 400 naming `pipeline` and listing those configured); the run keeps a snapshot of that pipeline\'s catalogue, which the answer\'s `catalogue` is. `tags` (at most 20, each 1 to 128 characters, repeats stored once) and `metadata` (a JSON object, at most 16 KiB as UTF-8 JSON) label the run.',
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
      "Stores one stage's status and derives the run's in the same write. The same update again is a no-op answered 200 (`duplicate`); a final status again with a different `output` is 200 `conflict` (the stored output stays; nothing changes); a late `PROCESSING` is `stale`; an update that contradicts a finished run's outcome is 409 and changes nothing. `stageNumber` must be 1..N, N being the last stage of the run's own catalogue (the snapshot of its pipeline taken when it was created; five stages by default), else 400 naming `stageNumber`. A run without a catalogue of its own follows its pipeline's current one and stores it with this update; if its pipeline is not configured, 409 `unknown_pipeline`. A `PROCESSING` update may carry the attempt fields: a higher `attempt` than stored is applied and resets the stage's progress, a lower one is `stale`, one without `attempt` leaves the stored one; the stage's first applied update sets its `startedAt` (and the run's, for its first stage).",
    body: { schema: named('StageUpdate', StageUpdate), required: true },
    answers: {
      200: { description: 'Stored, or recognised as a retry, a late arrival or a conflicting repeat (`outcome`); `stage` as `GET /status` shows it (the streamed text so far as its `output` while it has no final output of its own).', json: named('StageUpdateResponse', StageUpdateResponse), headers: [NO_STORE] },
    },
    problems: [...WRITE, 'run_not_found', 'run_finished', 'stage_finished', 'unknown_pipeline'],
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
  listRuns: {
    summary: 'List runs',
    description:
      'A page of runs, newest first (`createdAt` descending, ties by `id` descending in code-unit order, `COLLATE "C"`), each a `RunSummary`: the run without stage outputs, `currentStage` (the highest-numbered `PROCESSING` stage, else `null`) and `stageCounts` (all five statuses; `PENDING` = catalogue length − stored stages). A list item\'s `error` is cut to 1,000 characters with `errorTruncated: true`. `nextCursor` (opaque, `null` on the last page) continues the list; it is bound to the filters and the caller it was made for, and is 400 `invalid_cursor` with any other. Runs created meanwhile never shift a page: the cursor is a position (keyset), not an offset. A query parameter not listed here is 400 `invalid_query` naming it. Authorized by the webhook secret, which sees every run.',
    answers: { 200: { description: 'A page of runs.', json: named('RunListPage', RunListPage), headers: [NO_STORE] } },
    problems: [...SET_READ, 'invalid_cursor'],
    query: [
      ...LIST_FILTERS,
      { name: 'limit', description: 'The page size, 1..200 (default 50); anything else is 400 `invalid_query` naming `limit`.', schema: { type: 'integer', minimum: 1, maximum: 200, default: 50 } },
      { name: 'cursor', description: 'The `nextCursor` of the previous page, with the same filters.', schema: { type: 'string' } },
    ],
  },
  runCounts: {
    summary: 'Count runs',
    description:
      'How many runs match the filters, per status or per pipeline (`groupBy`, required: without it, or with another value, 400 `invalid_query` naming `groupBy`). Keys without a run are absent. A query parameter not listed here is 400 `invalid_query` naming it. Authorized like the list.',
    answers: { 200: { description: 'Runs per key.', json: named('RunCounts', RunCounts), headers: [NO_STORE] } },
    problems: SET_READ,
    query: [{ name: 'groupBy', required: true, description: 'What to count by: `status` or `pipeline`.', schema: { type: 'string', enum: ['status', 'pipeline'] } }, ...LIST_FILTERS],
  },
  runStats: {
    summary: 'Stage durations and failures',
    description:
      "Per pipeline and stage number, over the last `days` days (the window ends now, by the server's clock): `count`, the COMPLETED stages with both `startedAt` and `completedAt` whose `completedAt` is in the window, and their durations' `p50Ms` and `p95Ms` (PostgreSQL's `percentile_cont`: linear interpolation, rounded to integer milliseconds; `null` when `count` is 0); `failed`, the FAILED stages whose `completedAt` is in the window; `name`, the stage's name in the newest run (by `createdAt`). Ordered by pipeline, then stage number; a stage with nothing in the window is absent. A query parameter not listed here is 400 `invalid_query` naming it. Authorized like the list: the caller's scope narrows the runs whose stages count.",
    answers: { 200: { description: 'The stats, one entry per pipeline and stage.', json: named('RunStatsResponse', RunStatsResponse), headers: [NO_STORE] } },
    problems: SET_READ,
    query: [
      { name: 'pipeline', description: 'Only this pipeline\'s stages; a pipeline no longer configured is allowed. Text with a NUL is 400 `invalid_query` naming `pipeline`.', schema: { type: 'string', minLength: 1 } },
      { name: 'days', description: `The window in whole days back from now, 1..${MAX_STATS_DAYS} (default ${DEFAULT_STATS_DAYS}); anything else is 400 \`invalid_query\` naming \`days\`.`, schema: { type: 'integer', minimum: 1, maximum: MAX_STATS_DAYS, default: DEFAULT_STATS_DAYS } },
    ],
  },
  heartbeat: {
    summary: 'Say the runner is alive',
    description:
      "Records the run's last activity (and the announced heartbeat interval) without changing its status or version; with `progress` (and `stageNumber`) it also stores the running stage's progress, the highest `seq` winning. The answer carries the run as stored, so a runner learns here that its run was cancelled, failed by the stale-run sweeper or completed elsewhere. The body may be absent.",
    body: { schema: named('Heartbeat', Heartbeat), required: false },
    answers: {
      200: { description: 'Recorded; `run` is the run as stored, `stage` (when named) as `GET /status` shows it (the streamed text so far as its `output` while it has no final output of its own).', json: named('HeartbeatResponse', HeartbeatResponse), headers: [NO_STORE] },
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
      "A Server-Sent Events stream of the run: `event: snapshot` first (the status document), then `event: update` (the run and every stage changed since the previous event), then `event: end` once the run is finished, and the server closes. Each applied chunk of a stage's streamed output is one `event: output` (`id:` the version it made; append its `text` when its `seq` is the stage's `outputSeq + 1`) and no `update`; an `update` never carries a stage's streamed text (its `outputSeq` says how far it is). Each event's `id:` is the run version; a reconnect with a `Last-Event-ID` the server can serve (a version the run had) gets no snapshot: one `update` with the run and its stages (streamed text left out, `outputSeq` as of that version), then every chunk after it as `output` events in order, then live events; any other `Last-Event-ID` gets a fresh snapshot. `retry:` comes first, then the comment `: keep-alive-ms <ms>` announcing the keep-alive interval; a `: keep-alive` comment follows every interval (15 s by default), and a subscriber that receives nothing for about three intervals should reconnect. With the query `outputs=changed`, an `update` stage whose output is unchanged since this stream sent it has no `output` member (keep the one you have). The `data:` of each event is JSON, described by the schemas `x-sse-events` names.",
    answers: {
      200: {
        description: `The event stream. ${describeStreamClosedComments('run')}`,
        events: {
          [LIVE_EVENTS.snapshot]: named('RunSnapshotEvent', RunSnapshotEvent),
          [LIVE_EVENTS.update]: named('RunUpdateEvent', RunUpdateEvent),
          [LIVE_EVENTS.end]: named('RunEndEvent', RunEndEvent),
          [LIVE_EVENTS.output]: named('StageOutputEvent', StageOutputEvent),
        },
      },
    },
    problems: [...READ, 'too_many_streams'],
    requestHeaders: ['Last-Event-ID'],
  },
  runSetEvents: {
    summary: 'Stream a set of runs (Server-Sent Events)',
    description:
      "One Server-Sent Events stream for many runs, so a page that follows a list or dozens of runs holds one connection. Either the list's filters (`status`, `pipeline`, `tag`, `createdAfter`, `createdBefore`, as `GET /runs`) with `limit` (1..200, default 50): the stream follows the WINDOW of the newest `limit` runs matching the filters and the caller's scope, in the list's order (`createdAt` descending, ties by `id` descending); or repeated `run` (1 to " +
      MAX_SET_STREAM_RUNS +
      " ids; more is 400 `invalid_query` naming `run`; filters or `limit` with `run` are 400 naming the filter). A query parameter not listed here is 400 `invalid_query` naming it.\n\n" +
      "Events: first a `snapshot` per run (newest first, the list's order), then `ready` `{ runs }` (how many runs the stream follows), then live events. A run that enters the window later (created, tagged, a status filter reached) joins with a `snapshot`; one that leaves it (a tag removed, a status filter left, pushed out by newer runs) gets `leave` `{ runId }` and no more events. A change of a run is an `update`: in view `full` (the default) `{ run, stages }` as the run's own stream sends it, and each applied chunk of streamed output an `output` event naming its `runId`; in view `summary` (lists, dashboards) the run's `RunSummary`, never an `output`. A run that is finished gets `end` `{ run }` once (right after its snapshot, when it joined finished) and the stream stays open; a finished run stays in the window until it leaves and later changes of it (tags, metadata) are `update`s. A `run=` stream closes after every listed run ended (runs finished already: their snapshot and `end` at once). `id:` is `runId:version`, information only: a reconnect (with or without `Last-Event-ID`) always starts with fresh snapshots. `retry:`, the `: keep-alive-ms` comment and keep-alives as on a run's stream.\n\n" +
      "Who sees what, as lists: the webhook secret (or a signature) sees every run; a tag read token its tag's runs; otherwise the app's `authorize` (`action: 'list'`, `runId` undefined) and its `listScope`, ANDed into the filters. A `run=` stream authorizes each run as its own stream would (`authorize` with `action: 'stream'` and the run's id; a run token covers its run only; a tag token each run carrying its tag); the first refusal answers the whole request (401, 403), and an unknown run is 404 `run_not_found`; either problem names the refused run in the extension member `runId`, so a client can ask again without it (a refusal of the credential itself, before any run is judged, names none). A change after which a tag token no longer covers a listed run closes the stream without an event; its reconnect is 401 `invalid_read_token` naming that run. Across instances, runs that join are found by one indexed window query per distinct (filters, scope, limit) per poll tick (in LISTEN mode only after a notification of a run outside the window, and at the safety poll).",
    answers: {
      200: {
        description: `The event stream. ${describeStreamClosedComments('set')}`,
        events: {
          [LIVE_EVENTS.snapshot]: named('SetStreamSnapshotEvent', SetStreamSnapshotEvent),
          [LIVE_EVENTS.ready]: named('SetStreamReadyEvent', SetStreamReadyEvent),
          [LIVE_EVENTS.update]: named('SetStreamUpdateEvent', SetStreamUpdateEvent),
          [LIVE_EVENTS.output]: named('StageOutputEvent', StageOutputEvent),
          [LIVE_EVENTS.leave]: named('RunLeaveEvent', RunLeaveEvent),
          [LIVE_EVENTS.end]: named('RunEndEvent', RunEndEvent),
        },
      },
    },
    problems: [...SET_READ, ...BODY, 'invalid_signature', 'invalid_read_token', 'authentication_required', 'forbidden', 'run_not_found', 'too_many_streams'],
    requestHeaders: ['Last-Event-ID'],
    query: [
      ...LIST_FILTERS,
      { name: 'limit', description: 'With the filters: how many runs the window holds, 1..200 (default 50); anything else is 400 `invalid_query` naming `limit`.', schema: { type: 'integer', minimum: 1, maximum: 200, default: 50 } },
      { name: 'run', repeated: true, description: `The runs to follow, instead of the filters (repeat the parameter; repeats count once): 1 to ${MAX_SET_STREAM_RUNS}, more is 400 \`invalid_query\` naming \`run\`. An id outside the run id rule (\`run=%00\`) is 404 \`run_not_found\` before credentials are checked, as the same id in a path. The stream closes after every one of them ended.`, schema: { type: 'array', items: { type: 'string', minLength: 1 }, maxItems: MAX_SET_STREAM_RUNS } },
      { name: 'view', description: '`full` (default): status documents, `update` `{ run, stages }` and `output` events; `summary`: `RunSummary` data and no `output` events.', schema: { type: 'string', enum: ['full', 'summary'], default: 'full' } },
    ],
  },
  openApi: {
    summary: 'This OpenAPI document',
    description: 'The OpenAPI 3.1 document of the contract, with the base path it is served under as its server URL. Needs no secret.',
    answers: { 200: { description: 'The OpenAPI document.', openApiDocument: true, headers: [{ name: 'Cache-Control', required: true }] } },
    problems: EVERY_ROUTE,
  },
  // Runs as a collection: a run's tags and metadata.
  runTags: {
    summary: "Change a run's tags",
    description:
      "Removes the tags in `remove`, then adds those in `add` (a tag already there is not added twice; removing one that is not there is no error). A run carries at most 20 tags, each 1 to 128 characters: more afterwards is 400 `validation_failed` naming `tags`, and nothing changes. Applies to finished runs too. A change raises the run's version (a new `ETag`, an `update` event on its stream) without touching `updatedAt`; one that changes nothing writes nothing. JSON only. Authorized by the webhook secret or signature, or by the app's `authorize` hook with `action: 'tag'`.",
    body: { schema: named('RunTagsChange', RunTagsChange), required: true },
    answers: {
      200: { description: 'The run as stored afterwards.', json: named('RunLabelsResponse', RunLabelsResponse), headers: [NO_STORE] },
    },
    problems: [...WRITE, 'run_not_found', 'authentication_required', 'forbidden'],
    requestHeaders: ['Idempotency-Key'],
  },
  runMetadata: {
    summary: "Change a run's metadata",
    description:
      "Merges the body, a JSON Merge Patch (RFC 7396), into the run's metadata: a member `null` deletes that key, an object merges into the object there, anything else replaces it. The merged metadata must stay within 16 KiB as UTF-8 JSON, else 400 `validation_failed` naming `metadata` (a field's rule; 413 stays the body-size limit), and nothing changes. Applies to finished runs too. A change raises the run's version (a new `ETag`, an `update` event on its stream) without touching `updatedAt`; one that changes nothing writes nothing. JSON only. Authorized by the webhook secret or signature, or by the app's `authorize` hook with `action: 'metadata'`.",
    body: { schema: named('RunMetadataPatch', RunMetadataPatch), required: true },
    answers: {
      200: { description: 'The run as stored afterwards.', json: named('RunLabelsResponse', RunLabelsResponse), headers: [NO_STORE] },
    },
    problems: [...WRITE, 'run_not_found', 'authentication_required', 'forbidden'],
    requestHeaders: ['Idempotency-Key'],
  },
  stageOutput: {
    summary: "Append a chunk of a stage's streamed output",
    description:
      "One chunk `{ seq, text }` of a running stage's text (an LLM's tokens, batched by the runner). `seq` counts 0, 1, 2, … per stage and attempt: the next one is applied (a new run version, one `output` event on the run's stream); a repeat of an applied one is `duplicate` with the same text, `conflict` with another (the stored text stays); a gap is 409 `output_out_of_order` with `expectedSeq`, the next `seq` the server applies. A `stageNumber` outside the run's catalogue (1..N, as for a stage update) is 400 `validation_failed` naming `stageNumber`, checked first; a stage of it without an update yet is 409 `stage_not_started`; a final stage 409 `stage_finished`; a finished run 409 `run_finished`. `text` is at most 64 KiB as UTF-8 (400 naming `text`); a chunk that takes the stage's streamed text past the server's `maxStreamedOutputBytes` (1 MiB by default) is 413 `output_too_large` with `maxBytes`, and nothing is stored. Until the stage has a final output of its own, the status document shows the streamed text so far as the stage's `output`, with `outputSeq` the last applied `seq`; an output sent with the final status replaces it, a final status without one keeps it. An applied higher attempt restarts the stage's streamed output at `seq` 0.",
    body: { schema: named('StageOutputChunk', StageOutputChunk), required: true },
    answers: {
      200: {
        description: 'Applied, or a repeat (`duplicate`, `conflict`); `stage.outputSeq` is the last applied `seq` (-1 when none), `run` the run as stored.',
        json: named('StageOutputChunkResponse', StageOutputChunkResponse),
        headers: [NO_STORE],
      },
    },
    problems: [...WRITE, 'run_not_found', 'run_finished', 'stage_not_started', 'stage_finished', 'output_out_of_order', 'output_too_large', 'not_implemented'],
    requestHeaders: ['Idempotency-Key'],
  },
  // What people see: the dashboard (off by default; the handlers' `dashboard` option).
  dashboard: {
    summary: 'The dashboard page',
    description:
      "The dashboard's page shell, when the handlers' `dashboard` option is on (404 `route_not_found` otherwise). It holds no data: its script asks the routes above, authorized like lists (the app's `authorize` with `action: 'dashboard'`, or a credential the page asks for, keeps in `sessionStorage` and sends as a header). Needs no credential itself. Sent with `Content-Security-Policy: default-src 'self'; script-src 'self'; frame-ancestors 'none'` and `X-Content-Type-Options: nosniff`.",
    answers: { 200: { description: 'The page shell.', page: 'html', headers: DASHBOARD_HEADERS } },
    problems: [...EVERY_ROUTE, 'route_not_found'],
  },
  dashboardAsset: {
    summary: 'A file of the dashboard',
    description:
      "The dashboard's script or stylesheet, shipped in the package (no CDN), when the `dashboard` option is on; a name the dashboard does not have is 404 `route_not_found`. Its `ETag` is a hash of the file: sent back as `If-None-Match`, it answers 304.",
    answers: {
      200: { description: 'The file.', page: 'asset', headers: DASHBOARD_HEADERS },
      304: { description: 'Not modified since the `If-None-Match` tag: no body.', empty: true, headers: [{ name: 'Cache-Control', required: true }] },
    },
    problems: [...EVERY_ROUTE, 'route_not_found'],
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
