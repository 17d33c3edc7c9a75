// Fake server answers for tests: stubs global fetch with a per-path handler table.

import { vi } from 'vitest'

export function jsonResponse(status: number, body: unknown, headers: Record<string, string> = {}) {
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'Content-Type': 'application/json', ...headers },
  })
}

type Handler = (init: RequestInit | undefined) => Response | Promise<Response>

/** Routes each fetch by its path; an unknown path fails the test loudly. */
export function stubFetch(routes: Record<string, Handler>) {
  const fetchMock = vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
    const path = typeof input === 'string' ? input : input instanceof URL ? input.pathname : input.url
    const handler = routes[path]
    if (handler === undefined) throw new Error(`unexpected fetch to ${path}`)
    return handler(init)
  })
  vi.stubGlobal('fetch', fetchMock)
  return fetchMock
}
