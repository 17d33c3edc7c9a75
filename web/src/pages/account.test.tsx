import { screen, within } from '@testing-library/react'
import userEvent from '@testing-library/user-event'
import { describe, expect, it, vi } from 'vitest'
import { jsonResponse, sentJson, stubFetch } from '../test/http.ts'
import { ADMIN, USER, renderAt } from '../test/render.tsx'

describe('usage', () => {
  it('charts the chosen range, totals per service and shows the quota', async () => {
    const asked: URLSearchParams[] = []
    stubFetch({
      '/api/me': () => jsonResponse(200, USER),
      '/api/usage': (_init, url) => {
        asked.push(url.searchParams)
        return jsonResponse(200, [
          { day: url.searchParams.get('from'), service: 'tts:openai:tts-1', units: 1000, cost_micros: 15000 },
          { day: url.searchParams.get('to'), service: 'tts:local', units: 1500, cost_micros: 0 },
        ])
      },
    })
    const user = userEvent.setup()

    renderAt('/usage')

    expect(await screen.findByText('2,500 of 100,000 characters used this month')).toBeInTheDocument()
    expect(screen.getByRole('progressbar', { name: 'Monthly quota' })).toHaveAttribute('aria-valuenow', '3')
    // The service rows exist only once the usage has arrived.
    expect(await screen.findByRole('row', { name: /tts:openai:tts-1/ })).toHaveTextContent('1,000')
    const total = screen.getByRole('row', { name: /Total/ })
    expect(total).toHaveTextContent('2,500')
    expect(total).toHaveTextContent('$0.015')
    const chart = screen.getByRole('img', { name: /Usage per day/ })
    expect(chart.querySelectorAll('rect')).toHaveLength(2)

    const days = (params: URLSearchParams | undefined) =>
      (Date.parse(String(params?.get('to'))) - Date.parse(String(params?.get('from')))) / 86_400_000 + 1
    expect(days(asked.at(-1))).toBe(30)
    await user.selectOptions(screen.getByLabelText('Range'), 'Last 7 days')
    await vi.waitFor(() => expect(days(asked.at(-1))).toBe(7))
  })
})

describe('settings', () => {
  it('shows a new API token once and revokes tokens', async () => {
    let tokens = [{ id: 'T1', name: 'laptop', created_at: '2026-01-01T00:00:00Z' }]
    stubFetch({
      '/api/me': () => jsonResponse(200, USER),
      '/api/tokens': (init) => {
        if (init?.method === 'POST') {
          const { name } = sentJson(init) as { name: string }
          tokens = [...tokens, { id: 'T2', name, created_at: '2026-03-01T00:00:00Z' }]
          return jsonResponse(201, { id: 'T2', name, token: 'amk_secret123' })
        }
        return jsonResponse(200, tokens)
      },
      '/api/tokens/T1': (init) => {
        expect(init?.method).toBe('DELETE')
        tokens = tokens.filter((t) => t.id !== 'T1')
        return new Response(null, { status: 204 })
      },
    })
    const user = userEvent.setup()

    renderAt('/settings')
    await user.type(await screen.findByLabelText('Token name'), 'ci')
    await user.click(screen.getByRole('button', { name: 'Create token' }))

    expect(await screen.findByDisplayValue('amk_secret123')).toBeInTheDocument()
    expect(screen.getByText(/shown only once/)).toBeInTheDocument()
    await user.click(screen.getByRole('button', { name: 'Done' }))
    expect(screen.queryByDisplayValue('amk_secret123')).not.toBeInTheDocument()
    expect(await screen.findByText('ci')).toBeInTheDocument()

    const laptop = screen.getByText('laptop').closest('li') as HTMLElement
    await user.click(within(laptop).getByRole('button', { name: 'Revoke' }))
    await user.click(within(laptop).getAllByRole('button', { name: 'Revoke' })[0] as HTMLElement)
    await vi.waitFor(() => expect(screen.queryByText('laptop')).not.toBeInTheDocument())
  })

  it('refuses a new password typed differently twice', async () => {
    const fetchMock = stubFetch({
      '/api/me': () => jsonResponse(200, USER),
      '/api/tokens': () => jsonResponse(200, []),
    })
    const user = userEvent.setup()

    renderAt('/settings')
    await user.type(await screen.findByLabelText('Current password'), 'old password')
    await user.type(screen.getByLabelText('New password'), 'new password 1')
    await user.type(screen.getByLabelText('New password again'), 'new password 2')

    expect(screen.getByText('The passwords differ.')).toBeInTheDocument()
    expect(screen.getByRole('button', { name: 'Change password' })).toBeDisabled()
    expect(fetchMock.mock.calls.some(([url]) => String(url).includes('password'))).toBe(false)
  })
})

