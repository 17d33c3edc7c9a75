import { describe, expect, it, vi } from 'vitest'
import { ApiError, getHealth, getReadiness, request } from './api.ts'
import { jsonResponse, stubFetch } from './test/http.ts'

describe('request', () => {
  it('sends same-origin JSON requests and returns the parsed body', async () => {
    const fetchMock = stubFetch({
      '/api/echo': () => jsonResponse(200, { id: 'x' }),
    })

    const body = await request<{ id: string }>('/api/echo', { method: 'POST', json: { a: 1 } })

    expect(body).toEqual({ id: 'x' })
    const init = fetchMock.mock.calls[0]?.[1]
    expect(init?.credentials).toBe('same-origin')
    expect(init?.method).toBe('POST')
    expect(init?.body).toBe('{"a":1}')
    const headers = new Headers(init?.headers)
    expect(headers.get('Content-Type')).toBe('application/json')
    expect(headers.get('Accept')).toBe('application/json')
  })

  it('returns undefined for 204 No Content', async () => {
    stubFetch({ '/api/auth/logout': () => new Response(null, { status: 204 }) })

    await expect(request('/api/auth/logout', { method: 'POST' })).resolves.toBeUndefined()
  })

  it('parses the server error shape into an ApiError', async () => {
    stubFetch({
      '/api/audios': () =>
        jsonResponse(
          400,
          {
            error: {
              code: 'text_too_long',
              message: 'Text is longer than 5000 characters',
              details: { field: 'text', max: 5000 },
            },
          },
          { 'x-request-id': 'req-123' },
        ),
    })

    const error = await request('/api/audios', { method: 'POST', json: { text: 'x' } }).catch(
      (e: unknown) => e,
    )

    expect(error).toBeInstanceOf(ApiError)
    expect(error).toMatchObject({
      status: 400,
      code: 'text_too_long',
      message: 'Text is longer than 5000 characters',
      details: { field: 'text', max: 5000 },
      requestId: 'req-123',
    })
  })

  it('uses null details when the server sends none', async () => {
    stubFetch({
      '/api/me': () => jsonResponse(401, { error: { code: 'unauthenticated', message: 'Sign in' } }),
    })

    await expect(request('/api/me')).rejects.toMatchObject({
      status: 401,
      code: 'unauthenticated',
      message: 'Sign in',
      details: null,
    })
  })

  it('maps a failed fetch to network_error with status 0', async () => {
    vi.stubGlobal('fetch', vi.fn().mockRejectedValue(new TypeError('Failed to fetch')))

    const error = await getHealth().catch((e: unknown) => e)

    expect(error).toBeInstanceOf(ApiError)
    expect(error).toMatchObject({ status: 0, code: 'network_error', details: null })
  })

  it('lets an abort through instead of calling it a network error', async () => {
    vi.stubGlobal(
      'fetch',
      vi.fn().mockRejectedValue(new DOMException('The operation was aborted.', 'AbortError')),
    )

    const error = await getHealth().catch((e: unknown) => e)

    expect(error).not.toBeInstanceOf(ApiError)
    expect(error).toMatchObject({ name: 'AbortError' })
  })

  it('maps a non-JSON error body to internal with the response status', async () => {
    stubFetch({
      '/health': () =>
        new Response('<html><body>Internal Server Error</body></html>', {
          status: 500,
          headers: { 'Content-Type': 'text/html' },
        }),
    })

    const error = await getHealth().catch((e: unknown) => e)

    expect(error).toBeInstanceOf(ApiError)
    expect(error).toMatchObject({ status: 500, code: 'internal', details: null })
    expect((error as ApiError).message).toContain('500')
  })

  it('maps JSON that is not the error shape to internal', async () => {
    stubFetch({ '/health': () => jsonResponse(502, { oops: true }) })

    await expect(getHealth()).rejects.toMatchObject({ status: 502, code: 'internal' })
  })
})

describe('health', () => {
  it('getHealth calls GET /health and returns status and version', async () => {
    const fetchMock = stubFetch({
      '/health': () => jsonResponse(200, { status: 'ok', version: '0.3.1' }),
    })

    await expect(getHealth()).resolves.toEqual({ status: 'ok', version: '0.3.1' })
    expect(fetchMock).toHaveBeenCalledTimes(1)
    expect(fetchMock.mock.calls[0]?.[1]?.method).toBeUndefined()
  })

  it('getReadiness returns a 200 ok answer', async () => {
    const ready = { status: 'ok', checks: { database: true, storage: true } }
    stubFetch({ '/health/ready': () => jsonResponse(200, ready) })

    await expect(getReadiness()).resolves.toEqual(ready)
  })

  it('getReadiness returns a 503 degraded answer as data', async () => {
    const degraded = { status: 'degraded', checks: { database: true, storage: false } }
    stubFetch({ '/health/ready': () => jsonResponse(503, degraded) })

    await expect(getReadiness()).resolves.toEqual(degraded)
  })

  it('getReadiness still throws a 503 that carries the error shape', async () => {
    stubFetch({
      '/health/ready': () =>
        jsonResponse(503, { error: { code: 'overloaded', message: 'Try again later' } }),
    })

    await expect(getReadiness()).rejects.toMatchObject({
      status: 503,
      code: 'overloaded',
      message: 'Try again later',
    })
  })
})
