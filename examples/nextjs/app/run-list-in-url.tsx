'use client'

import { useSearchParams } from 'next/navigation'
import { useEffect, useRef, useState } from 'react'
import type { RunListFilters } from 'pipeline-status-sdk'
import { RunList, type RunListLiveProps } from 'pipeline-status-sdk/react'
import { filtersFromQuery, queryWithFilters } from '@/lib/run-list-url'

/**
 * The package's RunList with its filters in the page's URL (lib/run-list-url.ts): read on load
 * (the server read the first runs with them, app/page.tsx), written on each change, followed on
 * Back, Forward and links. Each change is a history entry to go Back to, except that typing on
 * in the tag field replaces its own. The URL is written with `history.pushState`, which Next.js
 * reports through `useSearchParams` without asking the server again.
 */
export function RunListInUrl(props: Omit<RunListLiveProps, 'filters' | 'defaultFilters' | 'onFilterChange'>) {
  const searchParams = useSearchParams()
  const [filters, setFilters] = useState(() => filtersFromQuery(searchParams))
  // The queries written here that the router has not reported back yet, oldest first: a report
  // of one is our own change (the filters already show it, and may have moved on while typing);
  // any other query is a navigation, whose filters are shown.
  const written = useRef([searchParams.toString()])
  const typingTag = useRef(false)

  useEffect(() => {
    const query = searchParams.toString()
    const own = written.current.indexOf(query)
    if (own >= 0) {
      written.current.splice(0, own + 1)
      return
    }
    written.current = []
    typingTag.current = false
    setFilters(filtersFromQuery(searchParams))
  }, [searchParams])

  const change = (next: RunListFilters) => {
    const tagOnly = next.tag !== filters.tag && (['pipeline', 'status', 'createdFrom', 'createdTo'] as const).every((key) => next[key] === filters[key])
    setFilters(next)
    const query = queryWithFilters(new URLSearchParams(window.location.search), next).toString()
    const url = `${window.location.pathname}${query ? `?${query}` : ''}`
    if (url !== `${window.location.pathname}${window.location.search}`) {
      written.current.push(query)
      if (tagOnly && typingTag.current) window.history.replaceState(null, '', url)
      else window.history.pushState(null, '', url)
    }
    typingTag.current = tagOnly
  }

  return <RunList {...props} filters={filters} onFilterChange={change} />
}
