// A cursor-paginated list (docs/api.md, pagination): first page on load and whenever the
// filters change, more pages on request, and in-place edits after the user's own changes.

import { useCallback, useEffect, useRef, useState } from 'react'
import type { Page } from '../api.ts'

interface State<T> {
  /** Which filters (and attempt) `items` belong to. */
  for: string
  items: T[]
  cursor: string | null
  error: unknown
  loadingMore: boolean
}

export interface Paged<T> {
  items: T[]
  error: unknown
  loading: boolean
  /** The first page for the current filters has arrived. */
  loaded: boolean
  hasMore: boolean
  loadMore: () => void
  reload: () => void
  update: (id: string, change: (item: T) => T) => void
  remove: (id: string) => void
}

export function usePaged<T extends { id: string }>(
  fetchPage: (cursor: string | null, signal: AbortSignal) => Promise<Page<T>>,
  /** Stands for every filter `fetchPage` reads. */
  key: string,
): Paged<T> {
  const [attempt, setAttempt] = useState(0)
  const wanted = `${attempt}:${key}`
  const [state, setState] = useState<State<T>>({ for: '', items: [], cursor: null, error: null, loadingMore: false })
  const fetchRef = useRef(fetchPage)
  const moreRef = useRef<AbortController | null>(null)
  useEffect(() => {
    fetchRef.current = fetchPage
  })

  useEffect(() => {
    const controller = new AbortController()
    moreRef.current?.abort()
    fetchRef.current(null, controller.signal).then(
      (page) => {
        if (controller.signal.aborted) return
        setState({ for: wanted, items: page.items, cursor: page.next_cursor, error: null, loadingMore: false })
      },
      (error: unknown) => {
        if (controller.signal.aborted) return
        // Old items stay visible under the error rather than vanishing.
        setState((s) => ({ ...s, for: wanted, error, loadingMore: false }))
      },
    )
    return () => controller.abort()
  }, [wanted])

  const loadMore = useCallback(() => {
    if (state.cursor === null || state.loadingMore) return
    const controller = new AbortController()
    moreRef.current = controller
    const owner = state.for
    setState((s) => ({ ...s, loadingMore: true, error: null }))
    fetchRef.current(state.cursor, controller.signal).then(
      (page) => {
        if (controller.signal.aborted) return
        setState((s) => {
          if (s.for !== owner) return s
          const seen = new Set(s.items.map((i) => i.id))
          return {
            ...s,
            items: [...s.items, ...page.items.filter((i) => !seen.has(i.id))],
            cursor: page.next_cursor,
            loadingMore: false,
          }
        })
      },
      (error: unknown) => {
        if (controller.signal.aborted) return
        setState((s) => ({ ...s, error, loadingMore: false }))
      },
    )
  }, [state.cursor, state.loadingMore, state.for])

  const reload = useCallback(() => setAttempt((n) => n + 1), [])
  const update = useCallback((id: string, change: (item: T) => T) => {
    setState((s) => ({ ...s, items: s.items.map((item) => (item.id === id ? change(item) : item)) }))
  }, [])
  const remove = useCallback((id: string) => {
    setState((s) => ({ ...s, items: s.items.filter((item) => item.id !== id) }))
  }, [])

  const current = state.for === wanted
  return {
    items: state.items,
    error: state.error,
    loading: !current || state.loadingMore,
    loaded: current,
    hasMore: current && state.cursor !== null,
    loadMore,
    reload,
    update,
    remove,
  }
}
