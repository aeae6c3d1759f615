#!/usr/bin/env node
// The `pipeline-status` bin (package.json `bin`, built to dist/cli.js): runs the command line
// of mock-server/cli.ts with the process's arguments and exits with its code.
import { main } from './cli.js'

void main(process.argv.slice(2)).then((code) => {
  process.exitCode = code
})
