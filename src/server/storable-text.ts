import type { FieldError } from '../contract/problem.js'

// NUL cannot be stored in a PostgreSQL text column, and a lone UTF-16 surrogate has no UTF-8
// form (the driver would silently store U+FFFD instead): both are refused up front, so every
// store keeps exactly what was accepted.
const UNSTORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

/** Whether a string can be stored unchanged in a PostgreSQL text column. */
export function isStorableText(value: string): boolean {
  return !UNSTORABLE.test(value)
}

/** The fields among `values` that cannot be stored unchanged, as 400 field errors. */
export function unstorableFields(values: Readonly<Record<string, string | null | undefined>>): FieldError[] {
  return Object.entries(values)
    .filter(([, value]) => typeof value === 'string' && !isStorableText(value))
    .map(([field]) => ({ field, message: 'must not contain NUL characters or unpaired UTF-16 surrogates' }))
}
