/**
 * For the prototype benchmarks only: lets one `PrismaAPIClient` send through either attempt
 * path, the shipped one (ky, src/client/transport.ts) or the plain-`fetch` prototype
 * (`FetchTransport`), switched between blocks, so both sides share the same client, lanes,
 * delivery bookkeeping and JSON. It wraps `Transport.prototype.send` (and `abortInFlight`):
 * while `path` is `'fetch'`, every send goes to a `FetchTransport` built with the client's
 * resolved configuration. Never imported by src.
 */
import type { Logger } from '../../src/client/logger.js'
import { DEFAULT_RETRY_POLICY } from '../../src/client/retry-policy.js'
import { Transport } from '../../src/client/transport.js'
import { FetchTransport } from './fetch-transport.js'

/** Which attempt path the wrapped `Transport.send` takes. */
export const route = { path: 'ky' as 'ky' | 'fetch' }

/** Installs the switch for a client built with `config`'s secret and fetch, default timeout and retries. */
export function installRoute(config: { secret: string; logger: Logger; fetch?: ((input: string, init: RequestInit) => Promise<Response>) | undefined }): FetchTransport {
  const viaFetch = new FetchTransport({
    secret: config.secret,
    timeoutMs: 30_000,
    retry: DEFAULT_RETRY_POLICY,
    userAgent: 'pipeline-status-sdk',
    fetch: config.fetch,
    signer: undefined,
    logger: config.logger,
  })
  const send = Transport.prototype.send
  const abortInFlight = Transport.prototype.abortInFlight
  Transport.prototype.send = function (this: Transport, request, options) {
    return route.path === 'fetch' ? viaFetch.send(request, options) : send.call(this, request, options)
  }
  Transport.prototype.abortInFlight = function (this: Transport, reason) {
    viaFetch.abortInFlight(reason)
    abortInFlight.call(this, reason)
  }
  return viaFetch
}
