/**
 * The text of a caught value of unknown type, for a message that names what went wrong: an
 * error's (or any object's) `message`, or else the value itself as a string. So a thrown string
 * reads as itself, and `undefined`, `null` or an object without a message do not throw while a
 * message is being written: `"undefined"`, `"null"`, `"[object Object]"`. An empty message stays
 * empty (a caller that needs a fallback adds its own).
 */
export function errorMessage(error: unknown): string {
  return String((error as { message?: unknown } | null | undefined)?.message ?? error)
}
