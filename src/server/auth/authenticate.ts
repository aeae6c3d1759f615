/**
 * Who may do what, decided in this one module: a write needs the webhook secret or a valid
 * signature (over the body as sent, bound to the method, route and run); a read (`GET /status`,
 * the live stream) also takes a run read token or whatever the app's `authorize` hook allows;
 * a cancel takes the secret or signature, else the hook with `action: 'cancel'`. The routes ask
 * `writeBody`, `read` or `cancelBody` and never look at credentials themselves. Internal.
 */
import type { RouteName } from '../../contract/routes.js'
import { webhookRoute } from '../../signing/webhook-signature.js'
import { ServerConfigurationError } from '../configuration-error.js'
import type { AuthorizeAction, AuthorizeHook, PipelineStatusHandlersSettings } from '../handler-options.js'
import type { Exchange } from '../http/exchange.js'
import { parseJsonBody } from '../http/json-body.js'
import { isJsonMediaType } from '../http/media-type.js'
import { HttpProblemError, isHttpProblemError } from '../http/problem-response.js'
import { bodyAlreadyConsumed, readBodyLimited } from '../http/read-body.js'
import { hasRebuiltBody } from '../http/rebuilt-body.js'
import { unsupportedMediaType } from '../http/validate.js'
import { assertReadTokenSecret, looksLikeRunReadToken, verifyRunReadToken } from './run-read-token.js'
import { resolveWebhookSecrets, secretRefused, signedOnly, type WebhookAuthenticator } from './webhook-auth.js'

/**
 * `true` for a valid read token of `runId`; `false` when the request carries none (or read
 * tokens are off); throws 401 `invalid_read_token` for a bad one. Reads and, later, the stream.
 */
async function readTokenAllows(
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
async function askAuthorize(
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
  const verb = action === 'metadata' ? 'change the metadata of' : action
  throw new HttpProblemError('forbidden', { title: `Not allowed to ${verb} this run`, detail: `The app's authorize hook refused to let this request ${verb} the run` })
}

/** Whether a write is signed (its signature is checked with the body); refuses one without a credential. */
async function authenticateWrite(auth: WebhookAuthenticator, request: Request): Promise<{ signed: boolean }> {
  if (auth.isSigned(request)) return { signed: true }
  if (auth.signatureRequired) throw signedOnly(request, auth.plainSecrets ? 'writes' : 'requests')
  if (!(await auth.secretMatches(request))) throw secretRefused(request)
  return { signed: false }
}

/** Checks a signature over the body as sent, bound to this method, route and run. */
async function verifySignature(
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
  readonly clock: () => Date
  readonly maxBodyBytes: number
}

/** The decisions of one handlers instance. */
export interface RequestAuth {
  /** Authenticates a write, then reads and parses its JSON body within the limits (`undefined` for an allowed empty one). */
  writeBody(exchange: Exchange, route: RouteName, options: { allowEmpty: boolean }): Promise<unknown>
  /** Authenticates a read of `runId`: the secret, a read token, a signature, else `authorize` with `action`. */
  read(exchange: Exchange, route: RouteName, runId: string, action?: AuthorizeAction): Promise<void>
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
  appWriteBody(exchange: Exchange, route: AppWriteRoute, runId: string, action: AuthorizeAction): Promise<unknown>
}

/** The app's writes of one run that the `authorize` hook may allow. */
export type AppWriteRoute = 'cancel' | 'runTags' | 'runMetadata'

/** Builds the authentication of one handlers instance. */
export function createRequestAuth(settings: AuthSettings): RequestAuth {
  const { auth, readTokenSecrets, authorize, clock, maxBodyBytes } = settings

  async function writeBody(exchange: Exchange, route: RouteName, options: { allowEmpty: boolean }): Promise<unknown> {
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

  async function read(exchange: Exchange, route: RouteName, runId: string, action: AuthorizeAction = 'read'): Promise<void> {
    const { request } = exchange
    if (await auth.secretMatches(request)) return
    if (await readTokenAllows(request, runId, readTokenSecrets, clock)) return
    if (auth.isSigned(request)) {
      await verifySignature(auth, request, await readBodyLimited(request, maxBodyBytes), route, runId)
      return
    }
    if (authorize) return askAuthorize(authorize, exchange, runId, action)
    throw secretRefused(request, readTokenSecrets.length > 0, auth.plainSecrets)
  }

  async function appWriteBody(exchange: Exchange, route: AppWriteRoute, runId: string, action: AuthorizeAction): Promise<unknown> {
    const { request } = exchange
    if (!authorize || auth.isSigned(request) || (await auth.secretMatches(request))) {
      return writeBody(exchange, route, { allowEmpty: false })
    }
    if (!isJsonMediaType(request.headers.get('content-type'))) throw unsupportedMediaType()
    await askAuthorize(authorize, exchange, runId, action)
    return parseJsonBody(await readBodyLimited(request, maxBodyBytes), { allowEmpty: false })
  }

  const cancelBody = (exchange: Exchange, runId: string): Promise<unknown> => appWriteBody(exchange, 'cancel', runId, 'cancel')

  return { writeBody, read, cancelBody, appWriteBody }
}
