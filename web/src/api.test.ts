import { describe, expect, it, vi } from 'vitest'
import {
  ApiError,
  audioFileUrl,
  createAudio,
  generateScript,
  getHealth,
  getMe,
  getReadiness,
  listAudios,
  listTokens,
  login,
  previewVoice,
  request,
  setUnauthenticatedHandler,
  watchAudio,
} from './api.ts'
import type { Audio } from './api.ts'
import { FakeEventSource, streamFor, stubEventSource } from './test/eventsource.ts'
import { errorResponse, jsonResponse, stubFetch } from './test/http.ts'

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

describe('errors the app reacts to', () => {
  it('reads Retry-After seconds from a 429', async () => {
    stubFetch({
      '/api/audios': () =>
        jsonResponse(429, { error: { code: 'quota_exceeded', message: 'Quota used' } }, { 'Retry-After': '42' }),
    })

    await expect(createAudio({ text: 'hi', voice: 'local:en-us' })).rejects.toMatchObject({
      status: 429,
      code: 'quota_exceeded',
      retryAfter: 42,
    })
  })

  it('tells the session handler when a signed-in call answers 401 unauthenticated', async () => {
    const expired = vi.fn()
    setUnauthenticatedHandler(expired)
    stubFetch({ '/api/audios': () => errorResponse(401, 'unauthenticated', 'Session expired') })

    await expect(listAudios()).rejects.toMatchObject({ code: 'unauthenticated' })
    expect(expired).toHaveBeenCalledTimes(1)
    setUnauthenticatedHandler(null)
  })

  it('does not call a failed login or the first /api/me an expired session', async () => {
    const expired = vi.fn()
    setUnauthenticatedHandler(expired)
    stubFetch({
      '/api/auth/login': () => errorResponse(401, 'invalid_credentials', 'Wrong email or password'),
      '/api/me': () => errorResponse(401, 'unauthenticated', 'Sign in'),
    })

    await expect(login('a@b.c', 'nope')).rejects.toMatchObject({ code: 'invalid_credentials' })
    await expect(getMe()).rejects.toMatchObject({ code: 'unauthenticated' })
    expect(expired).not.toHaveBeenCalled()
    setUnauthenticatedHandler(null)
  })

  it('reads an error body from a call that expects bytes', async () => {
    stubFetch({
      '/api/voices/openai%3Aalloy/preview': () => errorResponse(503, 'provider_unavailable', 'OpenAI is not configured'),
    })

    await expect(previewVoice('openai:alloy')).rejects.toMatchObject({
      status: 503,
      code: 'provider_unavailable',
      message: 'OpenAI is not configured',
    })
  })
})

describe('endpoints', () => {
  it('lists audios with only the filters that are set, and the cursor', async () => {
    const fetchMock = stubFetch({ '/api/audios': () => jsonResponse(200, { items: [], next_cursor: null }) })

    await listAudios({ q: 'news', kind: '', status: 'failed', cursor: 'abc', limit: 20 })

    const url = new URL(String(fetchMock.mock.calls[0]?.[0]), 'http://x')
    expect(Object.fromEntries(url.searchParams)).toEqual({ q: 'news', status: 'failed', cursor: 'abc', limit: '20' })
  })

  it('escapes ids in paths', async () => {
    const fetchMock = stubFetch({ '/api/voices/local%3Aen-us/preview': () => new Response('ID3') })

    const blob = await previewVoice('local:en-us')

    expect(await blob.text()).toBe('ID3')
    expect(fetchMock.mock.calls[0]?.[1]?.method).toBe('POST')
  })

  it('accepts token lists as a bare array or as a page', async () => {
    const token = { id: 't1', name: 'ci', created_at: '2026-01-01T00:00:00Z' }
    stubFetch({ '/api/tokens': () => jsonResponse(200, [token]) })
    await expect(listTokens()).resolves.toEqual([token])

    stubFetch({ '/api/tokens': () => jsonResponse(200, { items: [token], next_cursor: null }) })
    await expect(listTokens()).resolves.toEqual([token])
  })

  it('flattens a script written in chapters into lines with chapter marks', async () => {
    stubFetch({
      '/api/podcasts/p1/scripts': () =>
        jsonResponse(200, {
          chapters: [
            { title: 'Intro', lines: [{ speaker: 'A', text: 'Hi' }, { speaker: 'B', text: 'Hello' }] },
            { title: 'End', lines: [{ speaker: 'A', text: 'Bye' }] },
          ],
        }),
    })

    const lines = await generateScript('p1', { source: { topic: 'x' }, speakers: [] })

    expect(lines).toEqual([
      { speaker: 'A', text: 'Hi', chapter: 'Intro' },
      { speaker: 'B', text: 'Hello' },
      { speaker: 'A', text: 'Bye', chapter: 'End' },
    ])
  })

  it('adds download=1 to the file URL for downloads', () => {
    const audio = { id: 'a1', file_url: '/api/audios/a1/file' } as Audio
    expect(audioFileUrl(audio)).toBe('/api/audios/a1/file')
    expect(audioFileUrl(audio, true)).toBe('/api/audios/a1/file?download=1')
    expect(audioFileUrl({ ...audio, file_url: '/media/a1?exp=1&sig=x' }, true)).toBe('/media/a1?exp=1&sig=x&download=1')
  })
})

describe('watchAudio', () => {
  it('passes status events on and closes the stream at a final state', () => {
    stubEventSource()
    const events: unknown[] = []

    watchAudio('a1', (event) => events.push(event))
    const stream = streamFor('/api/audios/a1/events')
    stream.status({ status: 'running', progress: 0.5 })
    stream.status({ status: 'succeeded', progress: 1 })
    stream.status({ status: 'running', progress: 0.9 })

    expect(events).toEqual([
      { status: 'running', progress: 0.5, error: null },
      { status: 'succeeded', progress: 1, error: null },
    ])
    expect(stream.readyState).toBe(FakeEventSource.CLOSED)
  })

  it('also reads status from unnamed events', () => {
    stubEventSource()
    const events: unknown[] = []

    watchAudio('a1', (event) => events.push(event))
    const stream = streamFor('/api/audios/a1/events')
    stream.message({ status: 'running', progress: 0.25, error: null })

    expect(events).toEqual([{ status: 'running', progress: 0.25, error: null }])
  })

  it('asks for the audio once when the stream dies, so the end is not missed', async () => {
    stubEventSource()
    stubFetch({
      '/api/audios/a1': () =>
        jsonResponse(200, { id: 'a1', status: 'failed', progress: 0.2, error: { code: 'x', message: 'boom' } }),
    })
    const events: unknown[] = []

    watchAudio('a1', (event) => events.push(event))
    streamFor('/api/audios/a1/events').fail()

    await vi.waitFor(() => expect(events).toEqual([{ status: 'failed', progress: 0.2, error: { code: 'x', message: 'boom' } }]))
  })
})
