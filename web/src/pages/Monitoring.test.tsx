import { screen, waitFor, within } from '@testing-library/react'
import userEvent from '@testing-library/user-event'
import { describe, expect, it, vi } from 'vitest'
import type { Alert, AlertsPage, Notifier } from '../api.ts'
import type { ChartProps } from '../components/Chart.tsx'
import { errorResponse, jsonResponse, sentJson, stubFetch } from '../test/http.ts'
import { ADMIN, renderAt } from '../test/render.tsx'
import { sample, seriesOf } from '../test/series.ts'

// uPlot draws on a canvas jsdom does not have: the page gets a stand-in that shows what it
// was asked to draw (the chart component's own shaping is tested in lib/monitoring.test.ts).
vi.mock('../components/Chart.tsx', () => ({
  Chart: ({ label, data, lines }: ChartProps) => (
    <div role="img" aria-label={label} data-lines={lines.join('|')} data-points={data[0].length} />
  ),
}))

const HOUR = seriesOf(
  '1h',
  60,
  {
    57: { sampled: sample({ jobs_queued: 4, jobs_running: 2, jobs_failed: 1, disk_free_permille: 873, db_bytes: 5 * 1024 * 1024, wal_bytes: 512 * 1024 }) },
    58: {
      requests: 90,
      errors_5xx: 9,
      p50_s: 0.015,
      p99_s: 1.25,
      provider_calls: { tts: 5, llm: 0, asr: 0 },
      provider_errors: { tts: 1, llm: 0, asr: 0 },
      provider_p99_s: { tts: 2.5, llm: null, asr: null },
    },
  },
  { cost_today_usd: 1.25, daily_budget_usd: 5 },
)
const DAY = seriesOf('24h', 1440, { 1438: { requests: 600 } })

function alert(overrides: Partial<Alert>): Alert {
  return {
    id: '01J00000000000000000ALERT1',
    rule: 'error_rate',
    severity: 'critical',
    state: 'firing',
    summary: 'error rate 10.0% of requests (above 5.0%)',
    value: 0.1,
    threshold: 0.05,
    fired_at: '2026-12-07T08:30:00Z',
    resolved_at: null,
    resolved_value: null,
    notified_at: '2026-12-07T08:30:00Z',
    notifications: 1,
    ...overrides,
  }
}

const FIRING = alert({})
const RESOLVED = alert({
  id: '01J00000000000000000ALERT2',
  rule: 'disk_free',
  severity: 'warning',
  state: 'resolved',
  summary: 'free disk on the data directory 4.2% (below 10.0%)',
  fired_at: '2026-12-06T10:00:00Z',
  resolved_at: '2026-12-06T11:00:00Z',
  notifications: 3,
})
const OLDER = alert({ id: '01J00000000000000000ALERT3', rule: 'db_errors', summary: 'database errors 2 (above 0)', resolved_at: '2026-12-05T09:00:00Z', state: 'resolved' })

const SLACK: Notifier = {
  name: 'ops',
  kind: 'slack',
  target: 'https://hooks.slack.com/…',
  sent: 4,
  failed: 1,
  last_error: 'Slack answered 404 no_service',
  last_error_at: '2026-12-07T07:00:00Z',
}
const MAIL: Notifier = { name: 'mail', kind: 'email', target: 'smtp://smtp.example.org:587 → 1 recipient(s)', sent: 0, failed: 0, last_error: null, last_error_at: null }

function stubMonitoring(routes: Parameters<typeof stubFetch>[0] = {}) {
  return stubFetch({
    '/api/me': () => jsonResponse(200, ADMIN),
    '/api/admin/metrics/series': (_init, url) => jsonResponse(200, url.searchParams.get('range') === '24h' ? DAY : HOUR),
    '/api/admin/alerts': () => jsonResponse(200, { active: [], items: [], next_cursor: null } satisfies AlertsPage),
    '/api/admin/notifiers': () => jsonResponse(200, { notifiers: [] }),
    ...routes,
  })
}

/** The chart figure titled `title`. */
function figure(title: string) {
  return screen.getByRole('figure', { name: title })
}

