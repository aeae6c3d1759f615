/**
 * The checks of `PrismaAPIClient`'s options, run once by its constructor: every option that
 * cannot work throws a `ConfigurationError` naming the option and the fix. Internal.
 */
import { ENV_WEBHOOK_SECRET, ENV_WEBHOOK_URL } from '../contract/headers.js'
import { MAX_HEARTBEAT_INTERVAL_MS, MIN_HEARTBEAT_INTERVAL_MS } from '../contract/runner-control.js'
import { parseSecretList } from '../contract/secrets.js'
import { assertStageCatalogue, DEFAULT_STAGES, type StageCatalogue } from '../contract/stages.js'
import { isPositive } from '../internal/is-positive.js'
import { decodeWebhookSecret } from '../signing/webhook-signature.js'
import { ConfigurationError } from './errors.js'
import type { PrismaAPIClientOptions } from './prisma-api-client.js'
import { type ResolvedRetryPolicy, resolveRetryPolicy } from './retry-policy.js'

/** The options after their checks, with the environment's fallbacks applied. */
export interface ResolvedClientOptions {
  /** The base URL as given (the base path is still on it). */
  url: URL
  /** The shared secret (the first entry of a `new,old` list), `undefined` when only signing is used. */
  secret: string | undefined
  /** Per-attempt timeout, in milliseconds. */
  timeout: number
  /** Milliseconds between heartbeats while `runPipeline` runs a stage. */
  heartbeatInterval: number
  stages: StageCatalogue
  retry: ResolvedRetryPolicy
  /** The Standard Webhooks signing secret, when requests are signed. */
  signingSecret: string | undefined
}

/** `http://` for a host on this machine (where TLS is rare), `https://` for any other. */
function withScheme(hostAndPath: string): string {
  const host = hostAndPath.split(/[/:?#]/, 1)[0]?.toLowerCase() ?? ''
  const local = host === 'localhost' || host.endsWith('.localhost') || host.startsWith('127.') || host === '0.0.0.0' || hostAndPath.startsWith('[::1]')
  return `${local ? 'http' : 'https'}://${hostAndPath}`
}

/** Checks the options and applies `FRONTEND_WEBHOOK_URL` and `WEBHOOK_SECRET`; throws {@link ConfigurationError}. */
export function resolveClientOptions(options: PrismaAPIClientOptions): ResolvedClientOptions {
  const env = globalThis.process?.env ?? {}
  const baseUrl = options.baseUrl ?? env[ENV_WEBHOOK_URL]
  // Read like the server reads it: during a rotation (`new,old`) the first entry is current.
  const secret = parseSecretList(options.secret ?? env[ENV_WEBHOOK_SECRET])[0]
  if (baseUrl === undefined || baseUrl.trim() === '') {
    throw new ConfigurationError(
      `No base URL: pass { baseUrl: 'https://your-app.example.com' } or set ${ENV_WEBHOOK_URL}`,
    )
  }
  const named = options.baseUrl === undefined ? `${ENV_WEBHOOK_URL}=${baseUrl.trim()}` : `The base URL ${JSON.stringify(baseUrl)}`
  // `localhost:5120` parses as a URL whose scheme is `localhost:`: say what was meant instead.
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(baseUrl.trim()) && /^(?:[\w.-]+|\[[\d:a-f]+\])(?::\d+)?(?:[/?#]\S*)?$/i.test(baseUrl.trim())) {
    throw new ConfigurationError(`${named} has no http:// or https://; did you mean ${withScheme(baseUrl.trim())}?`)
  }
  let url: URL
  try {
    url = new URL(baseUrl.trim())
  } catch {
    throw new ConfigurationError(`${named} is not an absolute URL`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigurationError(`The base URL must be http or https, not ${url.protocol}`)
  }
  if (url.search !== '' || url.hash !== '') {
    throw new ConfigurationError('The base URL must not have a query or a fragment')
  }
  if (secret === undefined && !options.signing) {
    throw new ConfigurationError(
      `No webhook secret: pass { secret } or set ${ENV_WEBHOOK_SECRET} (the same value as the web app's)`,
    )
  }
  const timeout = options.timeout ?? 30_000
  if (!isPositive(timeout, { max: 2_147_483_647 })) {
    throw new ConfigurationError('timeout must be a positive number of milliseconds')
  }
  const heartbeatInterval = options.heartbeatInterval ?? 10_000
  if (!Number.isInteger(heartbeatInterval) || heartbeatInterval < MIN_HEARTBEAT_INTERVAL_MS || heartbeatInterval > MAX_HEARTBEAT_INTERVAL_MS) {
    throw new ConfigurationError(
      `heartbeatInterval must be a whole number of milliseconds from ${MIN_HEARTBEAT_INTERVAL_MS} to ${MAX_HEARTBEAT_INTERVAL_MS}, got ${String(heartbeatInterval)}`,
    )
  }
  let stages: StageCatalogue
  let retry: ReturnType<typeof resolveRetryPolicy>
  try {
    stages = assertStageCatalogue(options.stages ?? DEFAULT_STAGES)
    retry = resolveRetryPolicy(options.retry)
  } catch (error) {
    throw new ConfigurationError((error as Error).message, { cause: error })
  }
  let signingSecret: string | undefined
  if (options.signing) {
    const given = options.signing.secret
    if (typeof given !== 'string' || given === '') {
      throw new ConfigurationError('signing.secret must be a non-empty string')
    }
    try {
      // A malformed whsec_ secret fails here, not on the first request.
      decodeWebhookSecret(given)
    } catch (error) {
      throw new ConfigurationError((error as Error).message, { cause: error })
    }
    signingSecret = given
  }
  return { url, secret, timeout, heartbeatInterval, stages, retry, signingSecret }
}
