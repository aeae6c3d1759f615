/**
 * Who may do what, decided in this one module (and list-access.ts for the collection): a write
 * needs the webhook secret or a valid signature (over the body as sent, bound to the method,
 * route and run); a read (`GET /status`, the live stream) also takes a run read token, a tag read
 * token for a run carrying its tag, or whatever the app's `authorize` hook allows;
 * a cancel takes the secret or signature, else the hook with `action: 'cancel'`. The routes ask
 * `writeBody`, `read` or `cancelBody` and never look at credentials themselves. Internal.
 */
import { HEADERS } from '../../contract/headers.js'
import type { RouteName } from '../../contract/routes.js'
import { matchesRunFilter } from '../../core/run-list.js'
import { isRunScope } from '../../core/run-scope.js'
import type { RunScope } from '../../contract/run-list.js'
import type { RunSnapshot } from '../../core/state.js'
import { webhookRoute } from '../../signing/webhook-signature.js'
import { ServerConfigurationError } from '../configuration-error.js'
import type { AuthorizeGrant, AuthorizeHook, AuthorizeInput, AuthorizeResult, ListScopeHook, PipelineStatusHandlersSettings, RunAuthorizeAction } from '../handler-options.js'
import type { Exchange } from '../http/exchange.js'
import { parseJsonBody } from '../http/json-body.js'
import { isJsonMediaType } from '../http/media-type.js'
import { HttpProblemError, isHttpProblemError } from '../http/problem-response.js'
import { bodyAlreadyConsumed, readBodyLimited } from '../http/read-body.js'
import { hasRebuiltBody } from '../http/rebuilt-body.js'
import { unsupportedMediaType } from '../http/validate.js'
import { assertReadTokenSecret, checkReadToken, looksLikeRunReadToken, type RunReadTokenVerification } from './run-read-token.js'
import { resolveWebhookSecrets, secretRefused, signedOnly, type WebhookAuthenticator } from './webhook-auth.js'

/** The read token a request carries (`Authorization: Bearer psrt1.…`), when read tokens are on. */
export function bearerReadToken(request: Request, readTokenSecrets: readonly string[]): string | undefined {
  if (readTokenSecrets.length === 0) return undefined
  const token = /^Bearer +(\S+) *$/i.exec(request.headers.get('authorization') ?? '')?.[1]
  return token !== undefined && looksLikeRunReadToken(token) ? token : undefined
}

/** The 401 `invalid_read_token` for a refused token; `scope` names what it was refused for. */
export function invalidReadToken(result: RunReadTokenVerification & { valid: false }, scope: string): HttpProblemError {
  const detail =
    result.reason === 'expired'
      ? `The read token expired on ${result.expiresAt?.toISOString()}; get a new one`
      : result.reason === 'malformed'
        ? 'The read token is malformed'
        : `The read token is not valid for ${scope}`
  return new HttpProblemError('invalid_read_token', { detail })
}

/**
 * A tag token used on a run it does not cover. The same answer whether the run exists without
 * the tag or does not exist at all (and the same as a run token on another run's path), so a
 * token tells its holder nothing about runs outside its scope.
 */
const notCovered = (): HttpProblemError => invalidReadToken({ valid: false, reason: 'invalid' }, 'this run')

/**
 * What a valid read token of `runId` covers: `{ expiresAt }` for a run token, `{ tag, expiresAt }`
 * for a tag token (checked against the run once it is loaded), `expiresAt` in ms since the epoch;
 * `undefined` when the request carries none (or read tokens are off); throws 401
 * `invalid_read_token` for a bad one.
 */
async function readTokenAllows(
  request: Request,
  runId: string,
  readTokenSecrets: readonly string[],
  clock: () => Date,
): Promise<{ tag?: string; expiresAt: number } | undefined> {
  const token = bearerReadToken(request, readTokenSecrets)
  if (token === undefined) return undefined
  const result = await checkReadToken(token, { runId, secret: readTokenSecrets, now: clock() })
  if (!result.valid) throw invalidReadToken(result, 'this run')
  const expiresAt = result.expiresAt.getTime()
  return result.tag === undefined ? { expiresAt } : { tag: result.tag, expiresAt }
}

/**
 * Whether a read comes from the dashboard page (it sends `X-Pipeline-Status-Dashboard: 1`) while
 * the dashboard is on: then the app's `authorize` is asked with `action: 'dashboard'`. The mark
 * only picks which of the app's rules judges the request; it grants nothing by itself.
 */
export function isDashboardRead(request: Request, dashboardOn: boolean): boolean {
  return dashboardOn && request.headers.get(HEADERS.dashboard) === '1'
}

