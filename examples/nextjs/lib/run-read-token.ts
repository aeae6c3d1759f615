import 'server-only'
import { createHmac } from 'node:crypto'
import { createRunReadToken } from 'pipeline-status-sdk/server'

/**
 * Read access for the browser, without ever sending it the webhook secret.
 *
 * The status route refuses reads that lack the webhook secret. The handlers are configured with
 * `readTokens: { secret }` (lib/pipeline-routes.ts), so they accept the package's run read
 * tokens (`createRunReadToken` from `pipeline-status-sdk/server`): valid for ONE run, sent as
 * `Authorization: Bearer <token>`. The `/runs/[runId]` page (a server component, so the key
 * never leaves the server) mints one for the run it shows. Anyone who can open the page can read
 * that run, and nothing else, for {@link TOKEN_LIFETIME_SECONDS}.
 *
 * How to adapt it: the demo has no users, so the page itself is the gate. A real app puts its
 * own login check in the page (redirect without a session, `notFound()` unless the user owns the
 * run) before minting; or drops tokens and checks its session cookie and run ownership in the
 * handlers' `authorize({ request, runId })`. Same-origin `fetch` sends cookies, so that works.
 */

/** How long a page may read with the token it got, in seconds (12 hours). */
export const TOKEN_LIFETIME_SECONDS = 12 * 60 * 60

/**
 * The read-token secret: READ_TOKEN_SECRET, or else (so the demo runs with one variable) a key
 * derived one-way from the first WEBHOOK_SECRET. The package refuses the webhook secret itself:
 * a read token must be worth nothing for writes. Rotating WEBHOOK_SECRET then also ends the open
 * pages' tokens; they show a message asking for a reload. `undefined` while neither is set
 * (`next build`).
 */
export function readTokenSecret(): string | undefined {
  const configured = process.env['READ_TOKEN_SECRET']
  if (configured) return configured
  // The first secret of a comma-separated rotation list is the one runners are moving to.
  const webhookSecret = process.env['WEBHOOK_SECRET']?.split(',')[0]?.trim()
  if (!webhookSecret) return undefined
  return createHmac('sha256', webhookSecret).update('pipeline-status-sdk example: run read tokens').digest('base64url')
}

/** A token that lets its holder read `runId`'s status until it expires. */
export async function mintRunReadToken(runId: string): Promise<string> {
  const secret = readTokenSecret()
  if (!secret) throw new Error('Set WEBHOOK_SECRET (or READ_TOKEN_SECRET) to sign read tokens')
  return createRunReadToken({ runId, secret, expiresInSeconds: TOKEN_LIFETIME_SECONDS })
}
