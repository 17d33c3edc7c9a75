import { act, fireEvent, screen, waitFor, within } from '@testing-library/react'
import userEvent from '@testing-library/user-event'
import { afterEach, describe, expect, it, vi } from 'vitest'
import type { Transcription } from '../api.ts'
import { TRANSCRIPT_POLL_MS } from '../lib/transcript.ts'
import { transcription } from '../test/fixtures.ts'
import { errorResponse, jsonResponse, stubFetch } from '../test/http.ts'
import { USER, renderAt } from '../test/render.tsx'

const done = transcription({ id: 'T2', title: 'interview.wav' })

function stubTranscript(answer: () => Transcription, routes: Parameters<typeof stubFetch>[0] = {}) {
  return stubFetch({
    '/api/me': () => jsonResponse(200, USER),
    '/api/transcriptions/T2': () => jsonResponse(200, answer()),
    ...routes,
  })
}

/** The player's media element, with a position the test controls (jsdom plays nothing). */
async function player(): Promise<HTMLAudioElement> {
  const element = (await screen.findByLabelText('Player: interview.wav')) as HTMLAudioElement
  Object.defineProperty(element, 'currentTime', { value: 0, writable: true, configurable: true })
  return element
}

function playAt(element: HTMLAudioElement, seconds: number) {
  element.currentTime = seconds
  fireEvent.timeUpdate(element)
}

const word = (text: string) => screen.getByRole('button', { name: text })
const highlighted = () =>
  screen.queryAllByRole('button').filter((b) => b.classList.contains('word') && b.getAttribute('aria-current') === 'true')

