import { screen, within } from '@testing-library/react'
import userEvent from '@testing-library/user-event'
import { describe, expect, it } from 'vitest'
import { LANGUAGE_STORAGE_KEY } from '../i18n.ts'
import { errorResponse, jsonResponse, stubFetch } from '../test/http.ts'
import { renderAt } from '../test/render.tsx'

/** The status page is public: nobody is signed in. */
function renderApp() {
  const language = window.localStorage.getItem(LANGUAGE_STORAGE_KEY) === 'zh-CN' ? 'zh-CN' : 'en'
  return renderAt('/status', language)
}

function stubServer(routes: Parameters<typeof stubFetch>[0]) {
  return stubFetch({ '/api/me': () => errorResponse(401, 'unauthenticated', 'Sign in'), ...routes })
}

/** The value cell of the status row labelled `label`. */
function rowValue(label: string) {
  const term = screen.getByText(label, { selector: 'dt' })
  const row = term.parentElement
  if (row === null) throw new Error(`no row for ${label}`)
  return within(row).getByRole('definition')
}

describe('status page', () => {
  it('shows the version and each readiness check', async () => {
    window.localStorage.setItem(LANGUAGE_STORAGE_KEY, 'en')
    stubServer({
      '/health': () => jsonResponse(200, { status: 'ok', version: '1.4.2' }),
      '/health/ready': () =>
        jsonResponse(503, { status: 'degraded', checks: { database: true, storage: false } }),
    })

    renderApp()

    expect(await screen.findByText('1.4.2')).toBeInTheDocument()
    expect(rowValue('Version')).toHaveTextContent('1.4.2')
    expect(rowValue('Database')).toHaveTextContent('OK')
    expect(rowValue('Storage')).toHaveTextContent('Failing')
    expect(screen.getByRole('status')).toHaveTextContent('Degraded')
    expect(screen.queryByRole('alert')).not.toBeInTheDocument()
  })

  it('shows operational when every check passes', async () => {
    window.localStorage.setItem(LANGUAGE_STORAGE_KEY, 'en')
    stubServer({
      '/health': () => jsonResponse(200, { status: 'ok', version: '2.0.0' }),
      '/health/ready': () =>
        jsonResponse(200, { status: 'ok', checks: { database: true, storage: true } }),
    })

    renderApp()

    expect(await screen.findByText('All systems operational')).toBeInTheDocument()
    expect(rowValue('Database')).toHaveTextContent('OK')
    expect(rowValue('Storage')).toHaveTextContent('OK')
  })

  it('shows the server error message when /health fails', async () => {
    window.localStorage.setItem(LANGUAGE_STORAGE_KEY, 'en')
    stubServer({
      '/health': () =>
        jsonResponse(
          500,
          { error: { code: 'internal', message: 'Internal server error', details: null } },
          { 'x-request-id': '01HZX3' },
        ),
      '/health/ready': () =>
        jsonResponse(200, { status: 'ok', checks: { database: true, storage: true } }),
    })

    renderApp()

    const alert = await screen.findByRole('alert')
    expect(alert).toHaveTextContent('Internal server error')
    expect(alert).toHaveTextContent('Request ID: 01HZX3')
    expect(screen.getByRole('status')).toHaveTextContent('Unavailable')
    expect(screen.queryByText('Version')).not.toBeInTheDocument()
  })

  it('explains in the chosen language when the server cannot be reached', async () => {
    window.localStorage.setItem(LANGUAGE_STORAGE_KEY, 'zh-CN')
    stubServer({
      '/health': () => Promise.reject(new TypeError('Failed to fetch')),
      '/health/ready': () => Promise.reject(new TypeError('Failed to fetch')),
    })

    renderApp()

    expect(await screen.findByRole('alert')).toHaveTextContent('无法连接到服务器')
  })

  it('fetches again on refresh and shows the new answer', async () => {
    window.localStorage.setItem(LANGUAGE_STORAGE_KEY, 'en')
    let version = '1.0.0'
    const fetchMock = stubServer({
      '/health': () => jsonResponse(200, { status: 'ok', version }),
      '/health/ready': () =>
        jsonResponse(200, { status: 'ok', checks: { database: true, storage: true } }),
    })
    const user = userEvent.setup()

    renderApp()
    expect(await screen.findByText('1.0.0')).toBeInTheDocument()
    const callsBefore = fetchMock.mock.calls.length

    version = '1.0.1'
    await user.click(screen.getByRole('button', { name: 'Refresh' }))

    expect(await screen.findByText('1.0.1')).toBeInTheDocument()
    expect(fetchMock.mock.calls.length).toBe(callsBefore + 2)
  })

  it('switches language, updates <html lang> and remembers the choice', async () => {
    window.localStorage.setItem(LANGUAGE_STORAGE_KEY, 'en')
    stubServer({
      '/health': () => jsonResponse(200, { status: 'ok', version: '1.0.0' }),
      '/health/ready': () =>
        jsonResponse(200, { status: 'ok', checks: { database: true, storage: false } }),
    })
    const user = userEvent.setup()

    renderApp()
    expect(await screen.findByText('Self-hosted AI audio studio')).toBeInTheDocument()
    expect(document.documentElement.lang).toBe('en')

    await user.selectOptions(screen.getByLabelText('Language'), '中文')

    expect(screen.getByText('自托管 AI 音频工作室')).toBeInTheDocument()
    expect(await screen.findByText('故障')).toBeInTheDocument()
    expect(screen.getByRole('button', { name: '刷新' })).toBeInTheDocument()
    expect(document.documentElement.lang).toBe('zh-CN')
    expect(window.localStorage.getItem(LANGUAGE_STORAGE_KEY)).toBe('zh-CN')
  })
})
