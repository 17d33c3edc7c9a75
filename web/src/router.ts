// A small client-side router on the History API: the app has a handful of flat routes and
// one parameter each at most, which does not need a routing library's weight.

import { useSyncExternalStore } from 'react'

const NAVIGATE_EVENT = 'aimake:navigate'

function subscribe(onChange: () => void): () => void {
  window.addEventListener('popstate', onChange)
  window.addEventListener(NAVIGATE_EVENT, onChange)
  return () => {
    window.removeEventListener('popstate', onChange)
    window.removeEventListener(NAVIGATE_EVENT, onChange)
  }
}

function snapshot(): string {
  return window.location.pathname + window.location.search
}

export interface Location {
  path: string
  query: URLSearchParams
  /** Path and query, as given to `navigate` to come back here. */
  href: string
}

/** The current location; re-renders on every navigation. */
export function useLocation(): Location {
  const href = useSyncExternalStore(subscribe, snapshot)
  const url = new URL(href, 'http://x')
  return { path: url.pathname, query: url.searchParams, href }
}

/** Goes to `to` (path with optional query) without reloading. */
export function navigate(to: string, options: { replace?: boolean } = {}): void {
  if (to === snapshot()) return
  if (options.replace === true) window.history.replaceState(null, '', to)
  else window.history.pushState(null, '', to)
  window.dispatchEvent(new Event(NAVIGATE_EVENT))
  window.scrollTo?.(0, 0)
}

/**
 * Matches `pattern` (segments, `:name` for a parameter) against `path`; returns the
 * parameters, or null when it does not match.
 */
export function matchPath(pattern: string, path: string): Record<string, string> | null {
  const want = pattern.split('/').filter(Boolean)
  const have = path.split('/').filter(Boolean)
  if (want.length !== have.length) return null
  const params: Record<string, string> = {}
  for (let i = 0; i < want.length; i++) {
    const w = want[i] as string
    const h = have[i] as string
    if (w.startsWith(':')) {
      try {
        params[w.slice(1)] = decodeURIComponent(h)
      } catch {
        return null
      }
    } else if (w !== h) {
      return null
    }
  }
  return params
}

/** Only same-origin app paths are followed after login, never another site. */
export function safeNext(next: string | null, fallback = '/studio'): string {
  if (next === null || !next.startsWith('/') || next.startsWith('//')) return fallback
  return next
}

/** The login page's address that comes back to `href` afterwards. */
export function loginPathFor(href: string, expired: boolean): string {
  const params = new URLSearchParams({ next: href })
  if (expired) params.set('expired', '1')
  return `/login?${params.toString()}`
}