/**
 * Open mode (`dashboard.open`, the mock's): a read the page marks, from this machine, needs no
 * credential. "From this machine" is judged by the names the request carries: its Host (else its
 * URL's host) and, when present, its Origin must be a loopback name or address (`localhost`,
 * `127.x.x.x`, `::1`, any port). So any program on this machine can read, but a browser only from a
 * loopback origin: a DNS-rebinding site (Host `evil.example`) or another site's page (Origin
 * `https://evil.example`) gets the normal sign-in rules (401).
 */
export function isOpenDashboardRead(request: Request, open: boolean | undefined): boolean {
  if (open !== true || !isDashboardRead(request, true)) return false
  const host = request.headers.get('host') ?? urlHost(request.url)
  if (host === undefined || !isLoopbackHost(host)) return false
  const origin = request.headers.get('origin')
  if (origin === null) return true
  const originHost = urlHost(origin)
  return originHost !== undefined && isLoopbackHost(originHost)
}

function urlHost(url: string): string | undefined {
  try {
    return new URL(url).host
  } catch {
    return undefined
  }
}

/** `host` is a Host header's value (`name[:port]`, `[v6][:port]`). */
function isLoopbackHost(host: string): boolean {
  const name = (host.startsWith('[') ? host.slice(1, host.indexOf(']')) : host.replace(/:\d*$/, '')).toLowerCase()
  return name === 'localhost' || name === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(name)
}

/**
 * Asks the app's `authorize` hook; `false` is 403, its 401 is about the app's session. Returns
 * until when the permission holds, in ms since the epoch, when the hook said
 * (`{ allow: true, expiresAt }`), else `undefined`; an `expiresAt` already past by `now` (the
 * handlers' clock) is 401 `authentication_required`: the session it came from has ended.
 */
export async function askAuthorize(hook: AuthorizeHook<unknown>, input: AuthorizeInput<unknown>, now: () => Date): Promise<number | undefined> {
  let answer: AuthorizeResult
  try {
    answer = await hook(input)
  } catch (error) {
    // The hook's 401 is about the app's session, never the webhook secret.
    if (isHttpProblemError(error) && error.code === 'unauthorized') {
      throw new HttpProblemError('authentication_required', error.extras, error.headers)
    }
    throw error
  }
  if (answer === true) return undefined
  if (typeof answer === 'object' && answer !== null && answer.allow === true) {
    const expiresAt = grantExpiry(answer.expiresAt)
    if (expiresAt !== undefined && expiresAt <= now().getTime()) {
      throw new HttpProblemError('authentication_required', {
        detail: `The app's authorize hook allowed this request only until ${new Date(expiresAt).toISOString()}, which has passed; sign in again`,
      })
    }
    return expiresAt
  }
  const { action } = input
  // The title names what was refused: a refused cancel is not "Not allowed to read this run".
  const verb = action === 'metadata' ? 'change the metadata of' : action
  const what = action === 'list' ? 'list runs' : action === 'dashboard' ? 'see the dashboard' : `${verb} this run`
  const detail =
    action === 'list' || action === 'dashboard'
      ? `The app's authorize hook refused to let this request ${what}`
      : `The app's authorize hook refused to let this request ${verb} the run`
  throw new HttpProblemError('forbidden', { title: `Not allowed to ${what}`, detail })
}

/**
 * An {@link AuthorizeGrant}'s `expiresAt` in ms since the epoch; throws (a 500, logged) for one
 * that is no instant a `Date` can hold (NaN, ±Infinity, not a number, or past ±8.64e15 ms: ECMA-262's
 * time value range), in either direction: one rule for the past and the future.
 */
function grantExpiry(expiresAt: AuthorizeGrant['expiresAt']): number | undefined {
  if (expiresAt === undefined) return undefined
  const ms = expiresAt instanceof Date ? expiresAt.getTime() : expiresAt
  if (typeof ms !== 'number' || Number.isNaN(new Date(ms).getTime())) {
    throw new TypeError(
      `authorize returned an expiresAt that is neither a valid Date nor a number of milliseconds since the epoch a Date can hold (within ±8.64e15), got ${String(expiresAt)}`,
    )
  }
  return ms
}

/** Whether a write is signed (its signature is checked with the body); refuses one without a credential. */
async function authenticateWrite(auth: WebhookAuthenticator, request: Request): Promise<{ signed: boolean }> {
  if (auth.isSigned(request)) return { signed: true }
  if (auth.signatureRequired) throw signedOnly(request, auth.plainSecrets ? 'writes' : 'requests')
  if (!(await auth.secretMatches(request))) throw secretRefused(request)
  return { signed: false }
}

