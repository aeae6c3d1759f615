/**
 * Bidi control characters in short runner text (ids, tags) made visible. CSS isolation
 * (`.ps-runner-text`, `unicode-bidi: isolate`) stops a right-to-left override from reordering
 * the text around an element, but not the element's own text: `abc\u202Egnp.exe\u202C` still reads
 * "abcexe.png". Ids and tags are identifiers a person compares, so their controls are shown as
 * `⟨U+202E⟩` instead of acting; outputs and errors keep theirs (isolated), since real
 * right-to-left prose may need them.
 */

/** The explicit bidi formatting characters: LRM, RLM, ALM, LRE…RLO, PDF, LRI…PDI. */
const BIDI_CONTROLS = /[\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]/g

/** `text` with each bidi control character replaced by a visible `⟨U+XXXX⟩`. */
export function showBidiControls(text: string): string {
  return text.replace(BIDI_CONTROLS, (char) => `⟨U+${char.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}⟩`)
}
