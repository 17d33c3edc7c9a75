import { act, fireEvent, screen, waitFor, within } from '@testing-library/react'
import userEvent from '@testing-library/user-event'
import { afterEach, describe, expect, it, vi } from 'vitest'
import type { Transcription } from '../api.ts'
import { TRANSCRIPT_POLL_MS } from '../lib/transcript.ts'
import { transcription } from '../test/fixtures.ts'
import { errorResponse, jsonResponse, stubFetch } from '../test/http.ts'
import { USER, renderAt } from '../test/render.tsx'

const done = transcription({ id: 'T2', title: 'interview.wav' })
const older = transcription({ id: 'T1', title: 'lecture.mp3', created_at: '2026-02-01T09:00:00Z' })
const queued = transcription({
  id: 'T3',
  title: 'talk.wav',
  status: 'queued',
  progress: 0,
  downloads: null,
  transcript: null,
})

const recording = () => new File([new Uint8Array([82, 73, 70, 70, 0, 0, 0, 0])], 'talk.wav', { type: 'audio/wav' })

function dropZone(): HTMLElement {
  return screen.getByText('Drop a recording here, or').closest('.dropzone') as HTMLElement
}

describe('transcripts', () => {
  afterEach(() => {
    vi.useRealTimers()
  })

  it('has its own entry in the navigation', async () => {
    stubFetch({
      '/api/me': () => jsonResponse(200, USER),
      '/api/audios': () => jsonResponse(200, { items: [], next_cursor: null }),
      '/api/transcriptions': () => jsonResponse(200, { items: [], next_cursor: null }),
    })

    renderAt('/library')
    const user = userEvent.setup()
    await user.click(await screen.findByRole('link', { name: 'Transcripts' }))

    expect(await screen.findByRole('heading', { name: 'Transcripts', level: 1 }, { timeout: 5000 })).toBeInTheDocument()
    expect(screen.getByRole('link', { name: 'Transcripts' })).toHaveAttribute('aria-current', 'page')
    expect(
      await screen.findByText('No transcripts yet. Drop a recording above, or transcribe an audio in the library.'),
    ).toBeInTheDocument()
  })

  it('sends a dropped recording as a multipart form with the chosen options and lists it', async () => {
    let items: Transcription[] = [done]
    const sent: FormData[] = []
    stubFetch({
      '/api/me': () => jsonResponse(200, USER),
      '/api/transcriptions': (init) => {
        if (init?.method === 'POST') {
          sent.push(init.body as FormData)
          items = [queued, done]
          return jsonResponse(202, queued)
        }
        return jsonResponse(200, { items, next_cursor: null })
      },
      '/api/transcriptions/T3': () => jsonResponse(200, queued),
    })
    const user = userEvent.setup()

    renderAt('/transcripts')
    await screen.findByText('interview.wav')
    await user.selectOptions(screen.getByLabelText('Speech recognition'), 'ElevenLabs Scribe')
    await user.type(screen.getByLabelText('Language (optional)'), 'en')
    await user.click(screen.getByLabelText('Tell speakers apart'))
    fireEvent.drop(dropZone(), { dataTransfer: { files: [recording()], types: ['Files'] } })

    const item = (await screen.findByRole('link', { name: 'talk.wav' })).closest('li') as HTMLElement
    expect(within(item).getByText('Queued', { selector: '.badge' })).toBeInTheDocument()
    expect(within(item).getByRole('progressbar', { name: 'Transcription progress' })).toHaveAttribute('aria-valuenow', '0')
    expect(sent).toHaveLength(1)
    const form = sent[0] as FormData
    expect((form.get('file') as File).name).toBe('talk.wav')
    expect(form.get('provider')).toBe('elevenlabs')
    expect(form.get('language')).toBe('en')
    expect(form.get('speakers')).toBe('true')
  })

  it('offers the engine on this machine when the server lists it, and says why when it cannot run', async () => {
    const sent: FormData[] = []
    let whisper = { id: 'whisper', kind: 'asr', available: true, detail: 'whisper:base (f16)' }
    stubFetch({
      '/api/me': () => jsonResponse(200, USER),
      '/api/providers': () =>
        jsonResponse(200, [{ id: 'local', kind: 'tts', available: true, detail: 'espeak-ng 1.51' }, whisper]),
      '/api/transcriptions': (init) => {
        if (init?.method === 'POST') {
          sent.push(init.body as FormData)
          return jsonResponse(202, queued)
        }
        return jsonResponse(200, { items: [], next_cursor: null })
      },
    })
    const user = userEvent.setup()

    const { unmount } = renderAt('/transcripts')
    const option = await screen.findByRole('option', { name: 'On this machine (Whisper)' })
    expect(option).toBeEnabled()
    await user.selectOptions(screen.getByLabelText('Speech recognition'), 'On this machine (Whisper)')
    await user.upload(screen.getByLabelText('Choose a file', { selector: 'input' }), recording())
    await waitFor(() => expect(sent).toHaveLength(1))
    expect((sent[0] as FormData).get('provider')).toBe('whisper')
    unmount()

    whisper = { ...whisper, available: false, detail: 'no Whisper model is installed' }
    renderAt('/transcripts')
    expect(
      await screen.findByRole('option', {
        name: 'On this machine (Whisper) (not available: no Whisper model is installed)',
      }),
    ).toBeDisabled()
  })

  it('does not offer the engine on this machine when the server has none', async () => {
    const fetchMock = stubFetch({
      '/api/me': () => jsonResponse(200, USER),
      '/api/providers': () => jsonResponse(200, [{ id: 'local', kind: 'tts', available: true, detail: 'espeak-ng 1.51' }]),
      '/api/transcriptions': () => jsonResponse(200, { items: [], next_cursor: null }),
    })

    renderAt('/transcripts')
    await screen.findByRole('option', { name: 'Tencent Cloud ASR' })
    await waitFor(() => expect(fetchMock.mock.calls.some(([url]) => String(url).includes('/api/providers'))).toBe(true))
    await act(async () => {})
    expect(within(screen.getByLabelText('Speech recognition')).getAllByRole('option')).toHaveLength(4)
    expect(screen.queryByRole('option', { name: /On this machine/ })).not.toBeInTheDocument()
  })

  it('sends a chosen file with the server defaults, leaving the options out', async () => {
    const sent: FormData[] = []
    stubFetch({
      '/api/me': () => jsonResponse(200, USER),
      '/api/transcriptions': (init) => {
        if (init?.method === 'POST') {
          sent.push(init.body as FormData)
          return jsonResponse(202, queued)
        }
        return jsonResponse(200, { items: [], next_cursor: null })
      },
    })
    const user = userEvent.setup()

    renderAt('/transcripts')
    await screen.findByRole('button', { name: 'Choose a file' })
    await user.upload(screen.getByLabelText('Choose a file', { selector: 'input' }), recording())

    await waitFor(() => expect(sent).toHaveLength(1))
    const form = sent[0] as FormData
    expect((form.get('file') as File).name).toBe('talk.wav')
    expect([...form.keys()]).toEqual(['file'])
  })

  it('shows why an upload was refused', async () => {
    stubFetch({
      '/api/me': () => jsonResponse(200, USER),
      '/api/transcriptions': (init) =>
        init?.method === 'POST'
          ? errorResponse(413, 'payload_too_large', 'The recording is over 200 MiB')
          : jsonResponse(200, { items: [], next_cursor: null }),
    })

    renderAt('/transcripts')
    await screen.findByText('Drop a recording here, or')
    fireEvent.drop(dropZone(), { dataTransfer: { files: [recording()], types: ['Files'] } })

    const alert = await screen.findByRole('alert')
    expect(alert).toHaveTextContent('That is too large.')
    expect(alert).toHaveTextContent('The recording is over 200 MiB')
  })

  it('searches the transcripts’ text and loads more with the cursor', async () => {
    const queries: URLSearchParams[] = []
    stubFetch({
      '/api/me': () => jsonResponse(200, USER),
      '/api/transcriptions': (_init, url) => {
        queries.push(url.searchParams)
        if (url.searchParams.get('q') === 'welcome') return jsonResponse(200, { items: [older], next_cursor: null })
        if (url.searchParams.get('cursor') === 'c2') return jsonResponse(200, { items: [older], next_cursor: null })
        return jsonResponse(200, { items: [done], next_cursor: 'c2' })
      },
    })
    const user = userEvent.setup()

    renderAt('/transcripts')
    await screen.findByText('interview.wav')
    await user.click(screen.getByRole('button', { name: 'Load more' }))
    await screen.findByText('lecture.mp3')
    expect(queries.at(-1)?.get('cursor')).toBe('c2')

    await user.type(screen.getByLabelText('Search transcripts'), 'welcome')
    await waitFor(() => expect(screen.queryByText('interview.wav')).not.toBeInTheDocument())
    expect(screen.getByText('lecture.mp3')).toBeInTheDocument()
    expect(queries.at(-1)?.get('q')).toBe('welcome')
    expect(queries.at(-1)?.get('cursor')).toBeNull()
  })

  it('says when no transcript matches the search', async () => {
    stubFetch({
      '/api/me': () => jsonResponse(200, USER),
      '/api/transcriptions': (_init, url) =>
        jsonResponse(200, { items: url.searchParams.get('q') === null ? [done] : [], next_cursor: null }),
    })
    const user = userEvent.setup()

    renderAt('/transcripts')
    await screen.findByText('interview.wav')
    await user.type(screen.getByLabelText('Search transcripts'), 'nowhere')

    expect(await screen.findByText('No transcript contains this text.')).toBeInTheDocument()
  })

  it('follows a running transcript until it is done', async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true })
    let current: Transcription = { ...queued, status: 'running', progress: 0.2 }
    stubFetch({
      '/api/me': () => jsonResponse(200, USER),
      '/api/transcriptions': () => jsonResponse(200, { items: [current, done], next_cursor: null }),
      '/api/transcriptions/T3': () => jsonResponse(200, current),
    })

    renderAt('/transcripts')
    const item = (await screen.findByRole('link', { name: 'talk.wav' })).closest('li') as HTMLElement
    const progress = within(item).getByRole('progressbar', { name: 'Transcription progress' })
    expect(progress).toHaveAttribute('aria-valuenow', '20')
    expect(within(item).getByText('Transcribing', { selector: '.badge' })).toBeInTheDocument()

    current = { ...current, progress: 0.6 }
    await act(() => vi.advanceTimersByTimeAsync(TRANSCRIPT_POLL_MS))
    await waitFor(() => expect(progress).toHaveAttribute('aria-valuenow', '60'))

    current = transcription({ id: 'T3', title: 'talk.wav' })
    await act(() => vi.advanceTimersByTimeAsync(TRANSCRIPT_POLL_MS))
    await waitFor(() => expect(within(item).getByText('Ready', { selector: '.badge' })).toBeInTheDocument())
    expect(within(item).queryByRole('progressbar')).not.toBeInTheDocument()
  })

  it('shows why a transcript failed', async () => {
    const failed = transcription({
      id: 'T4',
      title: 'noise.ogg',
      status: 'failed',
      downloads: null,
      transcript: null,
      error: { code: 'provider_error', message: 'ElevenLabs rejected the API key' },
    })
    stubFetch({
      '/api/me': () => jsonResponse(200, USER),
      '/api/transcriptions': () => jsonResponse(200, { items: [failed], next_cursor: null }),
    })

    renderAt('/transcripts')

    expect(await screen.findByText(/ElevenLabs rejected the API key/)).toBeInTheDocument()
    expect(screen.getByText('Failed', { selector: '.badge' })).toBeInTheDocument()
  })

  it('deletes only after confirmation', async () => {
    const deleted: string[] = []
    stubFetch({
      '/api/me': () => jsonResponse(200, USER),
      '/api/transcriptions': () => jsonResponse(200, { items: [done], next_cursor: null }),
      '/api/transcriptions/T2': (init) => {
        if (init?.method === 'DELETE') deleted.push('T2')
        return new Response(null, { status: 204 })
      },
    })
    const user = userEvent.setup()

    renderAt('/transcripts')
    await user.click(await screen.findByRole('button', { name: 'Delete' }))
    const question = 'Delete the transcript “interview.wav”?'
    await user.click(within(screen.getByRole('group', { name: question })).getByRole('button', { name: 'Cancel' }))
    expect(deleted).toEqual([])

    await user.click(screen.getByRole('button', { name: 'Delete' }))
    await user.click(within(screen.getByRole('group', { name: question })).getByRole('button', { name: 'Delete' }))

    await waitFor(() => expect(screen.queryByText('interview.wav')).not.toBeInTheDocument())
    expect(deleted).toEqual(['T2'])
  })
})
