/**
 * The one rule for text PostgreSQL can store: no NUL (a `text` column refuses it) and no lone
 * UTF-16 surrogate (it has no UTF-8 form; the driver would silently store U+FFFD instead).
 * The handlers refuse such text with 400; the client replaces it before sending, so a stage's
 * status is never lost to its output.
 */

// A NUL, a high surrogate not followed by a low one, or a low surrogate not preceded by a high one.
const UNSTORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/
const UNSTORABLE_ALL = new RegExp(UNSTORABLE.source, 'g')

/** What replaces every unstorable character: U+FFFD REPLACEMENT CHARACTER, as a UTF-8 decoder does. */
export const REPLACEMENT_CHARACTER = '\uFFFD'

/** Whether a string can be stored unchanged in a PostgreSQL text column. */
export function isStorableText(value: string): boolean {
  return !UNSTORABLE.test(value)
}

/**
 * `value` with every NUL and every lone surrogate replaced by U+FFFD, and how many were replaced.
 * Paired surrogates (emoji and other astral characters) are kept.
 */
export function toStorableText(value: string): { text: string; replaced: number } {
  if (isStorableText(value)) return { text: value, replaced: 0 }
  let replaced = 0
  const text = value.replace(UNSTORABLE_ALL, () => {
    replaced++
    return REPLACEMENT_CHARACTER
  })
  return { text, replaced }
}
