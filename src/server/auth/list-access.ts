/**
 * Who may list, count and follow runs as a set, and which of them (docs/design.md, "Runs as a
 * collection", "Who may see what"). This first version knows only the webhook secret, which sees
 * every run; read tokens scoped to a tag, `authorize({ action: 'list' })` and the app's
 * `listScope` come next, in this file, behind the same signature. Internal.
 */
import type { RunScope } from '../../contract/run-list.js'
import type { Exchange } from '../http/exchange.js'
import type { HandlerSettings } from '../settings.js'
import { secretRefused } from './webhook-auth.js'

/** What a caller may see of the collection: its scope, ANDed into every list, count and set stream. */
export interface RunSetAccess {
  /** `{}` sees every run. */
  readonly scope: RunScope
}

/**
 * Authorizes a list, a count or a set stream: the caller's scope, or the refusal to answer with
 * (a problem+json `Response`, 401 like the other read routes). The webhook secret sees all
 * (scope `{}`).
 */
export async function authorizeRunSet(exchange: Exchange, settings: HandlerSettings): Promise<Response | RunSetAccess> {
  const { request } = exchange
  if (await settings.auth.secretMatches(request)) return { scope: {} }
  return secretRefused(request, settings.readTokenSecrets.length > 0, settings.auth.plainSecrets).getResponse()
}
