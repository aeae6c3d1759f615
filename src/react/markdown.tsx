/**
 * Stored text as people read it, and never as HTML: a stage's output is a runner's (often an
 * LLM's) text, so it may carry `<script>`, `<img onerror>` or `javascript:` links put there by a
 * prompt injection. Markdown is rendered by react-markdown (remark → React elements, no HTML
 * parser): raw HTML in it is shown as text, link URLs are kept only when they are http(s) or
 * mailto, and images are not loaded (an image URL that a model wrote can carry data out in its
 * query string); each shows as a link to its URL instead. JSON is shown formatted, as text.
 */
import type { ReactNode } from 'react'
import Markdown, { type Components } from 'react-markdown'

/** The URL schemes a link in stored Markdown may use; any other link is shown without its URL. */
const SAFE_SCHEMES = new Set(['http:', 'https:', 'mailto:'])

/**
 * `url` when it is an absolute http(s) or mailto URL, else `undefined` (a relative URL, a
 * `javascript:`/`data:`/`vbscript:` URL, or text that does not parse).
 */
export function safeUrl(url: string): string | undefined {
  try {
    const parsed = new URL(url)
    return SAFE_SCHEMES.has(parsed.protocol) ? parsed.href : undefined
  } catch {
    return undefined
  }
}

const components: Components = {
  // A link keeps its text; its URL only when safe. `rel` keeps the opened page from the app's window.
  a: ({ href, children }) => {
    const url = href === undefined ? undefined : safeUrl(href)
    return url === undefined ? (
      <span className="ps-md-link-removed">{children}</span>
    ) : (
      <a href={url} rel="noopener noreferrer nofollow ugc">
        {children}
      </a>
    )
  },
  // Not loaded: a link to the image, named by its alt text.
  img: ({ src, alt }) => {
    const url = typeof src === 'string' ? safeUrl(src) : undefined
    const label = `Image: ${alt || 'no description'}`
    return url === undefined ? (
      <span className="ps-md-image">{label}</span>
    ) : (
      <a className="ps-md-image" href={url} rel="noopener noreferrer nofollow ugc">
        {label}
      </a>
    )
  },
}

/** Props of {@link SafeMarkdown}. */
export interface SafeMarkdownProps {
  /** The Markdown text, as stored (untrusted). */
  text: string
  /** A class for the wrapping `<div>`, besides `ps-markdown`. */
  className?: string | undefined
}

/**
 * Renders untrusted Markdown as React elements: headings, lists, emphasis, code and links, with
 * raw HTML shown as text, links kept only for http(s) and mailto URLs, and images shown as links
 * instead of loaded. Never uses `dangerouslySetInnerHTML`.
 *
 * @example
 * ```tsx
 * import { SafeMarkdown } from 'pipeline-status-sdk/react'
 *
 * export function Summary({ text }: { text: string }) {
 *   return <SafeMarkdown text={text} />
 * }
 * ```
 */
export function SafeMarkdown({ text, className }: SafeMarkdownProps): ReactNode {
  return (
    <div className={className ? `ps-markdown ${className}` : 'ps-markdown'}>
      <MarkdownElements text={text} />
    </div>
  )
}

/** The elements of untrusted Markdown by {@link SafeMarkdown}'s rules, without its wrapping `<div>`. */
export function MarkdownElements({ text }: { text: string }): ReactNode {
  return (
    <Markdown components={components} urlTransform={(url) => safeUrl(url) ?? null}>
      {text}
    </Markdown>
  )
}

/**
 * `text` formatted with two-space indents when it is a JSON object or array, else `undefined`.
 * (A bare JSON string or number reads better as text.)
 */
export function formatJson(text: string): string | undefined {
  const trimmed = text.trim()
  if (!(trimmed.startsWith('{') || trimmed.startsWith('['))) return undefined
  try {
    return JSON.stringify(JSON.parse(trimmed), null, 2)
  } catch {
    return undefined
  }
}

/**
 * A stage's output as the timeline shows it by default: formatted JSON in a `<pre>` when it is
 * JSON, else {@link SafeMarkdown}. Always as text.
 */
export function StoredOutput({ text }: { text: string }): ReactNode {
  const json = formatJson(text)
  return json === undefined ? (
    <SafeMarkdown text={text} />
  ) : (
    <pre className="ps-json">
      <code>{json}</code>
    </pre>
  )
}
