// Sends the page's uncaught errors and unhandled promise rejections to the server, which logs,
// counts and forwards them to the error tracker. A few per page load at most: a render loop
// that throws on every frame must not flood the server (which also limits reports per client).

import { reportClientError } from './api.ts'
import type { ClientErrorReport } from './api.ts'

/** Reports sent per page load at most; the same error is sent once. */
export const MAX_REPORTS_PER_PAGE = 3

/** Longest message and stack sent, in characters; the server takes 16 KiB in all. */
const MAX_MESSAGE = 1000
const MAX_STACK = 8000

/** The web app's build, by its script's hashed file name. */
const RELEASE = new URL(import.meta.url, 'http://localhost').pathname.split('/').pop() ?? ''

/**
 * Listens for uncaught errors on `target` and reports each distinct one, up to
 * [`MAX_REPORTS_PER_PAGE`]. Returns a function that stops listening.
 */
export function installErrorReports(
  target: Window = window,
  send: (report: ClientErrorReport) => Promise<void> = reportClientError,
): () => void {
  const seen = new Set<string>()
  const report = (error: unknown, fallback: string) => {
    if (seen.size >= MAX_REPORTS_PER_PAGE) return
    const { message, stack } = describeError(error, fallback)
    const key = `${message}\n${stack ?? ''}`
    if (seen.has(key)) return
    seen.add(key)
    void send({
      message: message.slice(0, MAX_MESSAGE) || 'Unknown error',
      ...(stack !== undefined ? { stack: stack.slice(0, MAX_STACK) } : {}),
      path: target.location.pathname,
      user_agent: target.navigator.userAgent,
      release: RELEASE,
    })
  }
  const onError = (event: ErrorEvent) => {
    report(event.error, event.message)
  }
  const onRejection = (event: PromiseRejectionEvent) => {
    report(event.reason, 'Unhandled promise rejection')
  }
  target.addEventListener('error', onError)
  target.addEventListener('unhandledrejection', onRejection)
  return () => {
    target.removeEventListener('error', onError)
    target.removeEventListener('unhandledrejection', onRejection)
  }
}

function describeError(error: unknown, fallback: string): { message: string; stack?: string } {
  if (error instanceof Error) {
    return { message: `${error.name}: ${error.message}`, ...(error.stack ? { stack: error.stack } : {}) }
  }
  if (typeof error === 'string') return { message: error }
  return { message: fallback }
}
