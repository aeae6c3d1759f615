#!/usr/bin/env node
// The `pipeline-status` bin (package.json `bin`, built to dist/cli.js): runs the command line
// of mock-server/cli.ts with the process's arguments and exits with its code.
import { main } from './cli.js'

// `pipeline-status openapi | head -c 200`: the reader takes what it wants and closes the pipe,
// and the next write fails with EPIPE. That is the reader's choice, not a failure: end quietly
// (no stack), as Unix tools do. Any other stream error stays an error.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error
    process.exit(process.exitCode ?? 0)
  })
}

void main(process.argv.slice(2)).then((code) => {
  process.exitCode = code
})
