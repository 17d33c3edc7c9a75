import { act, screen, waitFor, within } from '@testing-library/react'
import userEvent from '@testing-library/user-event'
import { afterEach, describe, expect, it, vi } from 'vitest'
import type { Transcription } from '../api.ts'
import { TRANSCRIPT_POLL_MS } from '../lib/transcript.ts'
import { FakeEventSource, streamFor, stubEventSource } from '../test/eventsource.ts'
import { audio, transcription } from '../test/fixtures.ts'
import { errorResponse, jsonResponse, sentJson, stubFetch } from '../test/http.ts'
import { USER, renderAt } from '../test/render.tsx'

const first = audio({ id: 'A3', title: 'Morning news' })
const failed = audio({
  id: 'A2',
  title: 'Long story',
  status: 'failed',
  error: { code: 'provider_error', message: 'OpenAI rejected the API key' },
  file_url: null,
})
const older = audio({ id: 'A1', title: 'First try', created_at: '2026-02-01T10:00:00Z' })

describe('library', () => {
  it('lists newest first, loads more with the cursor and searches', async () => {
    const queries: URLSearchParams[] = []
    stubFetch({
      '/api/me': () => jsonResponse(200, USER),
      '/api/audios': (_init, url) => {
        queries.push(url.searchParams)
        if (url.searchParams.get('q') === 'first') return jsonResponse(200, { items: [older], next_cursor: null })
        if (url.searchParams.get('cursor') === 'c2') return jsonResponse(200, { items: [older], next_cursor: null })
        return jsonResponse(200, { items: [first, failed], next_cursor: 'c2' })
      },
    })
    const user = userEvent.setup()

    renderAt('/library')

    const titles = async () =>
      (await screen.findAllByRole('listitem')).map((li) => within(li).queryByRole('heading')?.textContent)
    expect(await titles()).toEqual(['Morning news', 'Long story'])
    await user.click(screen.getByRole('button', { name: 'Load more' }))
    await screen.findByText('First try')
    expect(await titles()).toEqual(['Morning news', 'Long story', 'First try'])
    expect(screen.queryByRole('button', { name: 'Load more' })).not.toBeInTheDocument()

    await user.type(screen.getByLabelText('Search'), 'first')
    await vi.waitFor(() => expect(screen.queryByText('Morning news')).not.toBeInTheDocument())
    expect(queries.at(-1)?.get('q')).toBe('first')
    expect(queries.at(-1)?.get('cursor')).toBeNull()
  })

  it('filters by kind and status', async () => {
    const queries: URLSearchParams[] = []
    stubFetch({
      '/api/me': () => jsonResponse(200, USER),
      '/api/audios': (_init, url) => {
        queries.push(url.searchParams)
        return jsonResponse(200, { items: [], next_cursor: null })
      },
    })
    const user = userEvent.setup()

    renderAt('/library')
    await screen.findByText('Nothing here yet. Generate speech in the Studio.')
    await user.selectOptions(screen.getByLabelText('Kind'), 'Podcast')
    await user.selectOptions(screen.getByLabelText('Status'), 'Failed')

    await screen.findByText('Nothing matches these filters.')
    expect(queries.at(-1)?.get('kind')).toBe('podcast')
    expect(queries.at(-1)?.get('status')).toBe('failed')
  })

  it('shows the error of a failed audio and retries it', async () => {
    stubFetch({
      '/api/me': () => jsonResponse(200, USER),
      '/api/audios': () => jsonResponse(200, { items: [failed], next_cursor: null }),
      '/api/audios/A2/retry': () => jsonResponse(200, { ...failed, status: 'succeeded', error: null, file_url: '/api/audios/A2/file' }),
    })
    const user = userEvent.setup()

    renderAt('/library')

    expect(await screen.findByText(/OpenAI rejected the API key/)).toBeInTheDocument()
    await user.click(screen.getByRole('button', { name: 'Retry' }))
    expect(await screen.findByText('Ready', { selector: '.badge' })).toBeInTheDocument()
    expect(screen.queryByText(/OpenAI rejected the API key/)).not.toBeInTheDocument()
  })

  it('renames in place', async () => {
    stubFetch({
      '/api/me': () => jsonResponse(200, USER),
      '/api/audios': () => jsonResponse(200, { items: [first], next_cursor: null }),
      '/api/audios/A3': (init) => {
        expect(init?.method).toBe('PATCH')
        return jsonResponse(200, { ...first, ...(sentJson(init) as object) })
      },
    })
    const user = userEvent.setup()

    renderAt('/library')
    await user.click(await screen.findByRole('button', { name: 'Rename' }))
    const input = screen.getByLabelText('New title')
    await user.clear(input)
    await user.type(input, 'Evening news{Enter}')

    expect(await screen.findByRole('heading', { name: 'Evening news' })).toBeInTheDocument()
  })

  it('deletes only after confirmation', async () => {
    const deleted: string[] = []
    stubFetch({
      '/api/me': () => jsonResponse(200, USER),
      '/api/audios': () => jsonResponse(200, { items: [first], next_cursor: null }),
      '/api/audios/A3': (init) => {
        if (init?.method === 'DELETE') deleted.push('A3')
        return new Response(null, { status: 204 })
      },
    })
    const user = userEvent.setup()

    renderAt('/library')
    await user.click(await screen.findByRole('button', { name: 'Delete' }))
    const ask = screen.getByRole('group', { name: 'Delete “Morning news”?' })
    await user.click(within(ask).getByRole('button', { name: 'Cancel' }))
    expect(deleted).toEqual([])

    await user.click(screen.getByRole('button', { name: 'Delete' }))
    await user.click(within(screen.getByRole('group', { name: 'Delete “Morning news”?' })).getByRole('button', { name: 'Delete' }))

    await vi.waitFor(() => expect(screen.queryByText('Morning news')).not.toBeInTheDocument())
    expect(deleted).toEqual(['A3'])
  })

  it('copies a signed share link and offers the download', async () => {
    stubFetch({
      '/api/me': () => jsonResponse(200, USER),
      '/api/audios': () => jsonResponse(200, { items: [first], next_cursor: null }),
      '/api/audios/A3/share': () => jsonResponse(200, { url: '/media/A3?exp=1&sig=abc', expires_at: '2026-04-01T00:00:00Z' }),
    })
    const user = userEvent.setup()
    // user-event puts its own clipboard on navigator; watch what lands there.
    const writeText = vi.spyOn(navigator.clipboard, 'writeText')

    renderAt('/library')
    await user.click(await screen.findByRole('button', { name: 'Copy share link' }))

    expect(await screen.findByText('Copied')).toBeInTheDocument()
    expect(writeText).toHaveBeenCalledWith(`${window.location.origin}/media/A3?exp=1&sig=abc`)
    expect(screen.getByRole('link', { name: 'Download' })).toHaveAttribute('href', '/api/audios/A3/file?download=1')
  })

  it('follows a few running audios live and passes the slot on when one finishes', async () => {
    stubEventSource()
    const running = ['R1', 'R2', 'R3', 'R4'].map((id) =>
      audio({ id, title: `Job ${id}`, status: 'running', progress: 0.1, file_url: null }),
    )
    stubFetch({
      '/api/me': () => jsonResponse(200, USER),
      '/api/audios': () => jsonResponse(200, { items: running, next_cursor: null }),
      '/api/audios/R1': () => jsonResponse(200, audio({ id: 'R1', title: 'Job R1' })),
      '/api/audios/R1/peaks': () => jsonResponse(200, { sample_rate: 1, duration_ms: 1500, peaks: [1] }),
    })

    renderAt('/library')
    await screen.findByText('Job R4')

    // The streams open in an effect after the list renders.
    await waitFor(() =>
      expect(FakeEventSource.instances.map((s) => s.url)).toEqual([
        '/api/audios/R1/events',
        '/api/audios/R2/events',
        '/api/audios/R3/events',
      ]),
    )
    const r1 = screen.getByText('Job R1').closest('li') as HTMLElement
    act(() => streamFor('/api/audios/R1/events').status({ status: 'running', progress: 0.6 }))
    expect(within(r1).getByRole('progressbar')).toHaveAttribute('aria-valuenow', '60')

    act(() => streamFor('/api/audios/R1/events').status({ status: 'succeeded', progress: 1 }))
    expect(await within(r1).findByRole('button', { name: 'Play: Job R1' })).toBeInTheDocument()
    await vi.waitFor(() => expect(streamFor('/api/audios/R4/events')).toBeDefined())
  })

  it('loads the next page by itself when the end of the list scrolls into view', async () => {
    const seen: IntersectionObserverCallback[] = []
    vi.stubGlobal(
      'IntersectionObserver',
      class {
        constructor(callback: IntersectionObserverCallback) {
          seen.push(callback)
        }
        observe() {}
        disconnect() {}
      },
    )
    stubFetch({
      '/api/me': () => jsonResponse(200, USER),
      '/api/audios': (_init, url) =>
        url.searchParams.get('cursor') === 'c2'
          ? jsonResponse(200, { items: [older], next_cursor: null })
          : jsonResponse(200, { items: [first], next_cursor: 'c2' }),
    })

    renderAt('/library')
    await screen.findByText('Morning news')
    act(() => seen.at(-1)?.([{ isIntersecting: true } as IntersectionObserverEntry], {} as IntersectionObserver))

    expect(await screen.findByText('First try')).toBeInTheDocument()
  })

  it('transcribes an audio and opens its transcript', async () => {
    const posted: unknown[] = []
    const queued = transcription({
      id: 'T7',
      title: 'Morning news',
      source: 'audio',
      audio_id: 'A3',
      status: 'queued',
      progress: 0,
      downloads: null,
      transcript: null,
      recording_url: '/api/audios/A3/file',
    })
    stubFetch({
      '/api/me': () => jsonResponse(200, USER),
      '/api/audios': () => jsonResponse(200, { items: [first, failed], next_cursor: null }),
      '/api/transcriptions': (init) => {
        expect(init?.method).toBe('POST')
        posted.push(sentJson(init))
        return jsonResponse(202, queued)
      },
      '/api/transcriptions/T7': () => jsonResponse(200, queued),
    })
    const user = userEvent.setup()

    renderAt('/library')
    await screen.findByText('Long story')
    // Only finished audios can be heard.
    expect(screen.getAllByRole('button', { name: /^Transcribe/ })).toHaveLength(1)
    await user.click(screen.getByRole('button', { name: 'Transcribe: Morning news' }))

    // The transcript page is its own chunk, loaded on the way.
    expect(await screen.findByRole('heading', { name: 'Morning news', level: 1 }, { timeout: 5000 })).toBeInTheDocument()
    expect(window.location.pathname).toBe('/transcripts/T7')
    expect(posted).toEqual([{ audio_id: 'A3' }])
    expect(screen.getByRole('progressbar', { name: 'Transcription progress' })).toBeInTheDocument()
  })

  it('shows why an audio could not be transcribed and stays', async () => {
    stubFetch({
      '/api/me': () => jsonResponse(200, USER),
      '/api/audios': () => jsonResponse(200, { items: [first], next_cursor: null }),
      '/api/transcriptions': () =>
        errorResponse(503, 'provider_unavailable', 'No speech recognition provider is enabled'),
    })
    const user = userEvent.setup()

    renderAt('/library')
    await user.click(await screen.findByRole('button', { name: 'Transcribe: Morning news' }))

    expect(await screen.findByText(/No speech recognition provider is enabled/)).toBeInTheDocument()
    expect(window.location.pathname).toBe('/library')
    expect(screen.getByRole('button', { name: 'Transcribe: Morning news' })).toBeEnabled()
  })

  describe('with transcripts', () => {
    afterEach(() => {
      vi.useRealTimers()
    })

    const heard = audio({ id: 'A5', title: 'Evening news', transcript: { id: 'T9', status: 'succeeded' } })

    it('opens the transcript of an audio that has one instead of transcribing it again', async () => {
      stubFetch({
        '/api/me': () => jsonResponse(200, USER),
        '/api/audios': () => jsonResponse(200, { items: [heard, first], next_cursor: null }),
        '/api/transcriptions/T9': () =>
          jsonResponse(200, transcription({ id: 'T9', title: 'Evening news', source: 'audio', audio_id: 'A5' })),
        '/api/audios/A5/peaks': () => jsonResponse(200, { sample_rate: 24000, duration_ms: 1500, peaks: [0.1, 0.5] }),
      })
      const user = userEvent.setup()

      renderAt('/library')
      const open = await screen.findByRole('link', { name: 'Open transcript: Evening news' })
      expect(open).toHaveAttribute('href', '/transcripts/T9')
      expect(screen.queryByRole('button', { name: 'Transcribe: Evening news' })).not.toBeInTheDocument()
      // An audio without a transcript is still offered one.
      expect(screen.getByRole('button', { name: 'Transcribe: Morning news' })).toBeEnabled()
      expect(screen.queryByRole('link', { name: /^Open transcript: Morning news/ })).not.toBeInTheDocument()

      await user.click(open)
      expect(await screen.findByRole('heading', { name: 'Evening news', level: 1 }, { timeout: 5000 })).toBeInTheDocument()
      expect(window.location.pathname).toBe('/transcripts/T9')
    })

    it('follows a transcript being made and offers to open it once it is heard', async () => {
      vi.useFakeTimers({ shouldAdvanceTime: true })
      const making = audio({ id: 'A5', title: 'Evening news', transcript: { id: 'T9', status: 'running' } })
      let current: Transcription = transcription({
        id: 'T9',
        title: 'Evening news',
        source: 'audio',
        audio_id: 'A5',
        status: 'running',
        progress: 0.4,
        downloads: null,
        transcript: null,
      })
      const asked: string[] = []
      stubFetch({
        '/api/me': () => jsonResponse(200, USER),
        '/api/audios': () => jsonResponse(200, { items: [making, first], next_cursor: null }),
        '/api/transcriptions/T9': (_init, url) => {
          asked.push(url.pathname)
          return jsonResponse(200, current)
        },
      })

      renderAt('/library')
      const following = await screen.findByRole('link', { name: 'Transcribing…: Evening news' })
      expect(following).toHaveAttribute('href', '/transcripts/T9')
      expect(screen.queryByRole('button', { name: 'Transcribe: Evening news' })).not.toBeInTheDocument()

      await act(() => vi.advanceTimersByTimeAsync(TRANSCRIPT_POLL_MS))
      await waitFor(() => expect(asked).toHaveLength(1))
      expect(screen.getByRole('link', { name: 'Transcribing…: Evening news' })).toBeInTheDocument()

      current = transcription({ id: 'T9', title: 'Evening news', source: 'audio', audio_id: 'A5' })
      await act(() => vi.advanceTimersByTimeAsync(TRANSCRIPT_POLL_MS))
      const open = await screen.findByRole('link', { name: 'Open transcript: Evening news' })
      expect(open).toHaveAttribute('href', '/transcripts/T9')
      expect(screen.queryByRole('link', { name: 'Transcribing…: Evening news' })).not.toBeInTheDocument()

      // Done: nothing more is asked.
      const polls = asked.length
      await act(() => vi.advanceTimersByTimeAsync(TRANSCRIPT_POLL_MS * 3))
      expect(asked).toHaveLength(polls)
    })

    it('offers to transcribe again when the newest transcript failed', async () => {
      const fell = audio({ id: 'A5', title: 'Evening news', transcript: { id: 'T9', status: 'failed' } })
      const posted: unknown[] = []
      stubFetch({
        '/api/me': () => jsonResponse(200, USER),
        '/api/audios': () => jsonResponse(200, { items: [fell], next_cursor: null }),
        '/api/transcriptions': (init) => {
          posted.push(sentJson(init))
          return errorResponse(503, 'provider_unavailable', 'No speech recognition provider is enabled')
        },
      })
      const user = userEvent.setup()

      renderAt('/library')
      await user.click(await screen.findByRole('button', { name: 'Transcribe: Evening news' }))
      expect(await screen.findByText(/No speech recognition provider is enabled/)).toBeInTheDocument()
      expect(posted).toEqual([{ audio_id: 'A5' }])
      expect(screen.queryByRole('link', { name: /transcript: Evening news/ })).not.toBeInTheDocument()
    })
  })
})
