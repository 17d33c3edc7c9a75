import { screen, within } from '@testing-library/react'
import userEvent from '@testing-library/user-event'
import { describe, expect, it, vi } from 'vitest'
import { audio } from '../test/fixtures.ts'
import { jsonResponse, sentJson, stubFetch } from '../test/http.ts'
import { USER, renderAt } from '../test/render.tsx'

const SHOW = {
  id: 'P1',
  title: 'Weekly',
  description: 'Tea and code',
  language: 'en',
  author: 'Ada',
  public: false,
  created_at: '2026-03-01T00:00:00Z',
}

describe('podcasts', () => {
  it('creates a show and opens it', async () => {
    let created: unknown
    stubFetch({
      '/api/me': () => jsonResponse(200, USER),
      '/api/podcasts': (init) => {
        if (init?.method !== 'POST') return jsonResponse(200, { items: [], next_cursor: null })
        created = sentJson(init)
        return jsonResponse(201, { ...SHOW, title: 'Night shift', public: true })
      },
      '/api/podcasts/P1': () => jsonResponse(200, { ...SHOW, title: 'Night shift', public: true }),
      '/api/podcasts/P1/episodes': () => jsonResponse(200, { items: [], next_cursor: null }),
    })
    const user = userEvent.setup()

    renderAt('/podcasts')
    expect(await screen.findByText('No shows yet.')).toBeInTheDocument()
    await user.click(screen.getByRole('button', { name: 'New show' }))
    await user.type(screen.getByLabelText('Show title'), 'Night shift')
    await user.click(screen.getByLabelText(/Public show/))
    await user.click(screen.getByRole('button', { name: 'Create show' }))

    expect(await screen.findByRole('heading', { name: 'Night shift', level: 1 })).toBeInTheDocument()
    expect(created).toEqual({ title: 'Night shift', public: true })
    expect(window.location.pathname).toBe('/podcasts/P1')
    expect(screen.getByLabelText('Feed address')).toHaveValue(`${window.location.origin}/feeds/P1.xml`)
  })

  it('hands out a private feed link, rotates it, and lists episodes with their downloads', async () => {
    let rotations = 0
    const episode = { id: 'E1', title: 'Pilot', audio: audio({ id: 'EA1', kind: 'podcast', title: 'Pilot' }), lines: [] }
    stubFetch({
      '/api/me': () => jsonResponse(200, USER),
      '/api/podcasts/P1': () => jsonResponse(200, SHOW),
      '/api/podcasts/P1/feed-token': () => {
        rotations++
        return jsonResponse(200, { feed_url: `http://localhost:3000/feeds/P1.xml?token=t${rotations}` })
      },
      '/api/podcasts/P1/episodes': () => jsonResponse(200, { items: [episode], next_cursor: null }),
      '/api/audios/EA1/peaks': () => jsonResponse(200, { sample_rate: 10, duration_ms: 1500, peaks: [1] }),
      '/api/podcasts/P1/episodes/E1/chapters.json': () => jsonResponse(200, { chapters: [] }),
    })
    const user = userEvent.setup()

    renderAt('/podcasts/P1')
    await user.click(await screen.findByRole('button', { name: 'Create a private feed link' }))
    expect(await screen.findByLabelText('Feed address')).toHaveValue('http://localhost:3000/feeds/P1.xml?token=t1')

    await user.click(screen.getByRole('button', { name: 'New private link' }))
    const ask = screen.getByRole('group', { name: 'The old link stops working. Continue?' })
    await user.click(within(ask).getByRole('button', { name: 'New private link' }))
    await vi.waitFor(() =>
      expect(screen.getByLabelText('Feed address')).toHaveValue('http://localhost:3000/feeds/P1.xml?token=t2'),
    )

    expect(await screen.findByRole('heading', { name: 'Pilot' })).toBeInTheDocument()
    expect(screen.getByRole('link', { name: 'Download SRT' })).toHaveAttribute(
      'href',
      '/api/podcasts/P1/episodes/E1/subtitles.srt',
    )
  })
})
