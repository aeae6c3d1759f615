/**
 * The one guard behind every `isXError` of the package: whether `error` is an `Error` whose
 * `name` is `name`. Unlike `instanceof`, it also holds across dual builds (the ESM and the
 * CommonJS copy of a class are two classes with one name), as ky's `isErrorType` does; every
 * error class of the package sets a literal `name` for it.
 */
export function isErrorNamed(error: unknown, name: string): error is Error {
  return error instanceof Error && error.name === name
}
