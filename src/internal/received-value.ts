/**
 * How an option validation message shows the value it refused: a number as itself (`600000`,
 * `-1`, `NaN`), anything else with its type, so that a number passed as a string (e.g. straight
 * from an environment variable) is not mistaken for the number: `"600000" (a string)`,
 * `true (a boolean)`, `null`, `undefined`, `[object Object] (an object)`. The one format of every
 * "must be ..., got X" message of the server options.
 */
export function describeReceived(value: unknown): string {
  if (typeof value === 'number') return String(value)
  if (value === null || value === undefined) return String(value)
  if (typeof value === 'string') return `${JSON.stringify(value)} (a string)`
  if (typeof value === 'bigint') return `${value}n (a bigint)`
  if (Array.isArray(value)) return 'an array'
  const type = typeof value
  const article = type === 'object' ? 'an' : 'a'
  let shown: string
  try {
    shown = type === 'object' ? '' : String(value)
  } catch {
    shown = ''
  }
  return shown === '' ? `${article} ${type}` : `${shown} (${article} ${type})`
}