/** Checks a signature over the body as sent, bound to this method, route and run. */
export async function verifySignature(
  auth: WebhookAuthenticator,
  request: Request,
  body: Uint8Array,
  route: RouteName | { path: string },
  runId: string | undefined,
): Promise<void> {
  // Bytes rebuilt from a parsed body differ from what was signed as soon as the content is
  // not plain ASCII in compact form: refuse whatever the content, as a server fault.
  if (hasRebuiltBody(request)) throw bodyAlreadyConsumed()
  await auth.verify(request, body, typeof route === 'string' ? webhookRoute(route, runId) : route.path)
}

/** The accepted read-token secrets; throws when one is too short or is also a write secret. */
export function resolveReadTokenSecrets(options: Pick<PipelineStatusHandlersSettings, 'readTokens' | 'secret' | 'signing'>): string[] {
  if (options.readTokens === undefined) return []
  const secrets = typeof options.readTokens.secret === 'string' ? [options.readTokens.secret] : [...options.readTokens.secret]
  if (secrets.length === 0) throw new ServerConfigurationError('readTokens.secret is empty')
  const writeSecrets = new Set<string>(resolveWebhookSecrets(options.secret))
  const signing = options.signing?.secret
  for (const secret of typeof signing === 'string' ? [signing] : (signing ?? [])) writeSecrets.add(secret)
  for (const secret of secrets) {
    try {
      assertReadTokenSecret(secret)
    } catch (error) {
      throw new ServerConfigurationError(`readTokens.secret: ${(error as Error).message}`)
    }
    if (writeSecrets.has(secret)) {
      throw new ServerConfigurationError(
        'readTokens.secret must differ from the webhook and signing secrets: a read token must not be worth anything for writes',
      )
    }
  }
  return secrets
}

/** What authentication needs from the handlers' settings. */
export interface AuthSettings {
  readonly auth: WebhookAuthenticator
  readonly readTokenSecrets: readonly string[]
  readonly authorize: AuthorizeHook<unknown> | undefined
  readonly listScope: ListScopeHook<unknown> | undefined
  /** Set when the dashboard is on: its reads ask `authorize` with `action: 'dashboard'` (or pass, when `open`). */
  readonly dashboard: { readonly open: boolean } | undefined
  readonly clock: () => Date
  readonly maxBodyBytes: number
}

/** The decisions of one handlers instance. */
export interface RequestAuth {
  /** Authenticates a write, then reads and parses its JSON body within the limits (`undefined` for an allowed empty one). */
  /** `route`: the route signed, or for a route of two path parameters its signed path (`run_1/stages/2/output`). */
  writeBody(exchange: Exchange, route: RouteName | { path: string }, options: { allowEmpty: boolean }): Promise<unknown>
  /**
   * Authenticates a read of `runId`: the secret, a read token, a signature, else `authorize` with
   * `action`. What it answers must load the run through the returned access, which refuses a
   * tag token whose tag the stored run does not carry.
   */
  read(exchange: Exchange, route: RouteName, runId: string, action?: RunAuthorizeAction): Promise<RunReadAccess>
  /**
   * A cancel's body, authorized by the webhook secret or signature, else by the app's `authorize`
   * hook (`action: 'cancel'`). JSON only, checked before the hook: a cross-site form can send
   * the app's session cookie, but never `application/json` without a CORS preflight.
   */
  cancelBody(exchange: Exchange, runId: string): Promise<unknown>
  /**
   * The body of one of the app's writes of a run (`cancel`, `runTags`, `runMetadata`), authorized
   * like {@link RequestAuth.cancelBody}, the hook asked with `action`.
   */
  appWriteBody(exchange: Exchange, route: AppWriteRoute, runId: string, action: RunAuthorizeAction): Promise<unknown>
}

/** A read's grant, held until the run is loaded. */
export interface RunReadAccess {
  /**
   * Loads the run with `load` and returns it (`null`: no such run, for the route's 404). For a
   * tag read token, a run that does not carry the tag as stored, or no run at all, is refused
   * with 401 `invalid_read_token` (see `notCovered`). Every other credential was judged already.
   */
  load(load: () => Promise<RunSnapshot | null>): Promise<RunSnapshot | null>
  /** Whether the credential still covers the run as it now is (a stream checks each change). */
  admits(snapshot: RunSnapshot): boolean
  /**
   * When the credential stops admitting anything, in ms since the epoch (a read token's expiry,
   * or the `expiresAt` the app's `authorize` answered with): a stream opened with it ends then.
   * Absent for credentials without an expiry (the webhook secret, a signature, an `authorize`
   * that answered `true`).
   */
  readonly expiresAt?: number
}

const judged: RunReadAccess = { load: (load) => load(), admits: () => true }

/**
 * The grant of a run token, or of `authorize`'s `{ allow: true, expiresAt }`, until `expiresAt`
 * (without it, {@link judged}): the shared functions of {@link judged}, so a stream keeps no closure.
 */
