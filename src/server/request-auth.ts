import type { RouteName } from '../contract/routes.js'
import { webhookRoute } from '../signing/webhook-signature.js'
import { ServerConfigurationError } from './configuration-error.js'
import type { AuthorizeAction, AuthorizeHook, PipelineStatusHandlersSettings } from './handler-options.js'
import { HttpProblemError, isHttpProblemError } from './problem-response.js'
import { bodyAlreadyConsumed } from './read-body.js'
import { hasRebuiltBody } from './rebuilt-body.js'
import { assertReadTokenSecret, looksLikeRunReadToken, verifyRunReadToken } from './run-read-token.js'
import { resolveWebhookSecrets, secretRefused, signedOnly, type WebhookAuthenticator } from './webhook-auth.js'

// How the handlers authenticate and authorize a request: the webhook secret or signature for
// writes; for reads also a run read token or the app's `authorize` hook. Not exported from any
// entry point.

/**
 * `true` for a valid read token of `runId`; `false` when the request carries none (or read
 * tokens are off); throws 401 `invalid_read_token` for a bad one. Reads and, later, the stream.
 */
export async function readTokenAllows(
  request: Request,
  runId: string,
  readTokenSecrets: readonly string[],
  clock: () => Date,
): Promise<boolean> {
  if (readTokenSecrets.length === 0) return false
  const token = /^Bearer +(\S+) *$/i.exec(request.headers.get('authorization') ?? '')?.[1]
  if (token === undefined || !looksLikeRunReadToken(token)) return false
  const result = await verifyRunReadToken(token, { runId, secret: readTokenSecrets, now: clock() })
  if (result.valid) return true
  const detail =
    result.reason === 'expired'
      ? `The read token expired on ${result.expiresAt?.toISOString()}; get a new one`
      : result.reason === 'malformed'
        ? 'The read token is malformed'
        : 'The read token is not valid for this run'
  throw new HttpProblemError('invalid_read_token', { detail })
}

/** Asks the app's `authorize` hook; `false` is 403, its 401 is about the app's session. */
export async function askAuthorize(
  hook: AuthorizeHook<unknown>,
  exchange: { request: Request; native: unknown },
  runId: string,
  action: AuthorizeAction,
): Promise<void> {
  let allowed: boolean
  try {
    allowed = (await hook({ request: exchange.request, runId, action, native: exchange.native })) === true
  } catch (error) {
    // The hook's 401 is about the app's session, never the webhook secret.
    if (isHttpProblemError(error) && error.code === 'unauthorized') {
      throw new HttpProblemError('authentication_required', error.extras, error.headers)
    }
    throw error
  }
  if (allowed) return
  // The title names what was refused: a refused cancel is not "Not allowed to read this run".
  throw new HttpProblemError('forbidden', { title: `Not allowed to ${action} this run`, detail: `The app's authorize hook refused to let this request ${action} the run` })
}

export async function authenticateWrite(auth: WebhookAuthenticator, request: Request): Promise<{ signed: boolean }> {
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
  route: RouteName,
  runId: string | undefined,
): Promise<void> {
  // Bytes rebuilt from a parsed body differ from what was signed as soon as the content is
  // not plain ASCII in compact form: refuse whatever the content, as a server fault.
  if (hasRebuiltBody(request)) throw bodyAlreadyConsumed()
  await auth.verify(request, body, webhookRoute(route, runId))
}

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
