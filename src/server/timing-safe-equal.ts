import { timingSafeEqualBytes } from '../core/webhook-signature.js'

const encoder = new TextEncoder()
let processKey: Promise<CryptoKey> | undefined

/**
 * Compares a received secret with an expected one in constant time, on Web Crypto alone (so it
 * runs on Node, Bun, Deno and edge runtimes). Both sides are first reduced to an HMAC-SHA256
 * under a random per-process key: the compared values then always have the same length and
 * reveal nothing about the secret, not even its length.
 *
 * @example
 * ```ts
 * import { timingSafeEqual } from 'pipeline-status-sdk/server'
 * await timingSafeEqual(request.headers.get('X-Webhook-Secret') ?? '', process.env.WEBHOOK_SECRET!)
 * ```
 */
export async function timingSafeEqual(received: string, expected: string): Promise<boolean> {
  // Created on first use: some edge runtimes forbid generating keys at module scope.
  processKey ??= crypto.subtle.generateKey({ name: 'HMAC', hash: 'SHA-256' }, false, ['sign'])
  const key = await processKey
  const [a, b] = await Promise.all([
    crypto.subtle.sign('HMAC', key, encoder.encode(received)),
    crypto.subtle.sign('HMAC', key, encoder.encode(expected)),
  ])
  return timingSafeEqualBytes(new Uint8Array(a), new Uint8Array(b))
}
