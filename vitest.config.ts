import { availableParallelism } from 'node:os'
import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vitest/config'

const src = (path: string) => fileURLToPath(new URL(path, import.meta.url))

export default defineConfig({
  resolve: {
    // Tests import the package by its public name, as users do. Longest subpaths first.
    alias: [
      { find: /^pipeline-status-sdk\/client$/, replacement: src('./src/client/index.ts') },
      { find: /^pipeline-status-sdk\/server$/, replacement: src('./src/server/index.ts') },
      { find: /^pipeline-status-sdk\/next$/, replacement: src('./src/next/index.ts') },
      { find: /^pipeline-status-sdk\/express$/, replacement: src('./src/express/index.ts') },
      { find: /^pipeline-status-sdk\/msw$/, replacement: src('./mock-server/index.ts') },
      { find: /^pipeline-status-sdk\/react$/, replacement: src('./src/react/index.ts') },
      { find: /^pipeline-status-sdk\/pg$/, replacement: src('./src/pg/index.ts') },
      { find: /^pipeline-status-sdk\/otel$/, replacement: src('./src/otel/index.ts') },
      { find: /^pipeline-status-sdk$/, replacement: src('./src/index.ts') },
    ],
  },
  test: {
    // Generates the Prisma client the tests import when it is missing or older than the schema.
    globalSetup: ['./test/setup/global-setup.ts'],
    // The default reporter, then one line naming tests skipped for a program this machine lacks
    // (Chromium, Python); PIPELINE_STATUS_REQUIRE_ALL=1 makes those tests fail instead.
    reporters: ['default', './test/setup/skipped-tools-reporter.ts'],
    include: ['src/**/*.test.ts', 'mock-server/**/*.test.ts', 'test/**/*.test.ts'],
    // At least two test files at a time, also on a 2-core machine (vitest's default there is one):
    // most of the suite's time is spent waiting on child processes (Chromium, Python, Next.js, the
    // example servers) and PostgreSQL, not on this process's CPU. Every test has its own database,
    // port and folder, so files never share state.
    maxWorkers: Math.max(2, availableParallelism() - 1),
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
})