describe('a transcript', () => {
  afterEach(() => {
    vi.useRealTimers()
  })

  it('shows the segments with their speakers and times beside the recording', async () => {
    stubTranscript(() => done)

    renderAt('/transcripts/T2')

    expect(await screen.findByRole('heading', { name: 'interview.wav', level: 1 })).toBeInTheDocument()
    const audio = await player()
    expect(audio).toHaveAttribute('src', '/api/transcriptions/T2/recording')
    const text = screen.getByRole('region', { name: 'Transcript of interview.wav' })
    const segments = within(text).getAllByRole('listitem')
    expect(segments).toHaveLength(2)
    expect(segments[0]).toHaveTextContent('Speaker 1')
    expect(segments[0]).toHaveTextContent('Hello there.')
    expect(within(segments[0] as HTMLElement).getByRole('button', { name: 'Play from 0:00' })).toBeInTheDocument()
    expect(segments[1]).toHaveTextContent('Speaker 2')
    expect(within(segments[1] as HTMLElement).getByRole('button', { name: 'Play from 0:02' })).toBeInTheDocument()
    expect(within(segments[1] as HTMLElement).getAllByRole('button').map((b) => b.textContent)).toEqual([
      '0:02',
      'Welcome',
      'back.',
    ])
  })

  it('highlights the word being spoken as the recording plays, and none between words', async () => {
    stubTranscript(() => done)
    renderAt('/transcripts/T2')
    const audio = await player()
    expect(highlighted()).toEqual([])

    playAt(audio, 0.3)
    expect(highlighted()).toEqual([word('Hello')])

    playAt(audio, 2.1)
    expect(highlighted()).toEqual([word('Welcome')])
    const segments = within(screen.getByRole('region', { name: 'Transcript of interview.wav' })).getAllByRole('listitem')
    expect(segments[1]).toHaveAttribute('aria-current', 'true')
    expect(segments[0]).not.toHaveAttribute('aria-current')

    playAt(audio, 2.9)
    expect(highlighted()).toEqual([])

    playAt(audio, 3.5)
    expect(highlighted()).toEqual([word('back.')])
  })

  it('follows the position frame by frame while playing, and stops when paused', async () => {
    stubTranscript(() => done)
    renderAt('/transcripts/T2')
    const audio = await player()

    fireEvent.play(audio)
    audio.currentTime = 2.1
    await waitFor(() => expect(highlighted()).toEqual([word('Welcome')]))

    fireEvent.pause(audio)
    audio.currentTime = 0.3
    await new Promise((resolve) => window.setTimeout(resolve, 100))
    expect(highlighted()).toEqual([word('Welcome')])
  })

  it('plays from a word or a segment that is clicked', async () => {
    stubTranscript(() => done)
    const user = userEvent.setup()
    renderAt('/transcripts/T2')
    const audio = await player()
    const play = vi.mocked(HTMLMediaElement.prototype.play)
    play.mockClear()

    await user.click(word('back.'))
    expect(audio.currentTime).toBe(3)
    expect(play).toHaveBeenCalledTimes(1)
    expect(word('back.')).toHaveAttribute('aria-current', 'true')

    await user.click(screen.getByRole('button', { name: 'Play from 0:02' }))
    expect(audio.currentTime).toBe(2)
    expect(play).toHaveBeenCalledTimes(2)
    expect(highlighted()).toEqual([word('Welcome')])
  })

  it('moves between words with the arrow keys and plays from one with Enter', async () => {
    stubTranscript(() => done)
    const user = userEvent.setup()
    renderAt('/transcripts/T2')
    const audio = await player()

    // One word at a time is in the tab order.
    expect(word('Hello')).toHaveAttribute('tabindex', '0')
    expect(word('there.')).toHaveAttribute('tabindex', '-1')
    word('Hello').focus()
    await user.keyboard('{ArrowRight}')
    expect(word('there.')).toHaveFocus()
    await user.keyboard('{ArrowRight}')
    expect(word('Welcome')).toHaveFocus()
    expect(word('Welcome')).toHaveAttribute('tabindex', '0')
    expect(word('Hello')).toHaveAttribute('tabindex', '-1')
    await user.keyboard('{End}')
    expect(word('back.')).toHaveFocus()
    await user.keyboard('{ArrowRight}')
    expect(word('back.')).toHaveFocus()
    await user.keyboard('{Home}')
    expect(word('Hello')).toHaveFocus()
    await user.keyboard('{ArrowLeft}')
    expect(word('Hello')).toHaveFocus()

    await user.keyboard('{ArrowRight}{Enter}')
    expect(audio.currentTime).toBe(0.7)
    expect(word('there.')).toHaveAttribute('aria-current', 'true')
  })

  it('links every download to its format', async () => {
    stubTranscript(() => done)
    renderAt('/transcripts/T2')

    const link = async (name: string) => (await screen.findByRole('link', { name })).getAttribute('href')
    expect(await link('Download JSON')).toBe('/api/transcriptions/T2.json')
    expect(await link('Download SRT')).toBe('/api/transcriptions/T2.srt')
    expect(await link('Download VTT')).toBe('/api/transcriptions/T2.vtt')
    expect(await link('Download text')).toBe('/api/transcriptions/T2.txt')
  })

  it('plays a library audio’s transcript from the audio’s file, with its waveform', async () => {
    const fromLibrary = transcription({
      id: 'T2',
      title: 'interview.wav',
      source: 'audio',
      audio_id: 'A1',
      recording_url: '/api/audios/A1/file',
    })
    const peaks: string[] = []
    stubTranscript(() => fromLibrary, {
      '/api/audios/A1/peaks': (_init, url) => {
        peaks.push(url.pathname)
        return jsonResponse(200, { sample_rate: 10, duration_ms: 4000, peaks: [0.2, 0.8, 0.5] })
      },
    })

    renderAt('/transcripts/T2')

    expect(await player()).toHaveAttribute('src', '/api/audios/A1/file')
    expect(await screen.findByRole('slider', { name: 'Position in interview.wav' })).toBeInTheDocument()
    expect(peaks).toEqual(['/api/audios/A1/peaks'])
  })

  it('shows the progress while the recording is heard, then the transcript', async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true })
    let current = transcription({ id: 'T2', status: 'running', progress: 0.25, downloads: null, transcript: null })
    stubTranscript(() => current)

    renderAt('/transcripts/T2')
    const progress = await screen.findByRole('progressbar', { name: 'Transcription progress' })
    expect(progress).toHaveAttribute('aria-valuenow', '25')
    expect(screen.queryByRole('link', { name: 'Download JSON' })).not.toBeInTheDocument()

    current = { ...current, progress: 0.75 }
    await act(() => vi.advanceTimersByTimeAsync(TRANSCRIPT_POLL_MS))
    await waitFor(() => expect(progress).toHaveAttribute('aria-valuenow', '75'))

    current = done
    await act(() => vi.advanceTimersByTimeAsync(TRANSCRIPT_POLL_MS))
    expect(await screen.findByRole('button', { name: 'Welcome' })).toBeInTheDocument()
    expect(screen.queryByRole('progressbar')).not.toBeInTheDocument()
    expect(screen.getByRole('link', { name: 'Download SRT' })).toBeInTheDocument()
  })

  it('says why a transcription failed', async () => {
    const failed = transcription({
      id: 'T2',
      status: 'failed',
      downloads: null,
      transcript: null,
      error: { code: 'provider_error', message: 'Tencent Cloud refused the signature' },
    })
    stubTranscript(() => failed)

    renderAt('/transcripts/T2')

    const alert = await screen.findByRole('alert')
    expect(alert).toHaveTextContent('Transcription failed')
    expect(alert).toHaveTextContent('Tencent Cloud refused the signature')
  })

  it('shows an unknown transcript as not found', async () => {
    stubFetch({
      '/api/me': () => jsonResponse(200, USER),
      '/api/transcriptions/T9': () => errorResponse(404, 'not_found', 'No such transcript'),
    })

    renderAt('/transcripts/T9')

    expect(await screen.findByRole('alert')).toBeInTheDocument()
    expect(screen.getByRole('link', { name: '← All transcripts' })).toHaveAttribute('href', '/transcripts')
  })

  it('deletes after confirmation and goes back to the list', async () => {
    const deleted: string[] = []
    stubFetch({
      '/api/me': () => jsonResponse(200, USER),
      '/api/transcriptions': () => jsonResponse(200, { items: [], next_cursor: null }),
      '/api/transcriptions/T2': (init) => {
        if (init?.method !== 'DELETE') return jsonResponse(200, done)
        deleted.push('T2')
        return new Response(null, { status: 204 })
      },
    })
    const user = userEvent.setup()

    renderAt('/transcripts/T2')
    await user.click(await screen.findByRole('button', { name: 'Delete' }))
    const ask = screen.getByRole('group', { name: 'Delete the transcript “interview.wav”?' })
    await user.click(within(ask).getByRole('button', { name: 'Delete' }))

    expect(await screen.findByRole('heading', { name: 'Transcripts', level: 1 }, { timeout: 5000 })).toBeInTheDocument()
    expect(deleted).toEqual(['T2'])
  })
})
