import { PrismaAPIClient, type PrismaAPIClientOptions } from 'pipeline-status-sdk/client'
import { afterEach } from 'vitest'

/**
 * The one `makeClient` of the client's tests: a client on the file's defaults (read when the
 * client is made, so they may name the test's server and outbox directory) plus `overrides`,
 * closed after each test. Create it after the file's own `afterEach`, so clients close before
 * the test server stops (vitest runs `afterEach` hooks last-registered first).
 */
export function clientFactory(defaults: () => PrismaAPIClientOptions): {
  make(overrides?: PrismaAPIClientOptions): PrismaAPIClient
  /** Closes `client` after the test too, for a client the test builds itself. */
  track(client: PrismaAPIClient): PrismaAPIClient
} {
  const clients: PrismaAPIClient[] = []
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((client) => client.close({ timeoutMs: 100 })))
  })
  const track = (client: PrismaAPIClient) => {
    clients.push(client)
    return client
  }
  return { make: (overrides = {}) => track(new PrismaAPIClient({ ...defaults(), ...overrides })), track }
}
