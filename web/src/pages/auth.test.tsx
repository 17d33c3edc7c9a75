import { act, screen } from '@testing-library/react'
import userEvent from '@testing-library/user-event'
import { describe, expect, it, vi } from 'vitest'
import { PROVIDERS, VOICES } from '../test/fixtures.ts'
import { errorResponse, jsonResponse, sentJson, stubFetch } from '../test/http.ts'
import { USER, renderAt } from '../test/render.tsx'

const catalog = {
  '/api/voices': () => jsonResponse(200, VOICES),
  '/api/providers': () => jsonResponse(200, PROVIDERS),
}

describe('signing in', () => {
  it('sends a signed-out visitor to the login page and back to where they were going', async () => {
    let signedIn = false
    stubFetch({
      '/api/me': () => (signedIn ? jsonResponse(200, USER) : errorResponse(401, 'unauthenticated', 'Sign in')),
      '/api/setup': () => jsonResponse(200, { needed: false }),
      '/api/auth/login': (init) => {
        expect(sentJson(init)).toEqual({ email: 'ada@example.com', password: 'correct horse' })
        signedIn = true
        return jsonResponse(200, USER)
      },
      '/api/audios': () => jsonResponse(200, { items: [], next_cursor: null }),
    })
    const user = userEvent.setup()

    renderAt('/library?q=news')

    expect(await screen.findByRole('heading', { name: 'Sign in' })).toBeInTheDocument()
    expect(new URLSearchParams(window.location.search).get('next')).toBe('/library?q=news')
    await user.type(screen.getByLabelText('Email'), 'ada@example.com')
    await user.type(screen.getByLabelText('Password'), 'correct horse')
    await user.click(screen.getByRole('button', { name: 'Sign in' }))

    expect(await screen.findByRole('heading', { name: 'Library' })).toBeInTheDocument()
    expect(window.location.pathname + window.location.search).toBe('/library?q=news')
  })

  it('says so when the email or password is wrong, and clears the password', async () => {
    stubFetch({
      '/api/me': () => errorResponse(401, 'unauthenticated', 'Sign in'),
      '/api/setup': () => jsonResponse(200, { needed: false }),
      '/api/auth/login': () => errorResponse(401, 'invalid_credentials', 'Invalid email or password'),
    })
    const user = userEvent.setup()

    renderAt('/login')
    await user.type(await screen.findByLabelText('Email'), 'ada@example.com')
    await user.type(screen.getByLabelText('Password'), 'wrong password')
    await user.click(screen.getByRole('button', { name: 'Sign in' }))

    expect(await screen.findByRole('alert')).toHaveTextContent('Wrong email or password.')
    expect(screen.getByLabelText('Password')).toHaveValue('')
    expect(window.location.pathname).toBe('/login')
  })

  it('sends the user to log in again when the session expires, then back', async () => {
    let expired = false
    stubFetch({
      '/api/me': () => jsonResponse(200, USER),
      '/api/setup': () => jsonResponse(200, { needed: false }),
      ...catalog,
      '/api/audios': () =>
        expired ? errorResponse(401, 'unauthenticated', 'Session expired') : jsonResponse(200, { items: [], next_cursor: null }),
    })
    const user = userEvent.setup()

    renderAt('/library')
    expect(await screen.findByText('Nothing here yet. Generate speech in the Studio.')).toBeInTheDocument()
    expired = true
    await user.type(screen.getByLabelText('Search'), 'x')

    expect(await screen.findByText('Your session has ended. Sign in to continue where you were.')).toBeInTheDocument()
    const params = new URLSearchParams(window.location.search)
    expect(window.location.pathname).toBe('/login')
    expect(params.get('next')).toBe('/library')
  })
})