describe('monitoring page', () => {
  it('draws each chart over the last hour with the current value next to its title', async () => {
    stubMonitoring()
    renderAt('/admin/monitoring')

    expect(await screen.findByRole('heading', { name: 'Monitoring', level: 1 })).toBeInTheDocument()
    await screen.findByRole('figure', { name: 'Requests per second' })
    // The last complete minute: 90 requests, 9 of them 5xx.
    expect(figure('Requests per second')).toHaveTextContent('1.5/s')
    expect(figure('Error rate (5xx)')).toHaveTextContent('10%')
    expect(figure('Latency')).toHaveTextContent('p50 15 ms · p99 1.25 s')
    expect(figure('Jobs')).toHaveTextContent('queued 4 · running 2 · failed (24 h) 1')
    expect(figure('Provider error rate')).toHaveTextContent('TTS 20%')
    expect(figure('Provider latency (p99)')).toHaveTextContent('TTS 2.5 s')
    expect(figure('Provider cost')).toHaveTextContent('today $1.25 · budget $5.00')
    expect(within(figure('Provider cost')).getByRole('progressbar', { name: 'Today’s cost against the daily budget' })).toHaveAttribute(
      'aria-valuenow',
      '25',
    )
    expect(figure('Free disk')).toHaveTextContent('87.3%')
    expect(figure('Database and WAL size')).toHaveTextContent('Database 5 MB · WAL 512 KB')
    expect(figure('Last backup')).toHaveTextContent('none yet')

    // Every chart gets the hour's 60 minutes and its named lines.
    const latency = within(figure('Latency')).getByRole('img', { name: 'Latency' })
    expect(latency).toHaveAttribute('data-points', '60')
    expect(latency).toHaveAttribute('data-lines', 'p50|p99')
    expect(within(figure('Provider latency (p99)')).getByRole('img')).toHaveAttribute('data-lines', 'TTS|LLM|ASR')
    expect(screen.queryByText(/No requests yet/)).not.toBeInTheDocument()
    // Its own entry in the navigation, the only current one.
    expect(screen.getByRole('link', { name: 'Monitoring' })).toHaveAttribute('aria-current', 'page')
    expect(screen.getByRole('link', { name: 'Admin' })).not.toHaveAttribute('aria-current')
  })

  it('switches to the last 24 hours', async () => {
    const fetchMock = stubMonitoring()
    const user = userEvent.setup()
    renderAt('/admin/monitoring')
    await screen.findByRole('figure', { name: 'Requests per second' })
    const hour = screen.getByRole('button', { name: 'Last hour' })
    expect(hour).toHaveAttribute('aria-pressed', 'true')

    await user.click(screen.getByRole('button', { name: 'Last 24 hours' }))

    await waitFor(() => expect(figure('Requests per second')).toHaveTextContent('10/s'))
    expect(within(figure('Requests per second')).getByRole('img')).toHaveAttribute('data-points', '1440')
    expect(screen.getByRole('button', { name: 'Last 24 hours' })).toHaveAttribute('aria-pressed', 'true')
    expect(hour).toHaveAttribute('aria-pressed', 'false')
    const ranges = fetchMock.mock.calls
      .map(([input]) => new URL(String(input), 'http://localhost'))
      .filter((url) => url.pathname === '/api/admin/metrics/series')
      .map((url) => url.searchParams.get('range'))
    expect(ranges).toEqual(['1h', '24h'])
  })

  it('says when nothing has been counted yet and no budget is set', async () => {
    stubMonitoring({ '/api/admin/metrics/series': () => jsonResponse(200, seriesOf('1h', 60)) })
    renderAt('/admin/monitoring')

    expect(await screen.findByText(/No requests yet in this range/)).toBeInTheDocument()
    expect(figure('Error rate (5xx)')).toHaveTextContent('–')
    expect(figure('Provider cost')).toHaveTextContent('no daily budget set')
    expect(within(figure('Provider cost')).queryByRole('progressbar')).not.toBeInTheDocument()
  })

  it('lists the alerts firing now and the history, with more on request', async () => {
    const cursors: (string | null)[] = []
    stubMonitoring({
      '/api/admin/alerts': (_init, url) => {
        const cursor = url.searchParams.get('cursor')
        cursors.push(cursor)
        return jsonResponse(
          200,
          cursor === null
            ? { active: [FIRING], items: [FIRING, RESOLVED], next_cursor: 'c2' }
            : { active: [FIRING], items: [OLDER], next_cursor: null },
        )
      },
    })
    const user = userEvent.setup()
    renderAt('/admin/monitoring')

    const firing = await screen.findByRole('list', { name: 'Firing now' })
    const active = within(firing).getByRole('listitem')
    expect(active).toHaveTextContent('error rate 10.0% of requests (above 5.0%)')
    expect(active).toHaveTextContent('Critical')
    expect(active).toHaveTextContent('still firing')
    expect(active).toHaveTextContent('1 notifications')

    const history = screen.getByRole('list', { name: 'History' })
    const past = within(history).getAllByRole('listitem')
    expect(past).toHaveLength(2)
    expect(past[1]).toHaveTextContent('free disk on the data directory 4.2% (below 10.0%)')
    expect(past[1]).toHaveTextContent('Warning')
    expect(past[1]).toHaveTextContent(/fired .*2026/)
    expect(past[1]).toHaveTextContent(/resolved .*2026/)
    expect(past[1]).toHaveTextContent('3 notifications')

    await user.click(screen.getByRole('button', { name: 'Load more' }))
    await waitFor(() => expect(within(history).getAllByRole('listitem')).toHaveLength(3))
    expect(within(history).getAllByRole('listitem')[2]).toHaveTextContent('database errors 2 (above 0)')
    expect(cursors).toEqual([null, 'c2'])
    expect(screen.queryByRole('button', { name: 'Load more' })).not.toBeInTheDocument()
  })

  it('says when no alert is firing or ever fired', async () => {
    stubMonitoring()
    renderAt('/admin/monitoring')
    expect(await screen.findByText('No alert is firing.')).toBeInTheDocument()
    expect(screen.getByText('No alert has fired yet.')).toBeInTheDocument()
  })

  it('sends a test through one notifier and through all, showing each result', async () => {
    const sent: unknown[] = []
    let notifiers = [SLACK, MAIL]
    stubMonitoring({
      '/api/admin/notifiers': () => jsonResponse(200, { notifiers }),
      '/api/admin/alerts/test': (init) => {
        const body = sentJson(init) as { notifier?: string }
        sent.push(body)
        if (body.notifier === 'mail') {
          notifiers = [SLACK, { ...MAIL, sent: 1 }]
          return jsonResponse(200, { results: [{ name: 'mail', kind: 'email', delivered: true, error: null }] })
        }
        return jsonResponse(200, {
          results: [
            { name: 'ops', kind: 'slack', delivered: false, error: 'Slack answered 404 no_service' },
            { name: 'mail', kind: 'email', delivered: true, error: null },
          ],
        })
      },
    })
    const user = userEvent.setup()
    renderAt('/admin/monitoring')

    const ops = (await screen.findByText('ops')).closest('li') as HTMLElement
    expect(ops).toHaveTextContent('https://hooks.slack.com/…')
    expect(ops).toHaveTextContent('4 sent')
    expect(ops).toHaveTextContent('1 failed')
    expect(ops).toHaveTextContent('Last error')
    expect(ops).toHaveTextContent('Slack answered 404 no_service')
    const mail = screen.getByText('mail').closest('li') as HTMLElement

    await user.click(screen.getByRole('button', { name: 'Send a test to mail' }))
    expect(await within(mail).findByRole('status')).toHaveTextContent('Test delivered.')
    await waitFor(() => expect(mail).toHaveTextContent('1 sent'))
    expect(within(ops).queryByRole('status')).not.toBeInTheDocument()

    await user.click(screen.getByRole('button', { name: 'Send a test to all' }))
    expect(await within(ops).findByRole('status')).toHaveTextContent('Test failed: Slack answered 404 no_service')
    expect(within(mail).getByRole('status')).toHaveTextContent('Test delivered.')
    expect(sent).toEqual([{ notifier: 'mail' }, {}])
  })

  it('says a test still runs when the server answers 202, and shows a refused test as an error', async () => {
    let answer = () => jsonResponse(202, { results: null, pending: true })
    stubMonitoring({
      '/api/admin/notifiers': () => jsonResponse(200, { notifiers: [SLACK] }),
      '/api/admin/alerts/test': () => answer(),
    })
    const user = userEvent.setup()
    renderAt('/admin/monitoring')

    await user.click(await screen.findByRole('button', { name: 'Send a test to ops' }))
    expect(await screen.findByRole('status')).toHaveTextContent('Still sending in the background')

    answer = () => errorResponse(429, 'rate_limited', 'Too many requests', { 'Retry-After': '12' })
    await user.click(screen.getByRole('button', { name: 'Send a test to ops' }))
    expect(await screen.findByRole('alert')).toHaveTextContent('12')
  })

  it('explains how to add a notifier when none is configured', async () => {
    stubMonitoring()
    renderAt('/admin/monitoring')

    expect(await screen.findByText(/No notifiers are configured/)).toBeInTheDocument()
    expect(screen.getByText(/\[\[alerts\.notifiers\]\]/)).toHaveTextContent('aimake.toml')
    expect(screen.queryByRole('button', { name: 'Send a test to all' })).not.toBeInTheDocument()
  })

  it('is for admins only', async () => {
    stubMonitoring({ '/api/me': () => jsonResponse(200, { ...ADMIN, role: 'user' }) })
    renderAt('/admin/monitoring')
    expect(await screen.findByRole('alert')).toBeInTheDocument()
    expect(screen.queryByRole('link', { name: 'Monitoring' })).not.toBeInTheDocument()
  })

  it('is in Chinese too', async () => {
    stubMonitoring()
    renderAt('/admin/monitoring', 'zh-CN')
    expect(await screen.findByRole('heading', { name: '监控', level: 1 })).toBeInTheDocument()
    expect(await screen.findByRole('figure', { name: '每秒请求数' })).toBeInTheDocument()
    expect(screen.getByText(/尚未配置通知渠道/)).toBeInTheDocument()
  })
})
