/** The demo's gutter: each line of a stage's streamed text is printed after `        │ `. */
export const GUTTER = '        │ '

/**
 * What to print of `fresh`, the text that arrived after `shown` (what is already printed): the
 * gutter at the start of every line it begins — its first when `shown` is empty or ended a line,
 * and each after a line break in it, except a break that ends it (the next piece starts that line).
 */
export function withGutter(shown: string, fresh: string): string {
  const startsLine = shown === '' || shown.endsWith('\n')
  return `${startsLine && fresh !== '' ? GUTTER : ''}${fresh.replace(/\n(?!$)/g, `\n${GUTTER}`)}`
}
