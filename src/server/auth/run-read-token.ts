/**
 * Run read tokens: short-lived bearer tokens that let a browser read ONE run, signed with
 * HMAC-SHA256 through Web Crypto (`crypto.subtle`), so they work on Node, edge runtimes and
 * Cloudflare Workers alike.
 *
 * Format: `psrt1.<expires>.<signature>`, where `expires` is Unix time in seconds (written
 * without leading zeros: a token has exactly one spelling, any other is malformed) and
 * `signature` the base64url HMAC-SHA256 of `psrt1\n<expires>\n<runId>` under a key derived
 * from the read-token secret (HMAC-SHA256 of the secret over a fixed label). The run id is not
 * in the token: it is what the request's path names, so a token for run A can never read run B.
 */

import { timingSafeEqual } from '../../internal/timing-safe-equal.js'
import { isPositive } from '../../internal/is-positive.js'
import { describeReceived } from '../../internal/received-value.js'

const PREFIX = 'psrt1'
/** Domain separation: the HMAC key is never the configured secret itself. */
const KEY_LABEL = 'pipeline-status-sdk run read token key v1'
/**
 * The one canonical form: the expiry as `String(seconds)` (no leading zero, no sign), the
 * signature as unpadded base64url whose last character carries no stray bits (32 bytes end in
 * one of `AEIMQUYcgkosw048`). Any other spelling of the same values is malformed, so a token is
 * a single string that logs, caches and revocation lists can compare.
 */
const TOKEN_PATTERN = /^psrt1\.([1-9]\d{0,11})\.([A-Za-z0-9_-]{42}[AEIMQUYcgkosw048])$/

/** One hour, the default of {@link CreateRunReadTokenOptions.expiresInSeconds}. */
export const DEFAULT_READ_TOKEN_EXPIRES_IN_SECONDS = 60 * 60

/** The shortest read-token secret accepted, in characters. */
export const MIN_READ_TOKEN_SECRET_LENGTH = 32

/** Options of {@link createRunReadToken}. */
export interface CreateRunReadTokenOptions {
  /** The run the token may read. */
  runId: string
  /**
   * The read-token secret (at least {@link MIN_READ_TOKEN_SECRET_LENGTH} characters): the one
   * the handlers get as `readTokens.secret`, never the webhook secret (see docs/security.md).
   * With a rotation list on the server, sign with the newest one.
   */
  secret: string
  /**
   * How long the token is valid, in seconds.
   * @default 3_600 (one hour)
   */
  expiresInSeconds?: number | undefined
  /**
   * The current time, for tests.
   * @default new Date()
   */
  now?: Date | undefined
}

/** Options of {@link verifyRunReadToken}. */
export interface VerifyRunReadTokenOptions {
  /** The run the request asks for (from its path). */
  runId: string
  /** The accepted read-token secrets; a list accepts each of them, for rotation. */
  secret: string | readonly string[]
  /**
   * The current time.
   * @default new Date()
   */
  now?: Date | undefined
}

/**
 * The outcome of {@link verifyRunReadToken}: valid with its expiry, or why not.
 * `invalid` covers a token for another run, another secret, or a forged one: they cannot be told apart.
 */
export type RunReadTokenVerification =
  | { valid: true; expiresAt: Date }
  | { valid: false; reason: 'malformed' | 'invalid' | 'expired'; expiresAt?: Date }

/**
 * Creates a token that lets its holder read `runId` (`GET /status`, and the live stream when it
 * comes) until it expires. Mint it where the user's right to see the run is checked (a server
 * component, an API route behind your login), and hand it to the browser, which sends it as
 * `Authorization: Bearer <token>`.
 *
 * @throws TypeError when the secret is shorter than 32 characters, the run id is empty or
 * `expiresInSeconds` is not a positive whole number of seconds.
 *
 * @example
 * ```ts
 * import { createRunReadToken } from 'pipeline-status-sdk/server'
 * const token = await createRunReadToken({ runId: 'run_1', secret: process.env.READ_TOKEN_SECRET!, expiresInSeconds: 600 })
 * ```
 */
