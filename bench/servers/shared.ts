/**
 * What the benchmark's server processes share: the catalogue, the secret, and the answer to the
 * parent's CPU question (`process.cpuUsage()` of this process, over IPC), so that server CPU
 * per update is measured per server.
 */
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'

/** A catalogue long enough that every request can be a distinct (run, stage) that never finishes the run. */
export const BENCH_STAGES = Array.from({ length: 200 }, (_, i) => ({ number: i + 1, name: `Stage ${i + 1}` }))
export const BENCH_SECRET = 'bench-secret-3c9e1f'
/** Connections in every server's pool. */
export const POOL_SIZE = 10

/** Tells the parent the port, then answers `cpu` with this process's CPU time so far. */
export function reportToParent(server: Server): void {
  server.keepAliveTimeout = 60_000
  server.listen(0, '127.0.0.1', () => {
    process.send?.({ port: (server.address() as AddressInfo).port })
  })
  process.on('message', (message) => {
    if (message === 'cpu') process.send?.({ cpu: process.cpuUsage() })
  })
  process.on('disconnect', () => process.exit(0))
  // Exit through process.exit so that --cpu-prof (NODE_OPTIONS) writes the profile.
  process.on('SIGTERM', () => process.exit(0))
}

export function databaseUrl(): string {
  const url = process.env['BENCH_DATABASE_URL']
  if (!url) throw new Error('BENCH_DATABASE_URL is not set')
  return url
}
