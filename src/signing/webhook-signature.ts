/**
 * Standard Webhooks signatures (https://www.standardwebhooks.com): HMAC-SHA256 over
 * `${webhook-id}.${webhook-timestamp}.${body}`, sent as `v1,<base64>`. Web Crypto only, no Node
 * imports, so the runner's client, the handlers and edge runtimes share this one module.
 */
import { HEADERS } from '../contract/headers.js'
import { type RouteName, routePath } from '../contract/routes.js'

/** The prefix of a Standard Webhooks secret whose rest is the base64 key. */
export const WEBHOOK_SECRET_PREFIX = 'whsec_'

/** The signature version this module writes and reads. */
const VERSION = 'v1'

/**
 * How far, in seconds, a `webhook-timestamp` may be from the receiver's clock by default:
 * 300, the Standard Webhooks recommendation.
 */
export const DEFAULT_WEBHOOK_TOLERANCE_SECONDS = 300

const encoder = new TextEncoder()

/**
 * The key bytes of a signing secret: `whsec_<base64>` is decoded as Standard Webhooks defines
 * it; any other string is used as its UTF-8 bytes, so a plain shared secret also works.
 * Throws a `TypeError` for an empty secret or a `whsec_` secret that is not base64.
 */
export function decodeWebhookSecret(secret: string): Uint8Array<ArrayBuffer> {
  if (typeof secret !== 'string' || secret === '') throw new TypeError('A webhook signing secret must be a non-empty string')
  if (!secret.startsWith(WEBHOOK_SECRET_PREFIX)) return encoder.encode(secret)
  const bytes = fromBase64(secret.slice(WEBHOOK_SECRET_PREFIX.length))
  if (!bytes || bytes.length === 0) {
    throw new TypeError(`A signing secret starting with ${WEBHOOK_SECRET_PREFIX} must continue with base64`)
  }
  return bytes
}

/**
 * The route part of a `webhook-id`: the request's path after the base path, with the run id as
 * it is (not percent-encoded): `run_1/stage-update`, `run_1/status`, `run_1/complete`, `runs`.
 * Throws a `TypeError` for a run route without a run id.
 *
 * @example
 * ```ts
 * import { webhookRoute } from 'pipeline-status-sdk/server'
 * webhookRoute('stageUpdate', 'run:1') // 'run:1/stage-update'
 * webhookRoute('createRun') // 'runs'
 * ```
 */
export function webhookRoute(route: RouteName, runId?: string): string {
  // The contract's own path builder, so a new route cannot be signed differently from how it is served.
  return decodeURIComponent(routePath(route, runId, '').slice(1))
}

/** The parts of a route-bound `webhook-id`; see {@link webhookMessageId}. */
export interface WebhookMessageIdParts {
  /** The HTTP method, e.g. `POST`; upper-cased. */
  method: string
  /** The path after the base path, see {@link webhookRoute}, e.g. `run_1/stage-update`. */
  route: string
  /**
   * What makes the message unique: the same for every attempt of one message (the client uses
   * the update's `Idempotency-Key`, or a random id per status read), different for any other
   * message. Must not be empty.
   */
  unique: string
}

/**
 * Builds the `webhook-id` of a request: `<METHOD> <route> <unique>`, e.g.
 * `POST run_1/stage-update 6f1c…`. The signature covers the id, so it binds the body to the
 * method, the run and the route; the server refuses a signed request whose id does not start
 * with its own method and route. Throws a `TypeError` for an empty `unique` or a `route` with
 * a space or a line break.
 *
 * @example
 * ```ts
 * import { webhookMessageId, webhookRoute } from 'pipeline-status-sdk/server'
 * webhookMessageId({ method: 'GET', route: webhookRoute('status', 'run_1'), unique: crypto.randomUUID() })
 * ```
 */
export function webhookMessageId(parts: WebhookMessageIdParts): string {
  if (parts.unique === '' || /[\r\n]/.test(parts.unique)) throw new TypeError('The unique part of a webhook-id must be a non-empty line')
  if (/[\s]/.test(parts.route) || parts.route === '') throw new TypeError('A webhook-id route must be non-empty and hold no whitespace')
  return `${webhookMessageIdPrefix(parts.method, parts.route)}${parts.unique}`
}

/** `<METHOD> <route> `: what a `webhook-id` for this request must start with. */
export function webhookMessageIdPrefix(method: string, route: string): string {
  return `${method.toUpperCase()} ${route} `
}