const judgedUntil = (expiresAt: number | undefined): RunReadAccess =>
  expiresAt === undefined ? judged : { load: judged.load, admits: judged.admits, expiresAt }

/** The grant of a tag token: the run's stored tags decide, on every load and every change streamed, until `expiresAt`. */
function tagAccess(tag: string, expiresAt: number): RunReadAccess {
  const admits = (snapshot: RunSnapshot | null): snapshot is RunSnapshot => snapshot?.run.tags?.includes(tag) === true
  return {
    async load(load) {
      const snapshot = await load()
      if (!admits(snapshot)) throw notCovered()
      return snapshot
    },
    admits,
    expiresAt,
  }
}

/**
 * The grant of the dashboard's read under the app's `listScope`: a run outside the scope is
 * answered as no run at all (404), as the dashboard's lists never show it.
 */
function scopeAccess(scope: RunScope, expiresAt: number | undefined): RunReadAccess {
  const admits = (snapshot: RunSnapshot | null): snapshot is RunSnapshot => snapshot !== null && matchesRunFilter(snapshot.run, scope)
  const access: RunReadAccess = {
    async load(load) {
      const snapshot = await load()
      return admits(snapshot) ? snapshot : null
    },
    admits,
  }
  return expiresAt === undefined ? access : { ...access, expiresAt }
}

/** The app's writes of one run that the `authorize` hook may allow. */
export type AppWriteRoute = 'cancel' | 'runTags' | 'runMetadata'

/** Builds the authentication of one handlers instance. */
export function createRequestAuth(settings: AuthSettings): RequestAuth {
  const { auth, readTokenSecrets, authorize, clock, maxBodyBytes } = settings

  async function writeBody(exchange: Exchange, route: RouteName | { path: string }, options: { allowEmpty: boolean }): Promise<unknown> {
    const { request } = exchange
    const { signed } = await authenticateWrite(auth, request)
    const contentType = request.headers.get('content-type')
    // Run creation may come without a body, and then without a Content-Type.
    const typeless = contentType === null && options.allowEmpty
    if (!typeless && !isJsonMediaType(contentType)) throw unsupportedMediaType()
    const body = await readBodyLimited(request, maxBodyBytes)
    if (signed) await verifySignature(auth, request, body, route, exchange.runId)
    if (typeless && body.length > 0) throw unsupportedMediaType()
    return parseJsonBody(body, options)
  }

  async function read(exchange: Exchange, route: RouteName, runId: string, action: RunAuthorizeAction = 'read'): Promise<RunReadAccess> {
    const { request, native } = exchange
    if (await auth.secretMatches(request)) return judged
    const token = await readTokenAllows(request, runId, readTokenSecrets, clock)
    if (token) return token.tag === undefined ? judgedUntil(token.expiresAt) : tagAccess(token.tag, token.expiresAt)
    if (auth.isSigned(request)) {
      await verifySignature(auth, request, await readBodyLimited(request, maxBodyBytes), route, runId)
      return judged
    }
    if (isOpenDashboardRead(request, settings.dashboard?.open)) return judged
    if (authorize) {
      if (isDashboardRead(request, settings.dashboard !== undefined)) {
        const expiresAt = await askAuthorize(authorize, { request, runId, action: 'dashboard', native }, clock)
        const scope = settings.listScope ? await settings.listScope({ request, native }) : undefined
        if (scope === undefined) return judgedUntil(expiresAt)
        if (!isRunScope(scope)) throw new TypeError('listScope returned a value that is not a RunScope ({ tags?: string[], pipeline?: string } or undefined)')
        return scopeAccess(scope, expiresAt)
      }
      return judgedUntil(await askAuthorize(authorize, { request, runId, action, native }, clock))
    }
    throw secretRefused(request, readTokenSecrets.length > 0, auth.plainSecrets)
  }

  async function appWriteBody(exchange: Exchange, route: AppWriteRoute, runId: string, action: RunAuthorizeAction): Promise<unknown> {
    const { request } = exchange
    if (!authorize || auth.isSigned(request) || (await auth.secretMatches(request))) {
      return writeBody(exchange, route, { allowEmpty: false })
    }
    if (!isJsonMediaType(request.headers.get('content-type'))) throw unsupportedMediaType()
    await askAuthorize(authorize, { request, runId, action, native: exchange.native }, clock)
    return parseJsonBody(await readBodyLimited(request, maxBodyBytes), { allowEmpty: false })
  }

  const cancelBody = (exchange: Exchange, runId: string): Promise<unknown> => appWriteBody(exchange, 'cancel', runId, 'cancel')

  return { writeBody, read, cancelBody, appWriteBody }
}
