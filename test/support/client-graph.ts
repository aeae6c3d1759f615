/**
 * The source files the runner's entry (`src/client/index.ts`) may reach: the client and the
 * contract, the signature primitives, and the small internal modules shared with the server
 * (logger, error guard, conflict text, backoff, missing-scheme rule, the keep-alive deadline and
 * sleep, trace propagation, the client's telemetry, the least-recently-used map). One list for
 * the import test and the built package's test.
 */
export const CLIENT_SOURCE_GRAPH =
  /^src\/(client|contract)\/|^src\/signing\/webhook-signature\.ts$|^src\/internal\/(logger|is-error-named|is-positive|conflict-cause|backoff|missing-scheme|attempt-deadline|sleep|trace-propagation|client-telemetry|recent-map)\.ts$/
