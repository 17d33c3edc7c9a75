import { act, screen, within } from '@testing-library/react'
import userEvent from '@testing-library/user-event'
import { describe, expect, it } from 'vitest'
import { streamFor, stubEventSource } from '../test/eventsource.ts'
import { PROVIDERS, VOICES, audio } from '../test/fixtures.ts'
import { errorResponse, jsonResponse, sentJson, stubFetch } from '../test/http.ts'
import { USER, renderAt } from '../test/render.tsx'

function stubStudio(extra: Parameters<typeof stubFetch>[0] = {}) {
  return stubFetch({
    '/api/me': () => jsonResponse(200, USER),
    '/api/voices': () => jsonResponse(200, VOICES),
    '/api/providers': () => jsonResponse(200, PROVIDERS),
    ...extra,
  })
}

describe('studio', () => {
  it('counts characters and estimates the cost for the chosen voice', async () => {
    stubStudio()
    const user = userEvent.setup()

    renderAt('/studio')
    const voice = await screen.findByLabelText('Voice')
    await within(voice).findByRole('option', { name: 'Alloy · en-US' })
    await user.type(screen.getByLabelText('Text to speak'), 'Hello 世界')

    expect(screen.getByText(/8 characters/)).toHaveTextContent('estimated cost $0.00')
    await user.selectOptions(voice, 'openai:alloy')
    expect(screen.getByText(/8 characters/)).toHaveTextContent('estimated cost $0.0001')
    await user.selectOptions(voice, 'tencent:101001')
    expect(screen.getByText(/8 characters/)).toHaveTextContent('cost not known for this provider')
  })

  it('groups voices by provider, marks unavailable ones and filters by language', async () => {
    stubStudio()
    const user = userEvent.setup()

    renderAt('/studio')
    const voice = await screen.findByLabelText('Voice')
    await within(voice).findByRole('option', { name: 'Alloy · en-US' })

    const groups = within(voice).getAllByRole('group')
    expect(groups.map((g) => g.getAttribute('label'))).toEqual([
      'Local',
      'OpenAI',
      'Tencent Cloud',
      'ElevenLabs (not available)',
    ])
    expect(within(voice).getByRole('option', { name: 'Rachel · en-US' })).toBeDisabled()

    await user.selectOptions(screen.getByLabelText('Voice language'), 'zh-CN')
    const names = within(voice)
      .getAllByRole('option')
      .map((o) => o.textContent)
    expect(names).toContain('智瑜 · zh-CN')
    expect(names).not.toContain('Alloy · en-US')
  })

  it('generates, follows the progress and then plays the finished audio', async () => {
    stubEventSource()
    const queued = audio({ id: 'A1', status: 'queued', progress: 0, file_url: null, duration_ms: null })
    const fetchMock = stubStudio({
      '/api/audios': (init) => {
        expect(sentJson(init)).toEqual({ text: 'Hello there', voice: 'local:en-us', format: 'mp3', speed: 1 })
        return jsonResponse(202, queued)
      },
      '/api/audios/A1': () => jsonResponse(200, audio({ id: 'A1', duration_ms: 2300 })),
      '/api/audios/A1/peaks': () => jsonResponse(200, { sample_rate: 100, duration_ms: 2300, peaks: [0.1, 0.8, 0.3] }),
    })
    const user = userEvent.setup()

    renderAt('/studio')
    await within(await screen.findByLabelText('Voice')).findByRole('option', { name: 'English (US) · en-US' })
    await user.type(screen.getByLabelText('Text to speak'), 'Hello there')
    await user.click(screen.getByRole('button', { name: 'Generate' }))

    expect(await screen.findByText('Queued')).toBeInTheDocument()
    const stream = streamFor('/api/audios/A1/events')
    act(() => stream.status({ status: 'running', progress: 0.4 }))
    expect(screen.getByRole('progressbar', { name: 'Generation progress' })).toHaveAttribute('aria-valuenow', '40')
    expect(screen.getByLabelText('Listen while the rest is made')).toHaveAttribute('src', '/api/audios/A1/stream')

    act(() => stream.status({ status: 'succeeded', progress: 1 }))
    const player = await screen.findByLabelText('Player: Hello world')
    expect(player).toHaveAttribute('src', '/api/audios/A1/file')
    expect(await screen.findByRole('slider', { name: 'Position in Hello world' })).toBeInTheDocument()
    expect(screen.getByRole('link', { name: 'Download' })).toHaveAttribute('href', '/api/audios/A1/file?download=1')
    // The quota is read again once the audio is done.
    expect(fetchMock.mock.calls.filter(([url]) => url === '/api/me').length).toBeGreaterThanOrEqual(2)
  })

  it('shows why a generation failed and retries it', async () => {
    stubEventSource()
    const failed = audio({ id: 'A2', status: 'failed', error: { code: 'provider_error', message: 'espeak-ng crashed' } })
    stubStudio({
      '/api/audios': () => jsonResponse(202, audio({ id: 'A2', status: 'queued', progress: 0 })),
      '/api/audios/A2': () => jsonResponse(200, failed),
      '/api/audios/A2/retry': () => jsonResponse(200, audio({ id: 'A2', status: 'queued', progress: 0 })),
    })
    const user = userEvent.setup()

    renderAt('/studio')
    await within(await screen.findByLabelText('Voice')).findByRole('option', { name: 'English (US) · en-US' })
    await user.type(screen.getByLabelText('Text to speak'), 'Hi')
    await user.click(screen.getByRole('button', { name: 'Generate' }))
    // The stream opens once the accepted audio is on screen.
    expect(await screen.findByText('Queued')).toBeInTheDocument()
    act(() => streamFor('/api/audios/A2/events').status({ status: 'failed', progress: 0.1, error: failed.error }))

    expect(await screen.findByText('espeak-ng crashed')).toBeInTheDocument()
    await user.click(screen.getByRole('button', { name: 'Retry' }))
    expect(await screen.findByText('Queued')).toBeInTheDocument()
  })

  it('explains a used-up quota by its code', async () => {
    stubStudio({
      '/api/audios': () => errorResponse(429, 'quota_exceeded', 'Monthly quota of 100000 characters reached'),
    })
    const user = userEvent.setup()

    renderAt('/studio')
    await within(await screen.findByLabelText('Voice')).findByRole('option', { name: 'English (US) · en-US' })
    await user.type(screen.getByLabelText('Text to speak'), 'Hi')
    await user.click(screen.getByRole('button', { name: 'Generate' }))

    expect(await screen.findByRole('alert')).toHaveTextContent('You have used your monthly character quota.')
  })
})
