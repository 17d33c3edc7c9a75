import { act, screen, waitFor, within } from '@testing-library/react'
import userEvent from '@testing-library/user-event'
import { afterEach, describe, expect, it, vi } from 'vitest'
import type { Model, ModelList } from '../api.ts'
import { forgetSelftest } from '../lib/useSelftest.ts'
import { PROVIDERS, SELFTEST, VOICES } from '../test/fixtures.ts'
import { errorResponse, jsonResponse, stubFetch } from '../test/http.ts'
import { ADMIN, renderAt } from '../test/render.tsx'
import { PULL_POLL_MS } from './Models.tsx'

const MB = 1024 * 1024

const RUNTIME: Model = {
  name: 'runtime',
  kind: 'runtime',
  languages: [],
  size_bytes: 18 * MB,
  license: 'MIT',
  commercial_use: true,
  quality: null,
  installed: true,
  verified: true,
  pull: null,
}
const KOKORO: Model = {
  name: 'kokoro',
  kind: 'kokoro',
  languages: ['en-US', 'en-GB', 'zh-CN'],
  size_bytes: 92 * MB,
  license: 'Apache-2.0',
  commercial_use: true,
  quality: 'high',
  installed: true,
  verified: true,
  pull: null,
}
const HARBOR: Model = {
  name: 'piper:en_US-harbor-medium',
  kind: 'piper',
  languages: ['en-US'],
  size_bytes: 60 * MB,
  license: 'CC-BY-NC-4.0',
  commercial_use: false,
  quality: 'good',
  installed: false,
  verified: true,
  pull: null,
}

const WHISPER_BASE: Model = {
  name: 'whisper:base',
  kind: 'whisper',
  languages: ['mul'],
  size_bytes: 141 * MB,
  license: 'MIT',
  commercial_use: true,
  quality: null,
  installed: false,
  verified: true,
  pull: null,
}
const OWN_WHISPER: Model = {
  name: 'whisper:de-ft',
  kind: 'whisper',
  languages: ['en'],
  size_bytes: 141 * MB,
  license: '',
  commercial_use: true,
  quality: null,
  installed: true,
  verified: false,
  pull: null,
}

function list(models: Model[]): ModelList {
  return { dir: '/var/lib/aimake/models', disk_used_bytes: 110 * MB, models }
}

const HARBOR_PATH = '/api/admin/models/piper%3Aen_US-harbor-medium'

function stubModels(routes: Parameters<typeof stubFetch>[0]) {
  return stubFetch({
    '/api/me': () => jsonResponse(200, ADMIN),
    '/api/voices': () => jsonResponse(200, VOICES),
    '/api/providers': () => jsonResponse(200, PROVIDERS),
    ...routes,
  })
}

/** A table row by the name in its first cell. */
const rowName = (name: string) => new RegExp(`^${name.replace(/[.:]/g, '\\$&')}\\b`)
const rowOf = (name: string) => screen.getByRole('row', { name: rowName(name) })

