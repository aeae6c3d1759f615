import 'server-only'
import { createHmac, timingSafeEqual } from 'node:crypto'

/**
 * Read access for the browser, without ever sending it the webhook secret.
 *
 * The status route refuses reads that lack the webhook secret unless the handlers' `authorize`
 * hook allows them. This app's hook accepts a short-lived token that is valid for ONE run: the
 * `/runs/[runId]` page (a server component, so the key never leaves the server) mints it for the
 * run it shows, and the polling component sends it as `Authorization: Bearer <token>`. Anyone
 * who can open the page can read that run, and nothing else, for {@link TOKEN_LIFETIME_SECONDS}.
 *
 * How to adapt it: the demo has no users, so the page itself is the gate. A real app puts its
 * own login check in the page (redirect without a session, `notFound()` unless the user owns the
 * run) before minting; or drops tokens and checks its session cookie and run ownership directly
 * in `authorize({ request, runId })`. Same-origin `fetch` sends cookies, so that works unchanged.
 *
 * The key is READ_TOKEN_SECRET, or else derived one-way from WEBHOOK_SECRET (a token reveals
 * nothing about it). Rotating WEBHOOK_SECRET then also ends the open pages' tokens; they show a
 * message asking for a reload.
 */

/** How long a page may poll with the token it got, in seconds (12 hours). */
export const TOKEN_LIFETIME_SECONDS = 12 * 60 * 60

const VERSION = 'v1'

function signingKey(): Buffer {
  const configured = process.env['READ_TOKEN_SECRET']
  if (configured) return Buffer.from(configured)
  // The first secret of a comma-separated rotation list is the one runners are moving to.
  const webhookSecret = process.env['WEBHOOK_SECRET']?.split(',')[0]?.trim()
  if (!webhookSecret) throw new Error('Set WEBHOOK_SECRET (or READ_TOKEN_SECRET) to sign read tokens')
  return createHmac('sha256', webhookSecret).update('pipeline-status-sdk example: run read tokens').digest()
}

function signature(runId: string, expires: number): string {
  return createHmac('sha256', signingKey()).update(`${VERSION}\n${expires}\n${runId}`).digest('base64url')
}

/** A token that lets its holder read `runId`'s status until it expires. */
export function mintRunReadToken(runId: string, now: Date = new Date()): string {
  const expires = Math.floor(now.getTime() / 1000) + TOKEN_LIFETIME_SECONDS
  return `${VERSION}.${expires}.${signature(runId, expires)}`
}

/** Whether `token` was minted for `runId` and has not expired. */
export function verifyRunReadToken(token: string, runId: string, now: Date = new Date()): boolean {
  const [version, expiresText, given] = token.split('.')
  if (version !== VERSION || !expiresText || !given || !/^\d+$/.test(expiresText)) return false
  const expires = Number(expiresText)
  if (expires * 1000 <= now.getTime()) return false
  const expected = Buffer.from(signature(runId, expires))
  const actual = Buffer.from(given)
  return actual.length === expected.length && timingSafeEqual(actual, expected)
}

/** The handlers' `authorize` hook: a request may read `runId` when it carries that run's token. */
export function authorizeRunRead({ request, runId, action }: { request: Request; runId: string; action: string }): boolean {
  // The token grants reads only; refuse whatever else a later release may ask about.
  if (action !== 'read') return false
  const header = request.headers.get('authorization') ?? ''
  const match = /^Bearer ([\w.-]+)$/.exec(header)
  return match?.[1] !== undefined && verifyRunReadToken(match[1], runId)
}
