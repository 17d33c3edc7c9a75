import { describe, expect, it, vi } from 'vitest'
import { reportClientError } from './api.ts'
import type { ClientErrorReport } from './api.ts'
import { MAX_REPORTS_PER_PAGE, installErrorReports } from './errorReports.ts'
import { sentJson, stubFetch } from './test/http.ts'

/** A window of its own, so the test runner's own error listeners never see these events. */
function fakeWindow(pathname: string): Window {
  return Object.assign(new EventTarget(), {
    location: { pathname },
    navigator: { userAgent: 'TestBrowser/1.0' },
  }) as unknown as Window
}

function throwIn(target: Window, error: unknown, message = 'Script error.') {
  target.dispatchEvent(new ErrorEvent('error', { error, message }))
}

function rejectIn(target: Window, reason: unknown) {
  const event = new Event('unhandledrejection') as PromiseRejectionEvent
  Object.defineProperty(event, 'reason', { value: reason })
  target.dispatchEvent(event)
}

describe('installErrorReports', () => {
  it('reports an uncaught error with its stack, the page path and the browser', () => {
    const page = fakeWindow('/library/abc')
    const sent: ClientErrorReport[] = []
    const stop = installErrorReports(page, async (r) => {
      sent.push(r)
    })

    throwIn(page, new TypeError('x is undefined'))
    stop()

    expect(sent).toHaveLength(1)
    const [report] = sent
    expect(report?.message).toBe('TypeError: x is undefined')
    expect(report?.stack).toContain('x is undefined')
    expect(report?.path).toBe('/library/abc')
    expect(report?.user_agent).toBe('TestBrowser/1.0')
    expect(typeof report?.release).toBe('string')
  })

  it('reports unhandled rejections, each distinct error once and a few per page at most', () => {
    const page = fakeWindow('/')
    const sent: ClientErrorReport[] = []
    const stop = installErrorReports(page, async (r) => {
      sent.push(r)
    })

    rejectIn(page, 'plain reason')
    rejectIn(page, 'plain reason')
    rejectIn(page, { not: 'an error' })
    for (let i = 0; i < 10; i++) throwIn(page, new Error(`loop ${i}`))
    stop()
    throwIn(page, new Error('after stop'))

    expect(sent).toHaveLength(MAX_REPORTS_PER_PAGE)
    expect(sent[0]?.message).toBe('plain reason')
    expect(sent[1]?.message).toBe('Unhandled promise rejection')
    expect(sent[2]?.message).toBe('Error: loop 0')
  })
})

describe('reportClientError', () => {
  it('posts the report with keepalive and swallows a refusal', async () => {
    const fetchMock = stubFetch({
      '/api/client-errors': () =>
        new Response(JSON.stringify({ error: { code: 'rate_limited', message: 'Too many' } }), {
          status: 429,
          headers: { 'Content-Type': 'application/json', 'Retry-After': '6' },
        }),
    })

    await expect(reportClientError({ message: 'm', path: '/' })).resolves.toBeUndefined()

    const init = fetchMock.mock.calls[0]?.[1]
    expect(init?.method).toBe('POST')
    expect(init?.keepalive).toBe(true)
    expect(sentJson(init)).toEqual({ message: 'm', path: '/' })
  })

  it('swallows a network failure', async () => {
    vi.stubGlobal('fetch', vi.fn().mockRejectedValue(new TypeError('offline')))
    await expect(reportClientError({ message: 'm', path: '/' })).resolves.toBeUndefined()
  })
})