describe('models page', () => {
  afterEach(() => {
    vi.useRealTimers()
  })

  it('lists the models with their size, licence and state, the directory and the disk used', async () => {
    stubModels({ '/api/admin/models': () => jsonResponse(200, list([RUNTIME, KOKORO, HARBOR])) })

    renderAt('/admin/models')

    expect(await screen.findByRole('heading', { name: 'Models' })).toBeInTheDocument()
    expect(await screen.findByText('/var/lib/aimake/models')).toBeInTheDocument()
    expect(screen.getByText('110 MB')).toBeInTheDocument()
    const cells = (name: string) =>
      within(rowOf(name))
        .getAllByRole('cell')
        .map((c) => c.textContent)
    expect(cells('runtime')).toEqual(['ONNX Runtime', '–', '–', '18 MB', 'MIT', 'Yes', 'Remove'])
    expect(cells('kokoro')).toEqual(['Kokoro', 'High quality', 'en-US, en-GB, zh-CN', '92 MB', 'Apache-2.0', 'Yes', 'Remove'])
    expect(cells('piper:en_US-harbor-medium')).toEqual([
      'Piper',
      'Good',
      'en-US',
      '60 MB',
      'CC-BY-NC-4.0 non-commercial licence',
      'No',
      'Pull',
    ])
    // The page has its own entry in the navigation, and only that one is current.
    expect(screen.getByRole('link', { name: 'Models' })).toHaveAttribute('aria-current', 'page')
    expect(screen.getByRole('link', { name: 'Admin' })).not.toHaveAttribute('aria-current')
  })

  it('pulls a model in the background and shows its progress until it is installed', async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true })
    let harbor = HARBOR
    const pulls: (string | undefined)[] = []
    stubModels({
      '/api/admin/models': () => jsonResponse(200, list([RUNTIME, KOKORO, harbor])),
      [`${HARBOR_PATH}/pull`]: (init) => {
        pulls.push(init?.method)
        harbor = { ...HARBOR, pull: { state: 'running', done_bytes: 0, total_bytes: 60 * MB, error: null } }
        return jsonResponse(202, harbor)
      },
    })
    const user = userEvent.setup({ advanceTimers: vi.advanceTimersByTime.bind(vi) })

    renderAt('/admin/models')
    await user.click(await screen.findByRole('button', { name: 'Pull piper:en_US-harbor-medium' }))

    expect(pulls).toEqual(['POST'])
    const progress = await screen.findByRole('progressbar', { name: 'Download of piper:en_US-harbor-medium' })
    expect(progress).toHaveAttribute('aria-valuenow', '0')
    expect(within(rowOf('piper:en_US-harbor-medium')).queryByRole('button', { name: /Pull/ })).not.toBeInTheDocument()

    harbor = { ...HARBOR, pull: { state: 'running', done_bytes: 30 * MB, total_bytes: 60 * MB, error: null } }
    await act(() => vi.advanceTimersByTimeAsync(PULL_POLL_MS))
    await waitFor(() => expect(progress).toHaveAttribute('aria-valuenow', '50'))
    expect(within(rowOf('piper:en_US-harbor-medium')).getByText('30 MB of 60 MB')).toBeInTheDocument()

    harbor = { ...HARBOR, installed: true, pull: { state: 'done', done_bytes: 60 * MB, total_bytes: 60 * MB, error: null } }
    await act(() => vi.advanceTimersByTimeAsync(PULL_POLL_MS))
    await waitFor(() => expect(screen.queryByRole('progressbar')).not.toBeInTheDocument())
    const row = rowOf('piper:en_US-harbor-medium')
    expect(within(row).getByText('Yes')).toBeInTheDocument()
    expect(within(row).getByRole('button', { name: 'Remove' })).toBeInTheDocument()
    expect(pulls).toHaveLength(1)
  })

  it('shows why a pull failed and offers to pull again', async () => {
    const failed: Model = {
      ...HARBOR,
      pull: { state: 'failed', done_bytes: 12, total_bytes: 60 * MB, error: 'the download did not match its SHA-256' },
    }
    stubModels({ '/api/admin/models': () => jsonResponse(200, list([RUNTIME, failed])) })

    renderAt('/admin/models')

    const message = await screen.findByText('Download failed: the download did not match its SHA-256')
    const row = rowOf('piper:en_US-harbor-medium')
    expect(row).toContainElement(message)
    expect(within(row).getByRole('button', { name: 'Pull piper:en_US-harbor-medium' })).toBeEnabled()
    expect(within(row).queryByRole('progressbar')).not.toBeInTheDocument()
  })

  it('explains a refused pull', async () => {
    stubModels({
      '/api/admin/models': () => jsonResponse(200, list([HARBOR])),
      [`${HARBOR_PATH}/pull`]: () =>
        errorResponse(409, 'conflict', 'piper:en_US-harbor-medium is already being downloaded'),
    })
    const user = userEvent.setup()

    renderAt('/admin/models')
    await user.click(await screen.findByRole('button', { name: 'Pull piper:en_US-harbor-medium' }))

    expect(await within(rowOf('piper:en_US-harbor-medium')).findByRole('alert')).toHaveTextContent(
      'piper:en_US-harbor-medium is already being downloaded',
    )
  })

  it('removes a model only after confirmation', async () => {
    let kokoro = KOKORO
    const deleted: string[] = []
    stubModels({
      '/api/admin/models': () => jsonResponse(200, list([RUNTIME, kokoro])),
      '/api/admin/models/kokoro': (init) => {
        deleted.push(init?.method ?? 'GET')
        kokoro = { ...KOKORO, installed: false }
        return new Response(null, { status: 204 })
      },
    })
    const user = userEvent.setup()

    renderAt('/admin/models')
    await screen.findByText('/var/lib/aimake/models')
    await user.click(within(rowOf('kokoro')).getByRole('button', { name: 'Remove' }))
    const question = screen.getByRole('group', { name: /^Remove kokoro\?/ })
    await user.click(within(question).getByRole('button', { name: 'Cancel' }))
    expect(deleted).toEqual([])

    await user.click(within(rowOf('kokoro')).getByRole('button', { name: 'Remove' }))
    await user.click(within(screen.getByRole('group', { name: /^Remove kokoro\?/ })).getByRole('button', { name: 'Remove' }))

    await waitFor(() => expect(within(rowOf('kokoro')).getByText('No')).toBeInTheDocument())
    expect(deleted).toEqual(['DELETE'])
    expect(within(rowOf('kokoro')).getByRole('button', { name: 'Pull kokoro' })).toBeInTheDocument()
  })

  it('lists the Whisper models, marks an imported one unverified and removes it after confirmation', async () => {
    let models = [RUNTIME, WHISPER_BASE, OWN_WHISPER]
    const deleted: string[] = []
    const pulled: string[] = []
    stubModels({
      '/api/admin/models': () => jsonResponse(200, list(models)),
      '/api/admin/models/whisper%3Ade-ft': (init) => {
        deleted.push(init?.method ?? 'GET')
        models = [RUNTIME, WHISPER_BASE]
        return new Response(null, { status: 204 })
      },
      '/api/admin/models/whisper%3Abase/pull': (init) => {
        pulled.push(init?.method ?? 'GET')
        return jsonResponse(202, { ...WHISPER_BASE, pull: { state: 'running', done_bytes: 0, total_bytes: 141 * MB, error: null } })
      },
    })
    const user = userEvent.setup()

    renderAt('/admin/models')

    await screen.findByText('/var/lib/aimake/models')
    const cells = (name: string) =>
      within(rowOf(name))
        .getAllByRole('cell')
        .map((c) => c.textContent)
    expect(cells('whisper:base')).toEqual(['Whisper', '–', 'Multilingual', '141 MB', 'MIT', 'No', 'Pull'])
    expect(cells('whisper:de-ft')).toEqual(['Whisper', '–', 'en', '141 MB', '–', 'Yes Unverified', 'Remove'])
    expect(within(rowOf('whisper:de-ft')).getByText('Unverified')).toHaveAttribute(
      'title',
      'Imported by an admin, not checked against a published hash; its licence is its author’s.',
    )

    await user.click(within(rowOf('whisper:de-ft')).getByRole('button', { name: 'Remove' }))
    const question = screen.getByRole('group', {
      name: /^Remove whisper:de-ft\? Speech recognition on this server cannot use it/,
    })
    await user.click(within(question).getByRole('button', { name: 'Remove' }))
    await waitFor(() => expect(screen.queryByRole('row', { name: /^whisper:de-ft\b/ })).not.toBeInTheDocument())
    expect(deleted).toEqual(['DELETE'])

    await user.click(screen.getByRole('button', { name: 'Pull whisper:base' }))
    expect(await screen.findByRole('progressbar', { name: 'Download of whisper:base' })).toBeInTheDocument()
    expect(pulled).toEqual(['POST'])
  })

  it('is for admins only', async () => {
    stubFetch({
      '/api/me': () => jsonResponse(200, { ...ADMIN, role: 'user' }),
    })

    renderAt('/admin/models')

    expect(await screen.findByRole('alert')).toBeInTheDocument()
    expect(screen.queryByRole('link', { name: 'Models' })).not.toBeInTheDocument()
  })
})

