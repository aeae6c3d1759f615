import { defineConfig } from 'tsup'

export default defineConfig({
  entry: {
    index: 'src/index.ts',
    'client/index': 'src/client/index.ts',
    'server/index': 'src/server/index.ts',
    'next/index': 'src/next/index.ts',
    'express/index': 'src/express/index.ts',
    'msw/index': 'mock-server/index.ts',
    'react/index': 'src/react/index.ts',
    'pg/index': 'src/pg/index.ts',
    'otel/index': 'src/otel/index.ts',
    // The `pipeline-status` bin; not an export.
    cli: 'mock-server/bin.ts',
  },
  format: ['esm', 'cjs'],
  // Shared modules (contract, core) become chunks that every entry imports, so each is
  // emitted once and `instanceof`/types stay the same across subpaths (msw does the same).
  splitting: true,
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node22',
  platform: 'node',
  treeshake: true,
  // dist/openapi.json (the `./openapi.json` export), generated from the built contract.
  onSuccess: 'node scripts/write-openapi.mjs',
})