describe('admin', () => {
  it('changes a user role and quota, and creates invite codes', async () => {
    const patches: unknown[] = []
    const summary = (user: typeof USER | typeof ADMIN) => ({
      id: user.id,
      email: user.email,
      display_name: user.display_name,
      role: user.role,
      disabled: false,
      quota_chars_per_month: null,
      created_at: user.created_at,
      updated_at: user.created_at,
    })
    const other = { ...summary(USER), id: 'U2', email: 'bob@example.com', display_name: null }
    stubFetch({
      '/api/me': () => jsonResponse(200, ADMIN),
      '/api/admin/system': () =>
        jsonResponse(200, {
          version: '0.4.0',
          uptime_s: 3725,
          db_bytes: 2_097_152,
          jobs: { queued: 1, running: 2, failed_24h: 0 },
          storage: { kind: 'local', objects: 12 },
        }),
      '/api/admin/users': () => jsonResponse(200, { items: [summary(ADMIN), other], next_cursor: null }),
      '/api/admin/users/U2': (init) => {
        const patch = sentJson(init) as object
        patches.push(patch)
        return jsonResponse(200, { ...other, ...patch })
      },
      '/api/admin/invites': (init) =>
        init?.method === 'POST'
          ? jsonResponse(201, {
              code: 'INV-NEW',
              status: 'active',
              created_at: '2026-03-01T00:00:00Z',
              expires_at: '2026-03-08T00:00:00Z',
            })
          : jsonResponse(200, { items: [], next_cursor: null }),
      '/api/admin/backups': () =>
        jsonResponse(200, {
          items: [
            {
              name: 'aimake-20260301.db.zst',
              size_bytes: 1024,
              sha256: 'ab',
              created_at: '2026-03-01T03:00:00Z',
              status: 'ok',
              error: null,
            },
          ],
        }),
    })
    const user = userEvent.setup()

    renderAt('/admin')

    expect(await screen.findByText('0.4.0')).toBeInTheDocument()
    expect(screen.getByText('1 queued, 2 running, 0 failed in 24 h')).toBeInTheDocument()
    expect(await screen.findByText('aimake-20260301.db.zst')).toBeInTheDocument()

    const bob = (await screen.findByText('bob@example.com')).closest('li') as HTMLElement
    await user.selectOptions(within(bob).getByLabelText('Role'), 'Administrator')
    const quota = within(bob).getByLabelText('Characters per month')
    expect(quota).toHaveValue(null)
    expect(quota).toHaveAttribute('placeholder', 'Default')
    await user.clear(quota)
    await user.type(quota, '5000')
    await user.click(within(bob).getByRole('button', { name: 'Save' }))
    await user.click(within(bob).getByLabelText('Disabled'))
    await vi.waitFor(() =>
      expect(patches).toEqual([{ role: 'admin' }, { quota_chars_per_month: 5000 }, { disabled: true }]),
    )

    // An admin cannot lock themselves out from here.
    const me = screen.getByText('Ada').closest('li') as HTMLElement
    expect(within(me).getByLabelText('Role')).toBeDisabled()

    await user.click(screen.getByRole('button', { name: 'Create invite code' }))
    expect(await screen.findByText('INV-NEW')).toBeInTheDocument()
  })
})
