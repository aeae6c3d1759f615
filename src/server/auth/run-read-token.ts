/**
 * Run read tokens: short-lived bearer tokens that let a browser read ONE run, or every run
 * carrying ONE tag, signed with HMAC-SHA256 through Web Crypto (`crypto.subtle`), so they work
 * on Node, edge runtimes and Cloudflare Workers alike.
 *
 * Run token: `psrt1.<expires>.<signature>`, where `expires` is Unix time in seconds (written
 * without leading zeros: a token has exactly one spelling, any other is malformed) and
 * `signature` the base64url HMAC-SHA256 of `psrt1\n<expires>\n<runId>` under a key derived
 * from the read-token secret (HMAC-SHA256 of the secret over a fixed label). The run id is not
 * in the token: it is what the request's path names, so a token for run A can never read run B.
 *
 * Tag token: `psrt1.tag.<tag>.<expires>.<signature>`, the tag as unpadded base64url of its UTF-8
 * (readable by whoever holds the token: a tag is a scope, not a secret), the signature over
 * `psrt1 tag\n<expires>\n<tag>`. The first line differs from a run token's, so no run id and no
 * tag can ever sign the same message. The handlers check the tag against the run's STORED tags on
 * every read: removing the tag from a run takes the run out of the token's reach.
 */

import { timingSafeEqual } from '../../internal/timing-safe-equal.js'
import { isPositive } from '../../internal/is-positive.js'
import { describeReceived } from '../../internal/received-value.js'
import { tagProblem } from '../../contract/run-labels.js'

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
/** A tag token: the tag (base64url, checked canonical once decoded), then as above. */
const TAG_TOKEN_PATTERN = /^psrt1\.tag\.([A-Za-z0-9_-]{2,512})\.([1-9]\d{0,11})\.([A-Za-z0-9_-]{42}[AEIMQUYcgkosw048])$/
/** The first line of a tag token's signed message (a run token's is {@link PREFIX}). */
const TAG_MESSAGE_PREFIX = 'psrt1 tag'

/** One hour, the default of {@link CreateRunReadTokenOptions.expiresInSeconds}. */
export const DEFAULT_READ_TOKEN_EXPIRES_IN_SECONDS = 60 * 60

/** The shortest read-token secret accepted, in characters. */
export const MIN_READ_TOKEN_SECRET_LENGTH = 32

/**
 * Options of {@link createRunReadToken}: `runId` for a token that reads one run, or `tag` for
 * one that reads (and lists) every run carrying the tag; never both.
 */
export interface CreateRunReadTokenOptions {
  /** The run the token may read. Give this or `tag`, not both. */
  runId?: string | undefined
  /**
   * The tag (1–128 UTF-16 code units, as `POST /runs` counts them) whose runs the token may read: `GET /status` and `GET /events` of
   * any run that carries it when the request is made, and lists and counts scoped to it. Give
   * this or `runId`, not both. The tag is readable from the token by its holder.
   */
  tag?: string | undefined
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
  /**
   * The run's stored tags, for a tag token: it is valid only when they include its tag. Without
   * them a tag token is `invalid`, so a caller that checks run tokens only never admits one.
   * @default none
   */
  tags?: readonly string[] | undefined
  /** The accepted read-token secrets; a list accepts each of them, for rotation. */
  secret: string | readonly string[]
  /**
   * The current time.
   * @default new Date()
   */
  now?: Date | undefined
}

/**
 * The outcome of {@link verifyRunReadToken}: valid with its expiry (and, for a tag token, its
 * `tag`), or why not. `invalid` covers a token for another run, a tag the run does not carry,
 * another secret, or a forged one: they cannot be told apart.
 */
export type RunReadTokenVerification =
  | { valid: true; expiresAt: Date; tag?: string }
  | { valid: false; reason: 'malformed' | 'invalid' | 'expired'; expiresAt?: Date }

/**
 * Creates a token that lets its holder read `runId` (`GET /status` and `GET /events`), or every
 * run carrying `tag` (those reads of each such run, and `GET /runs`, `GET /runs/counts` scoped to
 * the tag), until it expires. Mint it where the user's right to see the run or the tag is
 * checked (a server component, an API route behind your login), and hand it to the browser,
 * which sends it as `Authorization: Bearer <token>`. A page that follows many runs takes one
 * tag token rather than a run token each (docs/security.md).
 *
 * @throws TypeError when the secret is shorter than 32 characters, both or neither of `runId`
 * and `tag` are given, the run id is empty, the tag breaks the tag rule of `POST /runs` (1–128
 * UTF-16 code units of storable text), or
 * `expiresInSeconds` is not a positive whole number of seconds.
 *
 * @example
 * ```ts
 * import { createRunReadToken } from 'pipeline-status-sdk/server'
 * const token = await createRunReadToken({ runId: 'run_1', secret: process.env.READ_TOKEN_SECRET!, expiresInSeconds: 600 })
 * const teamToken = await createRunReadToken({ tag: 'team:42', secret: process.env.READ_TOKEN_SECRET! })
 * ```
 */
