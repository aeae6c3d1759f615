/**
 * Who sees what of the collection (`GET /runs`, `GET /runs/counts`, set streams), in the order
 * of docs/design.md "Runs as a collection": the webhook secret (or a signature) sees every run;
 * a read token sees its scope (a tag token its tag's runs; a run token no list); otherwise the
 * app's `authorize` with `action: 'list'` (`'dashboard'` for the dashboard page's reads), then
 * its `listScope`. The scope returned is ANDed into
 * the request's filters (`applyScope`), so no query parameter or cursor widens it. Internal.
 */
import type { RunScope } from '../../contract/run-list.js'
import { isRunScope } from '../../core/run-scope.js'
import type { Exchange } from '../http/exchange.js'
import { HttpProblemError, isHttpProblemError } from '../http/problem-response.js'
import { readBodyLimited } from '../http/read-body.js'
import type { HandlerSettings } from '../settings.js'
import { askAuthorize, bearerReadToken, invalidReadToken, isDashboardRead, isOpenDashboardRead, verifySignature } from './authenticate.js'
import { checkReadToken } from './run-read-token.js'
import { secretRefused } from './webhook-auth.js'

/** What {@link authorizeRunSet} reads of the handlers' settings. */
export type RunSetAccessSettings = Pick<
  HandlerSettings,
  'auth' | 'readTokenSecrets' | 'authorize' | 'listScope' | 'clock' | 'maxBodyBytes' | 'logger' | 'dashboard'
>

/** What a caller may see of the collection: its scope, ANDed into every list, count and set stream. */
export interface RunSetAccess {
  /** `{}` sees every run. */
  readonly scope: RunScope
  /**
   * When the credential stops admitting anything, in ms since the epoch (a tag read token's
   * expiry, or the `expiresAt` the app's `authorize` answered with): a set stream opened with it
   * ends then. Absent for credentials without an expiry.
   */
  readonly expiresAt?: number
}

/** The whole collection: the secret's scope. */
const EVERYTHING: RunScope = {}

/**
 * Decides what the request may see of the collection: `{ scope }` to AND into its filters, or
 * the refusal to answer with (401 `unauthorized` without a credential, 401 `invalid_read_token`
 * for a bad read token or a run token, 401 `authentication_required` / 403 `forbidden` from
 * `authorize`). An unexpected throw of `authorize` or `listScope`, or a `listScope` answer that
 * is not a scope, is thrown on to the route's error mapping: 500 `internal_error`, logged,
 * without its message.
 */
export async function authorizeRunSet(exchange: Exchange, settings: RunSetAccessSettings): Promise<RunSetAccess | Response> {
  try {
    return await runSetScope(exchange, settings)
  } catch (error) {
    if (!isHttpProblemError(error)) throw error
    const response = error.getResponse()
    settings.logger.warn(`pipeline-status: refused ${exchange.request.method} ${new URL(exchange.request.url).pathname}: ${response.status} ${error.code}`, {
      method: exchange.request.method,
      status: response.status,
      code: error.code,
    })
    return response
  }
}

async function runSetScope(exchange: Exchange, settings: RunSetAccessSettings): Promise<RunSetAccess> {
  const { auth, readTokenSecrets, authorize, listScope, clock } = settings
  const { request, native } = exchange
  if (await auth.secretMatches(request)) return { scope: EVERYTHING }
  const token = bearerReadToken(request, readTokenSecrets)
  if (token !== undefined) {
    const result = await checkReadToken(token, { secret: readTokenSecrets, now: clock() })
    if (result.kind === 'run') {
      // Its run id is not in the token, so it cannot even be checked here: it reads one run only.
      throw new HttpProblemError('invalid_read_token', {
        detail: 'A run read token reads its one run only; lists and counts take a tag read token, the webhook secret or the app session',
      })
    }
    if (!result.valid) throw invalidReadToken(result, 'lists')
    // A tag token sees its tag's runs, whatever the app's listScope would say of its holder.
    return { scope: { tags: [result.tag as string] }, expiresAt: result.expiresAt.getTime() }
  }
  if (auth.isSigned(request)) {
    await verifySignature(auth, request, await readBodyLimited(request, settings.maxBodyBytes), { path: routeOf(request) }, undefined)
    return { scope: EVERYTHING }
  }
  if (isOpenDashboardRead(request, settings.dashboard?.open)) return { scope: EVERYTHING }
  if (!authorize) throw secretRefused(request, readTokenSecrets.length > 0, auth.plainSecrets)
  const action = isDashboardRead(request, settings.dashboard !== undefined) ? 'dashboard' : 'list'
  const expiresAt = await askAuthorize(authorize, { request, runId: undefined, action, native }, clock)
  // The session's expiry, when authorize gave one: a set stream opened under it ends then.
  const until = (scope: RunScope): RunSetAccess => (expiresAt === undefined ? { scope } : { scope, expiresAt })
  if (!listScope) return until(EVERYTHING)
  const scope = await listScope({ request, native })
  if (scope === undefined) return until(EVERYTHING)
  if (!isRunScope(scope)) throw new TypeError('listScope returned a value that is not a RunScope ({ tags?: string[], pipeline?: string } or undefined)')
  return until(scope)
}

/** The collection's routes, as a signature names them (`webhookRoute`): the path after the base path. */
const SET_ROUTES = ['runs/counts', 'runs/stats', 'runs', 'events'] as const

/**
 * The route part a signature is bound to, from the end of the path, so that it holds wherever
 * the handlers are mounted (an Express router strips its mount point from the routing path).
 */
function routeOf(request: Request): string {
  const path = new URL(request.url).pathname.replace(/\/+$/, '')
  return SET_ROUTES.find((route) => path.endsWith(`/${route}`)) ?? path
}
