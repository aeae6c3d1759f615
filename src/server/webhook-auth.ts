import { ENV_WEBHOOK_SECRET, HEADERS } from '../contract/headers.js'
import {
  DEFAULT_WEBHOOK_TOLERANCE_SECONDS,
  decodeWebhookSecret,
  verifyWebhookSignature,
} from '../core/webhook-signature.js'
import { HandlerConfigurationError } from './configuration-error.js'
import { HttpProblemError } from './problem-response.js'
import { createMemoryReplayStore, type ReplayStore } from './replay-store.js'
import { timingSafeEqual } from './timing-safe-equal.js'

/**
 * Standard Webhooks verification of the runner's requests.
 *
 * @example
 * ```ts
 * import { createPipelineStatusHandlers } from 'pipeline-status-sdk/server'
 * const handlers = createPipelineStatusHandlers({
 *   prisma,
 *   signing: { secret: process.env.WEBHOOK_SIGNING_SECRET!, required: true, toleranceSeconds: 300 },
 * })
 * ```
 */
export interface WebhookSigningOptions {
  /**
   * Accepted signing secrets, `whsec_<base64>` (Standard Webhooks) or plain strings; several
   * during a rotation.
   */
  secret: string | readonly string[]
  /**
   * How far `webhook-timestamp` may be from the server's clock, in seconds, either way.
   * @default 300
   */
  toleranceSeconds?: number | undefined
  /**
   * Whether writes must be signed. Without it, a write is accepted with a matching
   * `X-Webhook-Secret` or a valid signature; a signature that is present is always checked.
   * Writes must be signed anyway when no plain `secret` is configured.
   * @default false
   */
  required?: boolean | undefined
  /**
   * Where accepted message ids are remembered to refuse replays. The key is the id with its
   * timestamp, so a retry that is signed again (same id, fresh timestamp) is accepted, while the
   * same signed request sent twice is not. Keys are forgotten when the answer was a 5xx, so the
   * sender may retry then.
   * @default an in-memory store per handlers instance
   */
  replayStore?: ReplayStore | undefined
}

/** A verified signature; `release` lets the message be delivered again (after a 5xx). */
export interface VerifiedMessage {
  release(): Promise<void>
}

/** How the handlers authenticate requests; built once from the options. */
export interface WebhookAuthenticator {
  /** Whether writes need a signature (configured as required, or no plain secret exists). */
  readonly signatureRequired: boolean
  /** Whether `X-Webhook-Secret` matches one configured secret, compared in constant time. */
  secretMatches(request: Request): Promise<boolean>
  /** Whether the request carries any Standard Webhooks header and signing is configured. */
  isSigned(request: Request): boolean
  /** Verifies the signature over the raw body and claims the message id; throws `invalid_signature`. */
  verify(request: Request, body: Uint8Array): Promise<VerifiedMessage>
}

/**
 * The plain secrets to accept: `secret` as given, or the comma-separated `WEBHOOK_SECRET`
 * environment variable when `secret` is not given. Empty entries are dropped.
 */
export function resolveWebhookSecrets(secret: string | readonly string[] | undefined): string[] {
  if (secret === undefined) {
    const env = readEnv(ENV_WEBHOOK_SECRET)
    return env === undefined ? [] : env.split(',').map((part) => part.trim()).filter((part) => part !== '')
  }
  const list: readonly unknown[] = typeof secret === 'string' ? [secret] : secret
  return list.filter((entry): entry is string => typeof entry === 'string' && entry !== '')
}

/** Builds the authenticator; throws {@link HandlerConfigurationError} when no request could ever be authenticated. */
export function createWebhookAuthenticator(options: {
  secret: string | readonly string[] | undefined
  signing: WebhookSigningOptions | undefined
  clock: () => Date
}): WebhookAuthenticator {
  const secrets = resolveWebhookSecrets(options.secret)
  const signing = options.signing
  const signingKeys = signing ? decodeSigningSecrets(signing.secret) : []
  if (secrets.length === 0 && signingKeys.length === 0) {
    throw new HandlerConfigurationError(
      `No webhook secret configured: pass \`secret\` (or \`signing.secret\`) or set ${ENV_WEBHOOK_SECRET}. ` +
        'Writes are never accepted without one.',
    )
  }
  const tolerance = signing?.toleranceSeconds ?? DEFAULT_WEBHOOK_TOLERANCE_SECONDS
  if (!Number.isFinite(tolerance) || tolerance <= 0) {
    throw new HandlerConfigurationError('signing.toleranceSeconds must be a positive number of seconds')
  }
  const replayStore = signing?.replayStore ?? createMemoryReplayStore({ now: () => options.clock().getTime() })

  return {
    signatureRequired: signingKeys.length > 0 && (signing?.required === true || secrets.length === 0),

    async secretMatches(request) {
      const received = request.headers.get(HEADERS.webhookSecret)
      if (received === null || secrets.length === 0) return false
      let matched = false
      // Every secret is compared, so the time taken does not reveal which one matched.
      for (const secret of secrets) matched = (await timingSafeEqual(received, secret)) || matched
      return matched
    },

    isSigned(request) {
      if (signingKeys.length === 0) return false
      return [HEADERS.webhookId, HEADERS.webhookTimestamp, HEADERS.webhookSignature].some(
        (name) => request.headers.get(name) !== null,
      )
    },

    async verify(request, body) {
      const result = await verifyWebhookSignature({
        secrets: signingKeys,
        headers: request.headers,
        body,
        toleranceSeconds: tolerance,
        now: options.clock(),
      })
      if (!result.valid) throw new HttpProblemError('invalid_signature', { detail: result.detail })
      const key = `${result.id}.${result.timestamp}`
      // Past timestamp + tolerance the timestamp check refuses the message, so the key can go.
      const claimed = await replayStore.claim(key, (result.timestamp + tolerance + 1) * 1000)
      if (!claimed) {
        throw new HttpProblemError('invalid_signature', {
          detail: 'This message (webhook-id at this webhook-timestamp) was already received; sign each retry again',
        })
      }
      return { release: async () => void (await replayStore.release?.(key)) }
    },
  }
}

function decodeSigningSecrets(secret: string | readonly string[]): Uint8Array[] {
  const list: readonly unknown[] = typeof secret === 'string' ? [secret] : secret
  const keys = list.filter((entry): entry is string => typeof entry === 'string' && entry !== '')
  if (keys.length === 0) throw new HandlerConfigurationError('signing.secret needs at least one non-empty secret')
  return keys.map((entry, index) => {
    try {
      return decodeWebhookSecret(entry)
    } catch (error) {
      throw new HandlerConfigurationError(`signing.secret[${index}] is invalid: ${(error as Error).message}`)
    }
  })
}

function readEnv(name: string): string | undefined {
  // Edge runtimes may have no `process`; there the secret must be passed explicitly.
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env
  return env?.[name]
}
