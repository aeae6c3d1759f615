/**
 * The outbox's jitter source for a test that delivers its queue by itself (`flush()`, `close()`):
 * every background redelivery waits 99% of its ceiling (`retryDelayMs` doubled per failed pass, at
 * most `maxRetryDelayMs`), never a short draw of the full jitter that would start a redelivery in
 * the middle of the test. With `Math.random` the wait is anywhere in `[0, ceiling)`, so a test
 * with a 60 s ceiling found its queue already delivered about once in a few hundred runs.
 */
export const nearCeiling = (): number => 0.99
