/**
 * Header names of the contract. HTTP header names are case-insensitive; these are the canonical spellings.
 *
 * @example
 * ```ts
 * import { HEADERS } from 'pipeline-status-sdk'
 * const headers = { [HEADERS.webhookSecret]: process.env.WEBHOOK_SECRET ?? '', 'Content-Type': 'application/json' }
 * ```
 */
export const HEADERS = Object.freeze({
  /** The shared secret, compared in constant time by the server. */
  webhookSecret: 'X-Webhook-Secret',
  /** One key per logical update, equal across its retries. */
  idempotencyKey: 'Idempotency-Key',
  /** Standard Webhooks: unique message id. */
  webhookId: 'webhook-id',
  /** Standard Webhooks: Unix time in seconds when the message was signed. */
  webhookTimestamp: 'webhook-timestamp',
  /** Standard Webhooks: space-separated `v1,<base64 HMAC-SHA256>` signatures. */
  webhookSignature: 'webhook-signature',
  /** Seconds to wait before retrying, sent with 429 and 503. */
  retryAfter: 'Retry-After',
  /**
   * Sent (`1`) by the dashboard page on its reads: with the handlers' `dashboard` option on, a read
   * authorized by the app asks `authorize` with `action: 'dashboard'` instead of `'list'`/`'read'`.
   */
  dashboard: 'X-Pipeline-Status-Dashboard',
})

/** Media type of error bodies (RFC 9457). */
export const PROBLEM_CONTENT_TYPE = 'application/problem+json'

/** Environment variable the runner client reads for the web app's base URL. */
export const ENV_WEBHOOK_URL = 'FRONTEND_WEBHOOK_URL'
/** Environment variable both sides read for the shared secret (comma-separated for rotation on the server). */
export const ENV_WEBHOOK_SECRET = 'WEBHOOK_SECRET'
