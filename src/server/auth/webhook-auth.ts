import { ENV_WEBHOOK_SECRET, HEADERS } from '../../contract/headers.js'
import { parseSecretList } from '../../contract/secrets.js'
import {
  DEFAULT_WEBHOOK_TOLERANCE_SECONDS,
  decodeWebhookSecret,
  verifyWebhookSignature,
  webhookMessageIdPrefix,
} from '../../signing/webhook-signature.js'
import { ServerConfigurationError } from '../configuration-error.js'
import { HttpProblemError } from '../http/problem-response.js'
import { createMemoryReplayStore, type ReplayStore } from '../storage/replay-store.js'
import { timingSafeEqual } from '../../internal/timing-safe-equal.js'
import { isPositive } from '../../internal/is-positive.js'
import { describeReceived } from '../../internal/received-value.js'

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
   * Where accepted message ids are remembered, with a fingerprint of their body, to tell a
   * redelivery (same `webhook-id`, same body: processed again, so it answers like any duplicate)
   * from a replayed id with another body (refused). Ids are kept until their timestamp leaves
   * the tolerance, after which the timestamp check refuses them anyway. With several web
   * instances, share one store between them: {@link createPostgresReplayStore}.
   * @default an in-memory store per handlers instance
   */
  replayStore?: ReplayStore | undefined
}

/** How the handlers authenticate requests; built once from the options. */
export interface WebhookAuthenticator {
  /** Whether writes need a signature (configured as required, or no plain secret exists). */
  readonly signatureRequired: boolean
  /** Whether any `X-Webhook-Secret` is accepted at all (false on a signing-only server). */
  readonly plainSecrets: boolean
  /** Whether `X-Webhook-Secret` matches one configured secret, compared in constant time. */
  secretMatches(request: Request): Promise<boolean>
  /** Whether the request carries any Standard Webhooks header and signing is configured. */
  isSigned(request: Request): boolean
  /**
   * Verifies the signature over the raw body, that the `webhook-id` names this request's method
   * and `route` (see `webhookMessageId`), and claims the id in the replay store; throws
   * `invalid_signature`.
   */
  verify(request: Request, body: Uint8Array, route: string): Promise<void>
}

/**
 * The plain secrets to accept, read the one way the handlers, the MSW mock and the mock's CLI
 * all read them: a string is a comma-separated list (like `WEBHOOK_SECRET`, so
 * `secret: process.env.WEBHOOK_SECRET` and the default agree), each entry trimmed; an array is
 * taken entry by entry (for a secret that holds a comma); `undefined` reads the
 * `WEBHOOK_SECRET` environment variable. Empty entries are dropped, so the result may be empty.
 *
 * @example
 * ```ts
 * import { resolveWebhookSecrets } from 'pipeline-status-sdk/server'
 * resolveWebhookSecrets('new-secret, old-secret') // ['new-secret', 'old-secret']
 * resolveWebhookSecrets(['a,b']) // ['a,b']
 * ```
 */
export function resolveWebhookSecrets(secret: string | readonly string[] | undefined): string[] {
  return parseSecretList(secret === undefined ? readEnv(ENV_WEBHOOK_SECRET) : secret)
}

/** Builds the authenticator; throws {@link ServerConfigurationError} when no request could ever be authenticated. */
export function createWebhookAuthenticator(options: {
  secret: string | readonly string[] | undefined
  signing: WebhookSigningOptions | undefined
  clock: () => Date
}): WebhookAuthenticator {
  const secrets = resolveWebhookSecrets(options.secret)
  const signing = options.signing
  const signingKeys = signing ? decodeSigningSecrets(signing.secret) : []
  if (secrets.length === 0 && signingKeys.length === 0) {
    throw new ServerConfigurationError(
      `No webhook secret configured: pass \`secret\` (or \`signing.secret\`) or set ${ENV_WEBHOOK_SECRET}. ` +
        'Writes are never accepted without one.',
    )
  }
  const tolerance = signing?.toleranceSeconds ?? DEFAULT_WEBHOOK_TOLERANCE_SECONDS
  if (!isPositive(tolerance)) {
    throw new ServerConfigurationError(`signing.toleranceSeconds must be a positive number of seconds, got ${describeReceived(tolerance)}`)
  }
  const replayStore = signing?.replayStore ?? createMemoryReplayStore({ now: () => options.clock().getTime() })

  return {
    signatureRequired: signingKeys.length > 0 && (signing?.required === true || secrets.length === 0),
    plainSecrets: secrets.length > 0,

    async secretMatches(request) {
      const received = request.headers.get(HEADERS.webhookSecret)
      if (received === null || secrets.length === 0) return false
      let matched = false
      // Every secret is compared, so the time taken does not reveal which one matched.
      for (const secret of secrets) matched = (timingSafeEqual(received, secret)) || matched
      return matched
    },

    isSigned(request) {
      if (signingKeys.length === 0) return false
      return [HEADERS.webhookId, HEADERS.webhookTimestamp, HEADERS.webhookSignature].some(
        (name) => request.headers.get(name) !== null,
      )
    },

    async verify(request, body, route) {
      const result = await verifyWebhookSignature({
        secrets: signingKeys,
        headers: request.headers,
        body,
        toleranceSeconds: tolerance,
        now: options.clock(),
      })
      if (!result.valid) throw new HttpProblemError('invalid_signature', { detail: result.detail })
      // The signature covers the id, so checking the id binds the body to this method and route.
      const prefix = webhookMessageIdPrefix(request.method, route)
      if (!result.id.startsWith(prefix) || result.id.length === prefix.length) {
        throw new HttpProblemError('invalid_signature', {
          detail: `webhook-id must be "${prefix}<unique id>": it names the method and route it was signed for`,
        })
      }
      // Past timestamp + tolerance the timestamp check refuses the message, so the id can go.
      const claimed = await replayStore.claim(result.id, await fingerprint(body), (result.timestamp + tolerance + 1) * 1000)
      if (!claimed) {
        throw new HttpProblemError('invalid_signature', {
          detail: 'This webhook-id was already received with another body; give each message its own id',
        })
      }
    },
  }
}