export async function createRunReadToken(options: CreateRunReadTokenOptions): Promise<string> {
  const { runId, tag, secret } = options
  const expiresInSeconds = options.expiresInSeconds ?? DEFAULT_READ_TOKEN_EXPIRES_IN_SECONDS
  if (!isPositive(expiresInSeconds, { integer: true })) {
    throw new TypeError(`expiresInSeconds must be a positive whole number of seconds, got ${describeReceived(expiresInSeconds)}`)
  }
  if (runId !== undefined && tag !== undefined) {
    throw new TypeError('A read token is for one run (runId) or one tag (tag), never both; create two tokens')
  }
  if (runId === undefined && tag === undefined) throw new TypeError('A read token needs runId (one run) or tag (the runs carrying it)')
  if (runId === '') throw new TypeError('runId must not be empty')
  const tagRefused = tag === undefined ? undefined : tagProblem(tag)
  if (tagRefused) throw new TypeError(`tag ${tagRefused}`)
  assertReadTokenSecret(secret)
  const nowSeconds = Math.floor((options.now ?? new Date()).getTime() / 1000)
  const expires = nowSeconds + expiresInSeconds
  if (tag !== undefined) return `${PREFIX}.tag.${base64url(encoder.encode(tag))}.${expires}.${await sign(secret, TAG_MESSAGE_PREFIX, tag, expires)}`
  return `${PREFIX}.${expires}.${await sign(secret, PREFIX, runId as string, expires)}`
}

/**
 * Checks a read token against the run a request asks for. A run token is valid for its run; a
 * tag token only when `tags` (the run's stored tags) holds its tag. Never throws for a bad
 * token; the signature is compared in constant time.
 *
 * @example
 * ```ts
 * import { verifyRunReadToken } from 'pipeline-status-sdk/server'
 * const token = new Headers({ authorization: 'Bearer psrt1.…' }).get('authorization')?.replace(/^Bearer /, '') ?? ''
 * const result = await verifyRunReadToken(token, { runId: 'run_1', tags: ['team:42'], secret: process.env.READ_TOKEN_SECRET! })
 * if (!result.valid) console.warn(result.reason) // 'malformed' | 'invalid' | 'expired'
 * ```
 */
export async function verifyRunReadToken(token: string, options: VerifyRunReadTokenOptions): Promise<RunReadTokenVerification> {
  const { kind: _kind, ...checked } = await checkReadToken(token, { runId: options.runId, secret: options.secret, now: options.now })
  if (!checked.valid || checked.tag === undefined) return checked
  return options.tags?.includes(checked.tag) === true ? checked : { valid: false, reason: 'invalid' }
}

/**
 * A read token's signature and expiry, without the run's tags: a run token is checked against
 * `runId` (`invalid` without one), a tag token on its own, and the valid result names its `tag`
 * for the caller to check against the run's stored tags (or to scope a list with). `kind` says
 * which form the token has, when it has one. Internal: the handlers' two-step check.
 */
export async function checkReadToken(
  token: string,
  options: { runId?: string | undefined; secret: string | readonly string[]; now?: Date | undefined },
): Promise<RunReadTokenVerification & { kind?: 'run' | 'tag' }> {
  const parsed = parseReadToken(token)
  if (!parsed) return { valid: false, reason: 'malformed' }
  const { kind, tag, expires, signature } = parsed
  const expiresAt = new Date(expires * 1000)
  const secrets = typeof options.secret === 'string' ? [options.secret] : options.secret
  const [messagePrefix, subject] = tag === undefined ? [PREFIX, options.runId] : [TAG_MESSAGE_PREFIX, tag]
  let signed = false
  if (subject !== undefined) {
    for (const secret of secrets) {
      // Every secret is tried so the time taken does not tell which one matched.
      signed = timingSafeEqual(signature, await sign(secret, messagePrefix, subject, expires)) || signed
    }
  }
  if (!signed) return { valid: false, reason: 'invalid', kind }
  // Expiry only after the signature: an expired token says nothing true unless it was ours.
  if (expiresAt.getTime() <= (options.now ?? new Date()).getTime()) return { valid: false, reason: 'expired', expiresAt, kind }
  return tag === undefined ? { valid: true, expiresAt, kind } : { valid: true, expiresAt, tag, kind }
}

interface ParsedReadToken {
  kind: 'run' | 'tag'
  tag?: string
  expires: number
  signature: string
}

/** The token's parts when it has the one canonical spelling of either form; `undefined` otherwise. */
function parseReadToken(token: string): ParsedReadToken | undefined {
  const run = TOKEN_PATTERN.exec(token)
  if (run) return { kind: 'run', expires: Number(run[1]), signature: run[2] as string }
  const tagged = TAG_TOKEN_PATTERN.exec(token)
  if (!tagged) return undefined
  const encoded = tagged[1] as string
  const tag = decodeTag(encoded)
  // One spelling only: the tag must re-encode to the very characters sent.
  if (tag === undefined || tagProblem(tag) !== undefined || base64url(encoder.encode(tag)) !== encoded) return undefined
  return { kind: 'tag', tag, expires: Number(tagged[2]), signature: tagged[3] as string }
}

const strictDecoder = new TextDecoder('utf-8', { fatal: true })

function decodeTag(encoded: string): string | undefined {
  try {
    const binary = atob(encoded.replace(/-/g, '+').replace(/_/g, '/'))
    return strictDecoder.decode(Uint8Array.from(binary, (char) => char.charCodeAt(0)))
  } catch {
    return undefined
  }
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

/** The signature of `<first line>\n<expires>\n<run id or tag>`; the first line says which form. */
async function sign(secret: string, messagePrefix: string, subject: string, expires: number): Promise<string> {
  const mac = await crypto.subtle.sign('HMAC', await keyFor(secret), encoder.encode(`${messagePrefix}\n${expires}\n${subject}`))
  return base64url(new Uint8Array(mac))
}

function base64url(bytes: Uint8Array): string {
  let binary = ''
  for (const byte of bytes) binary += String.fromCharCode(byte)
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')
}
