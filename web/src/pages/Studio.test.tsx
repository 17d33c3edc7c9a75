import { act, screen, waitFor, within } from '@testing-library/react'
import userEvent from '@testing-library/user-event'
import { afterEach, describe, expect, it, vi } from 'vitest'
import type { Provider } from '../api.ts'
import { DOWNLOAD_POLL_MS } from '../lib/useVoiceCatalog.ts'
import { streamFor, stubEventSource } from '../test/eventsource.ts'
import { ESPEAK_VOICES, PROVIDERS, VOICES, audio } from '../test/fixtures.ts'
import { errorResponse, jsonResponse, sentJson, stubFetch } from '../test/http.ts'
import { ADMIN, USER, renderAt } from '../test/render.tsx'

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
    await within(voice).findByRole('option', { name: 'Alloy · en-US · High quality' })
    await user.type(screen.getByLabelText('Text to speak'), 'Hello 世界')

    expect(screen.getByText(/8 characters/)).toHaveTextContent('estimated cost $0.00')
    await user.selectOptions(voice, 'openai:alloy')
    expect(screen.getByText(/8 characters/)).toHaveTextContent('estimated cost $0.0001')
    await user.selectOptions(voice, 'tencent:101001')
    expect(screen.getByText(/8 characters/)).toHaveTextContent('cost not known for this provider')
  })

  it('lists neural voices first, labels each voice’s quality and marks non-commercial ones', async () => {
    stubStudio()
    const user = userEvent.setup()

    renderAt('/studio')
    const voice = await screen.findByLabelText('Voice')
    await within(voice).findByRole('option', { name: 'Alloy · en-US · High quality' })

    const groups = within(voice).getAllByRole('group')
    expect(groups.map((g) => g.getAttribute('label'))).toEqual([
      'Kokoro',
      'Piper',
      'Local',
      'OpenAI',
      'Tencent Cloud',
      'ElevenLabs (not available)',
    ])
    expect(within(groups[1] as HTMLElement).getAllByRole('option').map((o) => o.textContent)).toEqual([
      'Fen · en-GB · High quality',
      'Harbor · en-US · Good · non-commercial licence',
    ])
    expect(within(voice).getByRole('option', { name: 'English (US) · en-US · Basic (robotic)' })).toBeEnabled()
    expect(within(voice).getByRole('option', { name: 'Rachel · en-US · High quality' })).toBeDisabled()
    // The server's default for English is picked, and its licence allows any use.
    expect(voice).toHaveValue('kokoro:af_heart')
    expect(voice).not.toHaveAccessibleDescription()

    await user.selectOptions(voice, 'piper:en_US-harbor-medium')
    expect(voice).toHaveAccessibleDescription('Its licence (CC-BY-NC-4.0) does not allow commercial use.')

    await user.selectOptions(screen.getByLabelText('Voice language'), 'zh-CN')
    const names = within(voice)
      .getAllByRole('option')
      .map((o) => o.textContent)
    expect(names).toContain('智瑜 · zh-CN · High quality')
    expect(names).toContain('Xiaoxiao · zh-CN · High quality')
    expect(names).not.toContain('Alloy · en-US · High quality')
  })

  it('previews a neural voice like any other', async () => {
    const fetchMock = stubStudio({
      '/api/voices/kokoro%3Aaf_heart/preview': () => new Response('RIFF', { headers: { 'Content-Type': 'audio/wav' } }),
    })
    const created = vi.spyOn(URL, 'createObjectURL').mockReturnValue('blob:preview')
    vi.spyOn(URL, 'revokeObjectURL').mockReturnValue(undefined)
    const user = userEvent.setup()

    renderAt('/studio')
    await within(await screen.findByLabelText('Voice')).findByRole('option', { name: 'Heart · en-US · High quality' })
    await user.click(screen.getByRole('button', { name: 'Preview' }))

    await waitFor(() => expect(HTMLMediaElement.prototype.play).toHaveBeenCalled())
    expect(created).toHaveBeenCalledTimes(1)
    const call = fetchMock.mock.calls.find(([url]) => String(url).includes('/preview'))
    expect(call?.[0]).toBe('/api/voices/kokoro%3Aaf_heart/preview')
    expect(call?.[1]?.method).toBe('POST')
  })

  it('generates, follows the progress and then plays the finished audio', async () => {
    stubEventSource()
    const queued = audio({ id: 'A1', status: 'queued', progress: 0, file_url: null, duration_ms: null })
    const fetchMock = stubStudio({
      '/api/audios': (init) => {
        expect(sentJson(init)).toEqual({ text: 'Hello there', voice: 'kokoro:af_heart', format: 'mp3', speed: 1 })
        return jsonResponse(202, queued)
      },
      '/api/audios/A1': () => jsonResponse(200, audio({ id: 'A1', duration_ms: 2300 })),
      '/api/audios/A1/peaks': () => jsonResponse(200, { sample_rate: 100, duration_ms: 2300, peaks: [0.1, 0.8, 0.3] }),
    })
    const user = userEvent.setup()

    renderAt('/studio')
    await within(await screen.findByLabelText('Voice')).findByRole('option', { name: 'Heart · en-US · High quality' })
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
    await within(await screen.findByLabelText('Voice')).findByRole('option', { name: 'Heart · en-US · High quality' })
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
    await within(await screen.findByLabelText('Voice')).findByRole('option', { name: 'Heart · en-US · High quality' })
    await user.type(screen.getByLabelText('Text to speak'), 'Hi')
    await user.click(screen.getByRole('button', { name: 'Generate' }))

    expect(await screen.findByRole('alert')).toHaveTextContent('You have used your monthly character quota.')
  })

  describe('on first run', () => {
    afterEach(() => {
      vi.useRealTimers()
    })

    const downloading = (done: number): Provider[] =>
      PROVIDERS.map((p) =>
        p.id === 'kokoro'
          ? { ...p, available: false, detail: 'Downloading Kokoro', progress: { done_bytes: done, total_bytes: 200 } }
          : p.id === 'piper'
            ? { ...p, available: false, detail: 'No Piper voice is installed' }
            : p,
      )

    it('says the neural voices are downloading, follows the download and then switches the default', async () => {
      vi.useFakeTimers({ shouldAdvanceTime: true })
      let providers = downloading(90)
      // Kokoro's voices may be listed before its model is there; they cannot be picked yet.
      const waiting = VOICES.filter((v) => v.provider === 'kokoro').map((v) => ({ ...v, default: false }))
      let voices = [...ESPEAK_VOICES, ...waiting]
      const fetchMock = stubStudio({
        '/api/voices': () => jsonResponse(200, voices),
        '/api/providers': () => jsonResponse(200, providers),
      })

      renderAt('/studio')
      expect(
        await screen.findByText('Neural voices are downloading (45%) — the robotic voice works meanwhile'),
      ).toBeInTheDocument()
      const voice = screen.getByLabelText('Voice')
      expect(voice).toHaveValue('local:en-us')
      expect(within(voice).getByRole('group', { name: 'Kokoro (downloading, 45%)' })).toBeInTheDocument()
      expect(within(voice).getByRole('option', { name: 'Heart · en-US · High quality' })).toBeDisabled()

      providers = downloading(150)
      await act(() => vi.advanceTimersByTimeAsync(DOWNLOAD_POLL_MS))
      expect(
        await screen.findByText('Neural voices are downloading (75%) — the robotic voice works meanwhile'),
      ).toBeInTheDocument()
      // Only the providers are asked while the download runs.
      expect(fetchMock.mock.calls.filter(([url]) => url === '/api/voices')).toHaveLength(1)

      providers = PROVIDERS
      voices = VOICES
      await act(() => vi.advanceTimersByTimeAsync(DOWNLOAD_POLL_MS))
      await waitFor(() => expect(voice).toHaveValue('kokoro:af_heart'))
      expect(screen.queryByText(/Neural voices are downloading/)).not.toBeInTheDocument()
      expect(fetchMock.mock.calls.filter(([url]) => url === '/api/voices')).toHaveLength(2)

      // Nothing is downloading any more, so nothing is asked again.
      const calls = fetchMock.mock.calls.length
      await act(() => vi.advanceTimersByTimeAsync(DOWNLOAD_POLL_MS * 3))
      expect(fetchMock.mock.calls.length).toBe(calls)
    })

    it('keeps a voice the user picked when the neural voices arrive', async () => {
      vi.useFakeTimers({ shouldAdvanceTime: true })
      window.localStorage.setItem('aimake.voice', 'local:cmn')
      let providers = downloading(10)
      let voices = ESPEAK_VOICES
      stubStudio({
        '/api/voices': () => jsonResponse(200, voices),
        '/api/providers': () => jsonResponse(200, providers),
      })

      renderAt('/studio')
      await screen.findByText(/Neural voices are downloading \(5%\)/)
      providers = PROVIDERS
      voices = VOICES
      await act(() => vi.advanceTimersByTimeAsync(DOWNLOAD_POLL_MS))
      await waitFor(() => expect(screen.queryByText(/Neural voices are downloading/)).not.toBeInTheDocument())
      expect(screen.getByLabelText('Voice')).toHaveValue('local:cmn')
    })

    const noRuntime: Provider[] = PROVIDERS.map((p) =>
      p.id === 'kokoro' || p.id === 'piper'
        ? {
            ...p,
            available: false,
            detail: 'ONNX Runtime is not installed: run `aimake models pull runtime` or pull it on the Models page',
          }
        : p,
    )

    it('shows an admin the way to the Models page when the runtime is missing', async () => {
      stubStudio({
        '/api/me': () => jsonResponse(200, ADMIN),
        '/api/voices': () => jsonResponse(200, ESPEAK_VOICES),
        '/api/providers': () => jsonResponse(200, noRuntime),
      })

      renderAt('/studio')
      expect(await screen.findByText(/Neural voices are not available: ONNX Runtime is not installed/)).toHaveTextContent(
        'run `aimake models pull runtime`',
      )
      expect(screen.getByRole('link', { name: 'Manage models' })).toHaveAttribute('href', '/admin/models')
    })

    it('does not bother other users with it', async () => {
      stubStudio({
        '/api/voices': () => jsonResponse(200, ESPEAK_VOICES),
        '/api/providers': () => jsonResponse(200, noRuntime),
      })

      renderAt('/studio')
      const voice = await screen.findByLabelText('Voice')
      await within(voice).findByRole('option', { name: 'English (US) · en-US · Basic (robotic)' })
      expect(voice).toHaveValue('local:en-us')
      expect(screen.queryByText(/Neural voices/)).not.toBeInTheDocument()
      expect(screen.queryByRole('link', { name: 'Manage models' })).not.toBeInTheDocument()
    })
  })
})
