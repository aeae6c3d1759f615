import { fileURLToPath } from 'node:url'
import type { NextConfig } from 'next'

// This app lives inside the pipeline-status-sdk repository and resolves next, react and Prisma
// from the repository's node_modules, two folders up. Turbopack and output tracing only look
// inside their root, so the root is the repository. A standalone copy of this app (with its
// own node_modules) can drop both settings.
const repositoryRoot = fileURLToPath(new URL('../..', import.meta.url))

const nextConfig: NextConfig = {
  // As `create-next-app` sets it since Next.js 16: no route exports `dynamic` or `runtime` then
  // (Next.js refuses both); request-time work sits in <Suspense> after `await connection()`.
  cacheComponents: true,
  // Next.js 16.3+ asks for this beside `cacheComponents` (a warning on every build and dev start
  // while unset). A new app enables it: a <Link> prefetches the route's static shell, and what
  // reads the URL or the request streams in after the click from inside its <Suspense>.
  partialPrefetching: true,
  turbopack: { root: repositoryRoot },
  outputFileTracingRoot: repositoryRoot,
}

export default nextConfig
