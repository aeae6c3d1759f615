import { fieldMessage } from '../../contract/field-messages.js'
import type { FieldError } from '../../contract/problem.js'
import { isStorableText } from '../../contract/storable-text.js'

export { isStorableText }

/** The fields among `values` that cannot be stored unchanged, as 400 field errors. */
export function unstorableFields(values: Readonly<Record<string, string | null | undefined>>): FieldError[] {
  return Object.entries(values)
    .filter(([, value]) => typeof value === 'string' && !isStorableText(value))
    .map(([field]) => ({ field, message: fieldMessage(field, 'must not contain NUL characters or unpaired UTF-16 surrogates') }))
}