/** Options of {@link signWebhook}. */
export interface SignWebhookOptions {
  /**
   * The signing secret: `whsec_<base64>` (Standard Webhooks; the key is the decoded bytes) or a
   * plain string (the key is its UTF-8 bytes).
   */
  secret: string
  /** The message id (`webhook-id`), equal across retries of one message. */
  id: string
  /** Unix time in seconds (`webhook-timestamp`). */
  timestamp: number
  /** The exact bytes sent as the body; a string is encoded as UTF-8. */
  body: string | Uint8Array
}

/**
 * Signs one message and returns the `webhook-signature` value, `v1,<base64>`.
 *
 * @example
 * ```ts
 * import { signWebhook } from 'pipeline-status-sdk/server'
 * const signature = await signWebhook({ secret: 'whsec_…', id: 'msg_1', timestamp: 1761400991, body: '{"status":"COMPLETED"}' })
 * ```
 */
export async function signWebhook(options: SignWebhookOptions): Promise<string> {
  assertTimestamp(options.timestamp)
  const mac = await hmac(decodeWebhookSecret(options.secret), signedContent(options.id, options.timestamp, options.body))
  return `${VERSION},${toBase64(mac)}`
}

/** Options of {@link createWebhookSignatureHeaders}. */
export interface WebhookSignatureHeadersOptions {
  /** The signing secret, `whsec_<base64>` or a plain string. */
  secret: string
  /** The exact body that will be sent. */
  body: string | Uint8Array
  /**
   * The message id. Keep it across retries of one message; the server accepts a given id and
   * timestamp once, so sign every attempt again (a fresh timestamp) rather than resending headers.
   * @default a random UUID
   */
  id?: string | undefined
  /**
   * Unix time in seconds.
   * @default now
   */
  timestamp?: number | undefined
}

/** The three Standard Webhooks headers of a signed request. */
export interface WebhookSignatureHeaders {
  /** The message id; equal across the retries of one message. */
  'webhook-id': string
  /** Unix time in seconds when the message was signed. */
  'webhook-timestamp': string
  /** Space-separated `v1,<base64 HMAC-SHA256>` signatures. */
  'webhook-signature': string
}

/**
 * Signs a body and returns the `webhook-id`, `webhook-timestamp` and `webhook-signature`
 * headers to send with it.
 *
 * @example
 * ```ts
 * import { createWebhookSignatureHeaders } from 'pipeline-status-sdk/server'
 * const url = 'http://localhost:3000/api/pipeline/run_1/complete'
 * const body = JSON.stringify({ status: 'COMPLETED' })
 * const headers = await createWebhookSignatureHeaders({ secret: process.env.WEBHOOK_SIGNING_SECRET!, body, id: 'msg_1' })
 * await fetch(url, { method: 'POST', body, headers: { 'Content-Type': 'application/json', ...headers } })
 * ```
 */
export async function createWebhookSignatureHeaders(
  options: WebhookSignatureHeadersOptions,
): Promise<WebhookSignatureHeaders> {
  const id = options.id ?? crypto.randomUUID()
  const timestamp = options.timestamp ?? Math.floor(Date.now() / 1000)
  const signature = await signWebhook({ secret: options.secret, id, timestamp, body: options.body })
  return { 'webhook-id': id, 'webhook-timestamp': String(timestamp), 'webhook-signature': signature }
}

/** Options of {@link verifyWebhookSignature}. */
export interface VerifyWebhookSignatureOptions {
  /**
   * Accepted signing secrets; several during a rotation. A `whsec_<base64>` string is decoded to
   * its key bytes, any other string is used as its UTF-8 bytes.
   */
  secrets: string | readonly (string | Uint8Array)[]
  /** The request's headers; only the three `webhook-*` headers are read. */
  headers: Headers | WebhookSignatureHeaders | Readonly<Record<string, string | null | undefined>>
  /** The raw body exactly as received. */
  body: string | Uint8Array
  /**
   * How far the timestamp may be from `now`, in seconds, in either direction.
   * @default 300
   */
  toleranceSeconds?: number | undefined
  /**
   * The current time.
   * @default new Date()
   */
  now?: Date | undefined
}

/** Why a signature was refused. */
export type WebhookVerificationFailure =
  | 'missing_headers'
  | 'invalid_timestamp'
  | 'timestamp_too_old'
  | 'timestamp_too_new'
  | 'no_matching_signature'

/** The result of {@link verifyWebhookSignature}. */
export type WebhookVerification =
  | { valid: true; id: string; timestamp: number }
  | { valid: false; reason: WebhookVerificationFailure; detail: string }

