const encoder = new TextEncoder()

/**
 * Compares a received secret with an expected one in constant time, in plain JavaScript (so it
 * runs on Node, Bun, Deno and edge runtimes, with no per-call crypto). The loop always runs over
 * every byte of the received value and reads the expected one cyclically, so the time taken
 * depends only on the received length, which the sender knows anyway: it reveals nothing about
 * the expected secret, neither its content nor its length.
 */
export function timingSafeEqual(received: string, expected: string): boolean {
  const a = encoder.encode(received)
  const b = encoder.encode(expected)
  // Differing lengths are folded into the result instead of returning early.
  let difference = a.length ^ b.length
  const n = b.length
  if (n === 0) return a.length === 0
  for (let i = 0; i < a.length; i++) difference |= (a[i] as number) ^ (b[i % n] as number)
  return difference === 0
}
