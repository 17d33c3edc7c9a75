import { act, screen, within } from '@testing-library/react'
import userEvent from '@testing-library/user-event'
import { describe, expect, it } from 'vitest'
import { streamFor, stubEventSource } from '../test/eventsource.ts'
import { PROVIDERS, VOICES, audio } from '../test/fixtures.ts'
import { errorResponse, jsonResponse, sentJson, stubFetch } from '../test/http.ts'
import { USER, renderAt } from '../test/render.tsx'

const SHOW = {
  id: 'P1',
  title: 'Weekly',
  description: null,
  language: 'en',
  author: 'Ada',
  public: false,
  created_at: '2026-03-01T00:00:00Z',
}

function stubWizard(extra: Parameters<typeof stubFetch>[0]) {
  return stubFetch({
    '/api/me': () => jsonResponse(200, USER),
    '/api/podcasts/P1': () => jsonResponse(200, SHOW),
    '/api/voices': () => jsonResponse(200, VOICES),
    '/api/providers': () => jsonResponse(200, PROVIDERS),
    ...extra,
  })
}

const lineTexts = () =>
  screen.getAllByRole('group', { name: /^Line \d+$/ }).map((line) => ({
    speaker: (within(line).getByLabelText('Speaker') as HTMLSelectElement).value,
    text: (within(line).getByLabelText('Text') as HTMLTextAreaElement).value,
  }))