/**
 * Verifies a Standard Webhooks signature: the headers are present, the timestamp is within the
 * tolerance, and one `v1` signature in the header matches one of the secrets (compared in
 * constant time). Replay protection (a message id seen before) is the caller's job, as it needs
 * state; the handlers keep a replay cache.
 *
 * @example
 * ```ts
 * import { verifyWebhookSignature } from 'pipeline-status-sdk/server'
 * // In a route of your own: the body as received, before any JSON parsing.
 * export async function POST(request: Request): Promise<Response> {
 *   const rawBody = await request.text()
 *   const result = await verifyWebhookSignature({ secrets: ['whsec_…'], headers: request.headers, body: rawBody })
 *   if (!result.valid) console.warn(result.detail)
 *   return new Response(null, { status: result.valid ? 204 : 401 })
 * }
 * ```
 */
export async function verifyWebhookSignature(options: VerifyWebhookSignatureOptions): Promise<WebhookVerification> {
  const read = (name: string): string | undefined => {
    const headers = options.headers
    const value = headers instanceof Headers ? headers.get(name) : (headers as Record<string, string | null | undefined>)[name]
    return value === null || value === undefined || value === '' ? undefined : value
  }
  const id = read(HEADERS.webhookId)
  const rawTimestamp = read(HEADERS.webhookTimestamp)
  const header = read(HEADERS.webhookSignature)
  if (id === undefined || rawTimestamp === undefined || header === undefined) {
    return fail('missing_headers', 'webhook-id, webhook-timestamp and webhook-signature are all required')
  }
  if (!/^\d{1,15}$/.test(rawTimestamp.trim())) {
    return fail('invalid_timestamp', 'webhook-timestamp must be Unix time in seconds')
  }
  const timestamp = Number(rawTimestamp.trim())
  const tolerance = options.toleranceSeconds ?? DEFAULT_WEBHOOK_TOLERANCE_SECONDS
  const now = Math.floor((options.now ?? new Date()).getTime() / 1000)
  if (timestamp < now - tolerance) return fail('timestamp_too_old', `webhook-timestamp is more than ${tolerance}s old`)
  if (timestamp > now + tolerance) return fail('timestamp_too_new', `webhook-timestamp is more than ${tolerance}s in the future`)

  const candidates = header
    .split(' ')
    .map((part) => part.split(','))
    .filter((parts): parts is [string, string] => parts.length === 2 && parts[0] === VERSION)
    .map(([, signature]) => fromBase64(signature))
    .filter((bytes): bytes is Uint8Array<ArrayBuffer> => bytes !== undefined)
  const content = signedContent(id, timestamp, options.body)
  const secrets = typeof options.secrets === 'string' ? [options.secrets] : options.secrets
  let matched = false
  for (const secret of secrets) {
    const expected = await hmac(typeof secret === 'string' ? decodeWebhookSecret(secret) : new Uint8Array(secret), content)
    // Every candidate is compared against every secret, so the time taken does not reveal which matched.
    for (const candidate of candidates) matched = timingSafeEqualBytes(expected, candidate) || matched
  }
  if (!matched) return fail('no_matching_signature', 'No v1 signature in webhook-signature matches')
  return { valid: true, id, timestamp }
}

/**
 * Compares two byte arrays in time that depends only on their lengths, not on where they differ.
 */
export function timingSafeEqualBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  let difference = 0
  for (let i = 0; i < a.length; i++) difference |= (a[i] ?? 0) ^ (b[i] ?? 0)
  return difference === 0
}

function fail(reason: WebhookVerificationFailure, detail: string): WebhookVerification {
  return { valid: false, reason, detail }
}

function assertTimestamp(timestamp: number): void {
  if (!Number.isSafeInteger(timestamp) || timestamp < 0) {
    throw new TypeError('A webhook timestamp must be a non-negative whole number of seconds')
  }
}

function signedContent(id: string, timestamp: number, body: string | Uint8Array): Uint8Array<ArrayBuffer> {
  const prefix = encoder.encode(`${id}.${timestamp}.`)
  const payload = typeof body === 'string' ? encoder.encode(body) : body
  const content = new Uint8Array(prefix.length + payload.length)
  content.set(prefix, 0)
  content.set(payload, prefix.length)
  return content
}

async function hmac(key: Uint8Array<ArrayBuffer>, content: Uint8Array<ArrayBuffer>): Promise<Uint8Array<ArrayBuffer>> {
  const cryptoKey = await crypto.subtle.importKey('raw', key, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign'])
  return new Uint8Array(await crypto.subtle.sign('HMAC', cryptoKey, content))
}

function toBase64(bytes: Uint8Array): string {
  let binary = ''
  for (const byte of bytes) binary += String.fromCharCode(byte)
  return btoa(binary)
}

function fromBase64(text: string): Uint8Array<ArrayBuffer> | undefined {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text)) return undefined
  try {
    const binary = atob(text)
    const bytes = new Uint8Array(binary.length)
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i)
    return bytes
  } catch {
    return undefined
  }
}
