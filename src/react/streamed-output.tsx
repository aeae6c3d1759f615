/**
 * A running stage's streamed output as it grows (docs/components.md, "Streamed output"). Parsing
 * Markdown costs time in proportion to its length (tens of milliseconds per 10 KB on a loaded
 * laptop), and a model writes a few chunks a second for minutes; parsing the whole text again on
 * every chunk would make a long report freeze the page. So, while a stage streams:
 *
 * - the text is split into top-level blocks at blank lines outside fenced code
 *   ({@link splitMarkdownBlocks}); a block the stream has moved past no longer changes and is
 *   not parsed again (each is a memoized component), only the last one is;
 * - what is shown follows the text at most once per animation frame ({@link useFrameThrottled}),
 *   however many chunks arrive in between (none while the tab is hidden; it catches up when shown).
 *
 * Blocks are rendered with the same safe renderer as a finished output (raw HTML as text, safe
 * link URLs only, images not loaded). Once the stage is final, its output is rendered whole.
 */
import { memo, type ReactNode, useEffect, useMemo, useRef, useState } from 'react'
import { formatJson, MarkdownElements, StoredOutput } from './markdown.js'

/** A Markdown block that is parsed again only when its text changes. */
const MarkdownBlock = memo(MarkdownElements)

/** A fence's opening: up to three spaces, then three or more backticks or tildes. */
const FENCE_OPEN = /^ {0,3}(`{3,}|~{3,})(.*)$/

/**
 * Splits Markdown into top-level blocks that render alone as they render together, near enough
 * for text still being written: a block ends at a blank line followed by a line that starts in
 * the first column (an indented line continues a list item or an indented code block), never
 * inside a fenced code block. Trailing line breaks are left off each block, so a finished block's
 * text stays the same as the stream goes on. (A reference-style link whose definition comes in a
 * later block, or a loose list split into two, renders exactly once the stage is final.)
 *
 * @returns the blocks in order; `['']` for empty text.
 */
export function splitMarkdownBlocks(text: string): string[] {
  const blocks: string[] = []
  let current: string[] = []
  let fence: { char: string; length: number } | undefined
  let afterBlank = false
  for (const line of text.split('\n')) {
    if (fence) {
      current.push(line)
      const close = /^ {0,3}(`{3,}|~{3,})\s*$/.exec(line)
      if (close && close[1]![0] === fence.char && close[1]!.length >= fence.length) fence = undefined
      continue
    }
    if (line.trim() === '') {
      current.push(line)
      afterBlank = true
      continue
    }
    if (afterBlank && !/^[ \t]/.test(line) && current.some((held) => held.trim() !== '')) {
      blocks.push(current.join('\n').replace(/\n+$/, ''))
      current = []
    }
    afterBlank = false
    const open = FENCE_OPEN.exec(line)
    // A backtick fence's info string has no backtick (else it is inline code).
    if (open && !(open[1]![0] === '`' && open[2]!.includes('`'))) fence = { char: open[1]![0]!, length: open[1]!.length }
    current.push(line)
  }
  blocks.push(current.join('\n').replace(/\n+$/, ''))
  return blocks
}

/** `requestAnimationFrame`, or a 16 ms timer where there is none. */
const nextFrame = (callback: () => void): (() => void) => {
  if (typeof requestAnimationFrame === 'function') {
    const frame = requestAnimationFrame(callback)
    return () => cancelAnimationFrame(frame)
  }
  const timer = setTimeout(callback, 16)
  return () => clearTimeout(timer)
}

/**
 * `value` as it was at the last animation frame: a change shows at the next frame, and changes
 * between two frames show once, as the newest. The first render (the server's too) shows `value`.
 */
export function useFrameThrottled<T>(value: T): T {
  const [shown, setShown] = useState(value)
  const latest = useRef(value)
  latest.current = value
  const cancel = useRef<(() => void) | undefined>(undefined)
  useEffect(() => {
    if (Object.is(shown, value) || cancel.current !== undefined) return
    cancel.current = nextFrame(() => {
      cancel.current = undefined
      setShown(latest.current)
    })
  })
  useEffect(
    () => () => {
      cancel.current?.()
      cancel.current = undefined
    },
    [],
  )
  return shown
}

/**
 * A streaming stage's text: Markdown block by block (only the last block parsed again as it
 * grows), at most once per animation frame; text that is already a whole JSON document shows
 * formatted, as {@link StoredOutput} does.
 */
export function StreamedOutput({ text }: { text: string }): ReactNode {
  const shown = useFrameThrottled(text)
  const json = useMemo(() => formatJson(shown) !== undefined, [shown])
  const blocks = useMemo(() => (json ? [] : splitMarkdownBlocks(shown)), [json, shown])
  if (json) return <StoredOutput text={shown} />
  return (
    <div className="ps-markdown ps-markdown-streaming">
      {blocks.map((block, index) => (
        // The index is the block's identity: blocks are only ever appended while a stage streams.
        <MarkdownBlock key={index} text={block} />
      ))}
    </div>
  )
}
