/**
 * The one check of a positive numeric option (a timeout, a limit, an interval, a lifetime):
 * a finite number above zero, a safe whole number with `integer`, at most `max`. Each caller
 * throws its own error (the handlers' `ServerConfigurationError`, the client's
 * `ConfigurationError`, a `TypeError` for a function argument) with a message naming its option.
 */
export function isPositive(value: unknown, options: { integer?: boolean; max?: number } = {}): value is number {
  if (typeof value !== 'number') return false
  const valid = options.integer ? Number.isSafeInteger(value) : Number.isFinite(value)
  return valid && value > 0 && value <= (options.max ?? Number.POSITIVE_INFINITY)
}