export async function createRunReadToken(options: CreateRunReadTokenOptions): Promise<string> {
  const { runId, secret } = options
  const expiresInSeconds = options.expiresInSeconds ?? DEFAULT_READ_TOKEN_EXPIRES_IN_SECONDS
  if (!isPositive(expiresInSeconds, { integer: true })) {
    throw new TypeError(`expiresInSeconds must be a positive whole number of seconds, got ${describeReceived(expiresInSeconds)}`)
  }
  if (runId === '') throw new TypeError('runId must not be empty')
  assertReadTokenSecret(secret)
  const nowSeconds = Math.floor((options.now ?? new Date()).getTime() / 1000)
  const expires = nowSeconds + expiresInSeconds
  return `${PREFIX}.${expires}.${await sign(secret, runId, expires)}`
}

/**
 * Checks a read token against the run a request asks for. Never throws for a bad token; the
 * signature is compared in constant time.
 *
 * @example
 * ```ts
 * import { verifyRunReadToken } from 'pipeline-status-sdk/server'
 * const token = new Headers({ authorization: 'Bearer psrt1.…' }).get('authorization')?.replace(/^Bearer /, '') ?? ''
 * const result = await verifyRunReadToken(token, { runId: 'run_1', secret: process.env.READ_TOKEN_SECRET! })
 * if (!result.valid) console.warn(result.reason) // 'malformed' | 'invalid' | 'expired'
 * ```
 */
export async function verifyRunReadToken(token: string, options: VerifyRunReadTokenOptions): Promise<RunReadTokenVerification> {
  const match = TOKEN_PATTERN.exec(token)
  if (!match) return { valid: false, reason: 'malformed' }
  const expires = Number(match[1])
  const given = match[2] as string
  const expiresAt = new Date(expires * 1000)
  const secrets = typeof options.secret === 'string' ? [options.secret] : options.secret
  let signed = false
  for (const secret of secrets) {
    // Every secret is tried so the time taken does not tell which one matched.
    signed = timingSafeEqual(given, await sign(secret, options.runId, expires)) || signed
  }
  if (!signed) return { valid: false, reason: 'invalid' }
  // Expiry only after the signature: an expired token says nothing true unless it was ours.
  if (expiresAt.getTime() <= (options.now ?? new Date()).getTime()) return { valid: false, reason: 'expired', expiresAt }
  return { valid: true, expiresAt }
}

/** Whether a bearer credential is shaped like a run read token (so the handlers judge it). */
export function looksLikeRunReadToken(token: string): boolean {
  return token.startsWith(`${PREFIX}.`)
}

/** @throws TypeError for a secret too short to sign with. */
export function assertReadTokenSecret(secret: string): void {
  if (typeof secret !== 'string' || secret.length < MIN_READ_TOKEN_SECRET_LENGTH) {
    throw new TypeError(`A read-token secret must be at least ${MIN_READ_TOKEN_SECRET_LENGTH} characters`)
  }
}

const encoder = new TextEncoder()
const keys = new Map<string, Promise<CryptoKey>>()

function keyFor(secret: string): Promise<CryptoKey> {
  let key = keys.get(secret)
  if (!key) {
    key = deriveKey(secret)
    // A handful of secrets per process (rotation); bound it anyway.
    if (keys.size >= 16) keys.clear()
    keys.set(secret, key)
  }
  return key
}

async function deriveKey(secret: string): Promise<CryptoKey> {
  const outer = await crypto.subtle.importKey('raw', encoder.encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign'])
  const derived = await crypto.subtle.sign('HMAC', outer, encoder.encode(KEY_LABEL))
  return crypto.subtle.importKey('raw', derived, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign'])
}

async function sign(secret: string, runId: string, expires: number): Promise<string> {
  const mac = await crypto.subtle.sign('HMAC', await keyFor(secret), encoder.encode(`${PREFIX}\n${expires}\n${runId}`))
  return base64url(new Uint8Array(mac))
}

function base64url(bytes: Uint8Array): string {
  let binary = ''
  for (const byte of bytes) binary += String.fromCharCode(byte)
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')
}