describe('episode wizard', () => {
  it('turns a pasted dialogue into an edited, rendered episode with chapters and subtitles', async () => {
    stubEventSource()
    let sent: unknown
    const rendered = audio({ id: 'EA1', kind: 'podcast', title: 'Pilot', status: 'queued', progress: 0 })
    stubWizard({
      '/api/podcasts/P1/episodes': (init) => {
        sent = sentJson(init)
        return jsonResponse(202, { id: 'E1', title: 'Pilot', audio: rendered, lines: [] })
      },
      '/api/audios/EA1': () => jsonResponse(200, { ...rendered, status: 'succeeded', progress: 1, duration_ms: 9000 }),
      '/api/audios/EA1/peaks': () => jsonResponse(200, { sample_rate: 10, duration_ms: 9000, peaks: [1, 2, 3] }),
      '/api/podcasts/P1/episodes/E1/chapters.json': () =>
        jsonResponse(200, { version: '1.2.0', chapters: [{ startTime: 0, title: 'Hello' }, { startTime: 4.5, title: 'News' }] }),
    })
    const user = userEvent.setup()

    renderAt('/podcasts/P1/new')
    await user.click(await screen.findByLabelText('A pasted dialogue'))
    await user.type(
      screen.getByLabelText('Dialogue'),
      '## Hello\nAlice: Hi Bob.\nBob：Hi Alice,\nnice to see you.\nAlice: Bye.',
    )
    expect(screen.getByText(/3 lines, 2 speakers: Alice, Bob/)).toBeInTheDocument()
    await user.click(screen.getByRole('button', { name: 'Next' }))

    // Speakers come from the dialogue; each gets a voice.
    await within(screen.getByLabelText('Voice for Alice')).findByRole('option', { name: 'Heart · en-US · High quality' })
    expect(screen.getByLabelText('Voice for Alice')).toHaveValue('kokoro:af_heart')
    expect(screen.getByLabelText('Voice for Bob')).toHaveValue('kokoro:am_michael')
    await user.selectOptions(screen.getByLabelText('Voice for Bob'), 'piper:en_US-harbor-medium')
    expect(screen.getByLabelText('Voice for Bob')).toHaveAccessibleDescription(
      'Its licence (CC-BY-NC-4.0) does not allow commercial use.',
    )
    await user.click(screen.getByRole('button', { name: 'Next' }))

    expect(lineTexts()).toEqual([
      { speaker: 'Alice', text: 'Hi Bob.' },
      { speaker: 'Bob', text: 'Hi Alice, nice to see you.' },
      { speaker: 'Alice', text: 'Bye.' },
    ])
    await user.click(screen.getByRole('button', { name: 'Move line 3 up' }))
    const moved = screen.getByRole('group', { name: 'Line 2' })
    await user.type(within(moved).getByLabelText('Chapter title (starts a new chapter)'), 'News')
    await user.selectOptions(within(moved).getByLabelText('Speaker'), 'Bob')
    await user.click(screen.getByRole('button', { name: 'Delete line 3' }))
    await user.click(screen.getByRole('button', { name: 'Add line' }))
    await user.type(within(screen.getByRole('group', { name: 'Line 3' })).getByLabelText('Text'), 'See you next week.')
    // The title starts as the first chapter's; the user picks another.
    expect(screen.getByLabelText('Episode title')).toHaveValue('Hello')
    await user.clear(screen.getByLabelText('Episode title'))
    await user.type(screen.getByLabelText('Episode title'), 'Pilot')
    await user.click(screen.getByRole('button', { name: 'Render episode' }))

    await screen.findByRole('progressbar', { name: 'Render progress' })
    expect(sent).toEqual({
      title: 'Pilot',
      lines: [
        { speaker: 'Alice', text: 'Hi Bob.', chapter: 'Hello' },
        { speaker: 'Bob', text: 'Bye.', chapter: 'News' },
        { speaker: 'Alice', text: 'See you next week.' },
      ],
      speakers: [
        { name: 'Alice', voice: 'kokoro:af_heart' },
        { name: 'Bob', voice: 'piper:en_US-harbor-medium' },
      ],
      pause_ms: 350,
    })

    act(() => streamFor('/api/audios/EA1/events').status({ status: 'succeeded', progress: 1 }))
    expect(await screen.findByRole('button', { name: '0:05 News' })).toBeInTheDocument()
    expect(screen.getByRole('list', { name: 'Chapters' })).toHaveTextContent('0:00 Hello')
    expect(screen.getByRole('link', { name: 'Download MP3' })).toHaveAttribute('href', '/api/audios/EA1/file?download=1')
    expect(screen.getByRole('link', { name: 'Download VTT' })).toHaveAttribute(
      'href',
      '/api/podcasts/P1/episodes/E1/subtitles.vtt',
    )
    expect(screen.getByRole('link', { name: 'Download SRT' })).toHaveAttribute(
      'href',
      '/api/podcasts/P1/episodes/E1/subtitles.srt',
    )
    const player = screen.getByLabelText('Player: Pilot')
    expect(player.querySelector('track')).toHaveAttribute('src', '/api/podcasts/P1/episodes/E1/subtitles.vtt')
  })

  it('asks for a pasted dialogue when the server has no script writer', async () => {
    stubWizard({
      '/api/podcasts/P1/scripts': () => errorResponse(503, 'provider_unavailable', 'No LLM is configured'),
    })
    const user = userEvent.setup()

    renderAt('/podcasts/P1/new')
    await user.type(await screen.findByLabelText('Topic'), 'Rust on small servers')
    await user.click(screen.getByRole('button', { name: 'Next' }))
    await user.click(screen.getByRole('button', { name: 'Write the script' }))

    expect(await screen.findByText(/No script writer is configured/)).toBeInTheDocument()
    await user.click(screen.getByRole('button', { name: 'Paste a dialogue' }))
    expect(screen.getByLabelText('A pasted dialogue')).toBeChecked()
    expect(screen.getByLabelText('Dialogue')).toHaveValue('')
  })

  it('sends the topic, speakers and length to the script writer and edits its answer', async () => {
    let asked: unknown
    stubWizard({
      '/api/podcasts/P1/scripts': (init) => {
        asked = sentJson(init)
        return jsonResponse(200, {
          lines: [
            { speaker: 'Host', text: 'Welcome.' },
            { speaker: 'Guest', text: 'Thanks.' },
          ],
        })
      },
    })
    const user = userEvent.setup()

    renderAt('/podcasts/P1/new')
    await user.type(await screen.findByLabelText('Topic'), 'Tea')
    await user.click(screen.getByRole('button', { name: 'Next' }))
    await within(screen.getByLabelText('Voice for Host')).findByRole('option', { name: 'Heart · en-US · High quality' })
    const minutes = screen.getByLabelText('Length (minutes)')
    await user.clear(minutes)
    await user.type(minutes, '3')
    await user.click(screen.getByRole('button', { name: 'Write the script' }))

    await screen.findByRole('group', { name: 'Line 2' })
    expect(asked).toEqual({
      source: { topic: 'Tea' },
      speakers: [
        // Two voices of the default's provider and language, so the speakers sound different.
        { name: 'Host', voice: 'kokoro:af_heart' },
        { name: 'Guest', voice: 'kokoro:am_michael' },
      ],
      minutes: 3,
      language: 'en',
    })
    expect(lineTexts()).toEqual([
      { speaker: 'Host', text: 'Welcome.' },
      { speaker: 'Guest', text: 'Thanks.' },
    ])
    expect(screen.getByLabelText('Episode title')).toHaveValue('Tea')
  })
})