describe('speech round trip on the models page', () => {
  afterEach(() => {
    forgetSelftest()
    vi.useRealTimers()
  })

  const section = () => screen.getByRole('region', { name: 'Speech round trip' })
  const runButton = () => within(section()).getByRole('button', { name: 'Check both ways' })

  it('shows what Whisper heard from each voice, its word error rate, audio length and time, and why a voice failed', async () => {
    const sent: (string | undefined)[] = []
    stubModels({
      '/api/admin/models': () => jsonResponse(200, list([RUNTIME, KOKORO])),
      '/api/admin/selftest': (init) => {
        sent.push(init?.method)
        return jsonResponse(200, SELFTEST)
      },
    })
    const user = userEvent.setup()

    renderAt('/admin/models')
    await screen.findByText('/var/lib/aimake/models')
    expect(within(section()).queryByRole('table')).not.toBeInTheDocument()
    await user.click(runButton())

    const table = await within(section()).findByRole('table')
    expect(sent).toEqual(['POST'])
    expect(within(section()).getByText('Please call me back when you have a moment.')).toBeInTheDocument()
    expect(within(section()).getByText('whisper:base')).toBeInTheDocument()
    const cells = (voice: string) =>
      within(within(table).getByRole('row', { name: rowName(voice) }))
        .getAllByRole('cell')
        .map((c) => c.textContent)
    expect(cells('local:en-us')).toEqual(['Please call me back when you have a minute.', '11.1%', '2.84 s', '3.21 s'])
    expect(cells('kokoro:af_heart')).toEqual(['Please, call me back when you have a moment.', '0%', '2.5 s', '4.75 s'])
    expect(cells('piper:en_US-lessac-medium')).toEqual([
      'Failed: speaking failed: the voice model is missing',
      '–',
      '–',
      '120 ms',
    ])
    expect(runButton()).toBeEnabled()
  })

  it('shows the server’s reason and how to get a Whisper model when none is installed', async () => {
    stubModels({
      '/api/admin/models': () => jsonResponse(200, list([RUNTIME, WHISPER_BASE])),
      '/api/admin/selftest': () =>
        errorResponse(
          503,
          'provider_unavailable',
          'No Whisper model is installed to listen with: run `aimake models pull whisper:base`',
        ),
    })
    const user = userEvent.setup()

    renderAt('/admin/models')
    await screen.findByText('/var/lib/aimake/models')
    await user.click(runButton())

    const alert = await within(section()).findByRole('alert')
    expect(alert).toHaveTextContent(
      'No Whisper model is installed to listen with: run `aimake models pull whisper:base`',
    )
    expect(within(section()).getByText('Pull whisper:base in the list above, then check again.')).toBeInTheDocument()
    expect(within(section()).queryByRole('table')).not.toBeInTheDocument()
    expect(runButton()).toBeEnabled()
  })

  it('counts the seconds while it runs, allows no second run, and keeps running while the admin is on another page', async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true })
    let answer: (response: Response) => void = () => undefined
    let runs = 0
    stubModels({
      '/api/admin/models': () => jsonResponse(200, list([RUNTIME, KOKORO])),
      '/api/admin/selftest': () => {
        runs++
        return new Promise<Response>((resolve) => {
          answer = resolve
        })
      },
    })
    const user = userEvent.setup({ advanceTimers: vi.advanceTimersByTime.bind(vi) })

    renderAt('/admin/models')
    await screen.findByText('/var/lib/aimake/models')
    await user.click(runButton())

    expect(runButton()).toBeDisabled()
    expect(section()).toHaveAttribute('aria-busy', 'true')
    expect(within(section()).getByRole('status')).toHaveTextContent(/^Speaking and listening… 0 s$/)
    await act(() => vi.advanceTimersByTimeAsync(3000))
    expect(within(section()).getByRole('status')).toHaveTextContent(/^Speaking and listening… 3 s$/)
    // The seconds are a timer, which screen readers do not announce at every tick.
    expect(within(section()).getByRole('timer')).toHaveTextContent(/^3 s$/)
    await user.click(runButton())
    expect(runs).toBe(1)

    // The admin goes elsewhere; the answer arrives meanwhile and is there on coming back.
    await user.click(screen.getByRole('link', { name: 'Studio' }))
    expect(await screen.findByRole('heading', { name: 'Studio' })).toBeInTheDocument()
    expect(screen.queryByRole('heading', { name: 'Speech round trip' })).not.toBeInTheDocument()
    await act(async () => answer(jsonResponse(200, SELFTEST)))
    await user.click(screen.getByRole('link', { name: 'Models' }))

    expect(await within(section()).findByRole('table')).toBeInTheDocument()
    expect(within(section()).getByRole('status')).toHaveTextContent(/^$/)
    expect(section()).toHaveAttribute('aria-busy', 'false')
    expect(runButton()).toBeEnabled()
    expect(runs).toBe(1)
  })
})