describe('first run', () => {
  it('fills the setup token from the link in the log and lands in the Studio', async () => {
    let created = false
    stubFetch({
      '/api/me': () => (created ? jsonResponse(200, USER) : errorResponse(401, 'unauthenticated', 'Sign in')),
      '/api/setup': (init) => {
        if (init?.method !== 'POST') return jsonResponse(200, { needed: true })
        expect(sentJson(init)).toEqual({
          setup_token: 'tok_123',
          email: 'admin@example.com',
          password: 'long enough',
        })
        created = true
        return jsonResponse(201, { ...USER, role: 'admin' })
      },
      ...catalog,
    })
    const user = userEvent.setup()

    renderAt('/setup?token=tok_123')

    expect(await screen.findByLabelText('Setup token')).toHaveValue('tok_123')
    await user.type(screen.getByLabelText('Email'), 'admin@example.com')
    await user.type(screen.getByLabelText('Password'), 'long enough')
    await user.click(screen.getByRole('button', { name: 'Create administrator' }))

    expect(await screen.findByRole('heading', { name: 'Studio' })).toBeInTheDocument()
    expect(screen.getByRole('link', { name: 'Admin' })).toBeInTheDocument()
  })

  it('shows the server message for a wrong setup token', async () => {
    stubFetch({
      '/api/me': () => errorResponse(401, 'unauthenticated', 'Sign in'),
      '/api/setup': (init) =>
        init?.method === 'POST'
          ? errorResponse(400, 'invalid_request', 'The setup token is not valid')
          : jsonResponse(200, { needed: true }),
    })
    const user = userEvent.setup()

    renderAt('/setup?token=stale')
    await user.type(await screen.findByLabelText('Email'), 'admin@example.com')
    await user.type(screen.getByLabelText('Password'), 'long enough')
    await user.click(screen.getByRole('button', { name: 'Create administrator' }))

    expect(await screen.findByRole('alert')).toHaveTextContent('The setup token is not valid')
  })
})

describe('registration', () => {
  it('asks for an invite code when the server says registration is by invite', async () => {
    stubFetch({
      '/api/me': () => errorResponse(401, 'unauthenticated', 'Sign in'),
      '/api/setup': () => jsonResponse(200, { needed: false, registration: 'invite' }),
    })

    renderAt('/register?invite=INV-1')

    const invite = await screen.findByLabelText('Invite code')
    expect(invite).toBeRequired()
    expect(invite).toHaveValue('INV-1')
  })

  it('hides the form once the server answers that registration is closed', async () => {
    stubFetch({
      '/api/me': () => errorResponse(401, 'unauthenticated', 'Sign in'),
      '/api/setup': () => jsonResponse(200, { needed: false }),
      '/api/auth/register': () => errorResponse(403, 'registration_closed', 'Registration is closed'),
    })
    const user = userEvent.setup()

    renderAt('/register')
    await user.type(await screen.findByLabelText('Email'), 'bob@example.com')
    await user.type(screen.getByLabelText('Password'), 'long enough')
    await user.click(screen.getByRole('button', { name: 'Create account' }))

    expect(await screen.findByRole('alert')).toHaveTextContent('Registration is closed on this server.')
    expect(screen.queryByLabelText('Email')).not.toBeInTheDocument()
  })
})

describe('the shell', () => {
  it('speaks Chinese when chosen', async () => {
    stubFetch({ '/api/me': () => jsonResponse(200, USER), ...catalog })

    renderAt('/studio', 'zh-CN')

    expect(await screen.findByRole('heading', { name: '工作室' })).toBeInTheDocument()
    expect(screen.getByRole('link', { name: '音频库' })).toBeInTheDocument()
    expect(screen.getByRole('button', { name: '生成' })).toBeInTheDocument()
    expect(document.documentElement.lang).toBe('zh-CN')
  })

  it('keeps the admin page from users who are not admins', async () => {
    stubFetch({ '/api/me': () => jsonResponse(200, USER) })

    renderAt('/admin')

    expect(await screen.findByRole('alert')).toHaveTextContent('You are not allowed to do this.')
    expect(screen.queryByRole('link', { name: 'Admin' })).not.toBeInTheDocument()
  })

  it('says when the browser goes offline and when it is back', async () => {
    stubFetch({ '/api/me': () => jsonResponse(200, USER), ...catalog })
    const online = vi.spyOn(navigator, 'onLine', 'get')
    online.mockReturnValue(true)

    renderAt('/studio')
    await screen.findByRole('heading', { name: 'Studio' })
    online.mockReturnValue(false)
    act(() => {
      window.dispatchEvent(new Event('offline'))
    })
    expect(screen.getByText(/You are offline/)).toBeInTheDocument()

    online.mockReturnValue(true)
    act(() => {
      window.dispatchEvent(new Event('online'))
    })
    expect(screen.queryByText(/You are offline/)).not.toBeInTheDocument()
  })

  it('shows the network problem instead of a login page when the server is unreachable', async () => {
    stubFetch({ '/api/me': () => Promise.reject(new TypeError('Failed to fetch')) })

    renderAt('/studio')

    expect(await screen.findByRole('alert')).toHaveTextContent('Could not reach the server.')
    expect(screen.getByRole('button', { name: 'Retry' })).toBeInTheDocument()
  })
})