async function fingerprint(body: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', new Uint8Array(body)))
  let binary = ''
  for (const byte of digest) binary += String.fromCharCode(byte)
  return btoa(binary)
}

function decodeSigningSecrets(secret: string | readonly string[]): Uint8Array[] {
  const keys = parseSecretList(secret)
  if (keys.length === 0) throw new ServerConfigurationError('signing.secret needs at least one non-empty secret')
  return keys.map((entry, index) => {
    try {
      return decodeWebhookSecret(entry)
    } catch (error) {
      throw new ServerConfigurationError(`signing.secret[${index}] is invalid: ${(error as Error).message}`)
    }
  })
}

function readEnv(name: string): string | undefined {
  // Edge runtimes may have no `process`; there the secret must be passed explicitly.
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env
  return env?.[name]
}

/**
 * The 401 for a write or read whose `X-Webhook-Secret` is missing or matches no secret. Its
 * detail names what was sent and what is accepted: a caller that sent only an `Authorization`
 * header (a browser with its app's session, say) learns that it is not a credential here.
 * `readTokens`: whether this request would accept a run read token (a read, with read tokens on).
 */
export function secretRefused(request: Request, readTokens = false, plainSecrets = true): HttpProblemError {
  // A signing-only server: a plain secret can never match, whatever its value.
  if (!plainSecrets && request.headers.has(HEADERS.webhookSecret)) return signedOnly(request, 'requests', readTokens)
  if (request.headers.has(HEADERS.webhookSecret)) {
    return new HttpProblemError('unauthorized', { detail: `${HEADERS.webhookSecret} does not match` })
  }
  const scheme = /^\s*(\S+)/.exec(request.headers.get('authorization') ?? '')?.[1]
  if (scheme === undefined) return new HttpProblemError('unauthorized', { detail: `${HEADERS.webhookSecret} is missing` })
  const sent = `Authorization: ${scheme}`
  return new HttpProblemError('unauthorized', {
    detail: readTokens
      ? `${sent} is not a run read token (psrt1.…); send ${HEADERS.webhookSecret}, a signature or a run read token`
      : `${sent} is not accepted here; send ${HEADERS.webhookSecret} or a signature`,
  })
}

/**
 * The 401 `invalid_signature` for an unsigned request where only signed ones are accepted:
 * `what` is `'requests'` on a signing-only server (no plain secret configured) and `'writes'`
 * when `signing.required` makes writes alone need a signature. A plain `X-Webhook-Secret` sent
 * along is named, since it is the usual cause (a runner configured with `WEBHOOK_SECRET` only).
 */
export function signedOnly(request: Request, what: 'requests' | 'writes', readTokens = false): HttpProblemError {
  const headers = 'Standard Webhooks: webhook-id, webhook-timestamp, webhook-signature'
  const alternative = readTokens ? ' (or, for a read, a run read token)' : ''
  let detail = `This server accepts only signed ${what} (${headers})${alternative}`
  if (request.headers.has(HEADERS.webhookSecret)) {
    detail +=
      what === 'requests'
        ? `; ${HEADERS.webhookSecret} is not accepted here: sign with the signing secret (WEBHOOK_SIGNING_SECRET)`
        : `; ${HEADERS.webhookSecret} is accepted for reads only: sign writes with the signing secret (WEBHOOK_SIGNING_SECRET)`
  }
  return new HttpProblemError('invalid_signature', { detail })
}
