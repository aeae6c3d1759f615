/**
 * How `WEBHOOK_SECRET` (and a `secret` option given as a string) is read, the one way the
 * handlers, the mocks and the clients read it: a comma-separated list, so that a secret can be
 * rotated (`new,old`: the server accepts both, the runner sends the first). Internal: not
 * re-exported by an entry point.
 */

/**
 * The entries of a secret list: a string is split at commas and each entry trimmed; an array is
 * taken entry by entry (for a secret that holds a comma). Empty entries are dropped, so the
 * result may be empty; anything else is an empty list.
 */
export function parseSecretList(value: string | readonly string[] | undefined): string[] {
  if (typeof value === 'string') return value.split(',').map((part) => part.trim()).filter((part) => part !== '')
  const list: readonly unknown[] = Array.isArray(value) ? value : []
  return list.filter((entry): entry is string => typeof entry === 'string' && entry.trim() !== '')
}
