// Fake server answers for tests: stubs global fetch with a per-path handler table.

import { vi } from 'vitest'

export function jsonResponse(status: number, body: unknown, headers: Record<string, string> = {}) {
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'Content-Type': 'application/json', ...headers },
  })
}

/** The server's error shape with its status. */
export function errorResponse(status: number, code: string, message: string, headers: Record<string, string> = {}) {
  return jsonResponse(status, { error: { code, message, details: null } }, headers)
}

type Handler = (init: RequestInit | undefined, url: URL) => Response | Promise<Response>

/**
 * Routes each fetch by its path (the query is left to the handler, which gets the URL);
 * an unknown path fails the test loudly.
 */
export function stubFetch(routes: Record<string, Handler>) {
  const fetchMock = vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
    const raw = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url
    const url = new URL(raw, 'http://localhost')
    const handler = routes[url.pathname]
    if (handler === undefined) throw new Error(`unexpected fetch to ${url.pathname}`)
    return handler(init, url)
  })
  vi.stubGlobal('fetch', fetchMock)
  return fetchMock
}

/** The parsed JSON body a call sent. */
export function sentJson(init: RequestInit | undefined): unknown {
  return typeof init?.body === 'string' ? JSON.parse(init.body) : undefined
}
