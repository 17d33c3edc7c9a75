// For admins: how the server is doing, minute by minute over the last hour or day (traffic,
// jobs, providers, cost, disk, database, backups), the alerts firing now and before, and the
// alert notifiers with a test button each.

import { useMemo, useState } from 'react'
import { getMetricsSeries, listAlerts, listNotifiers, testNotifiers } from '../api.ts'
import type { Alert, MetricsSeries, Notifier, NotifierTest, SeriesRange, Severity } from '../api.ts'
import { Chart } from '../components/Chart.tsx'
import { ErrorMessage } from '../components/ErrorMessage.tsx'
import { LoadMore } from '../components/LoadMore.tsx'
import { ProgressBar } from '../components/ProgressBar.tsx'
import { useI18n } from '../i18n.ts'
import type { MessageKey } from '../i18n.ts'
import { formatDate, formatNumber } from '../lib/format.ts'
import { alignedData, formatValue, monitoringCharts, readouts } from '../lib/monitoring.ts'
import type { ChartData, Readout } from '../lib/monitoring.ts'
import { useLoad } from '../lib/useLoad.ts'
import { usePaged } from '../lib/usePaged.ts'
import { usePoll } from '../lib/usePoll.ts'

/** The series gains a minute every minute: ask again as often. */
export const SERIES_POLL_MS = 60_000

const RANGES: readonly { range: SeriesRange; label: MessageKey }[] = [
  { range: '1h', label: 'monitoring.lastHour' },
  { range: '24h', label: 'monitoring.lastDay' },
]

const SEVERITY: Record<Severity, { label: MessageKey; badge: string }> = {
  critical: { label: 'monitoring.severity.critical', badge: 'badge-bad' },
  warning: { label: 'monitoring.severity.warning', badge: 'badge-warn' },
  info: { label: 'monitoring.severity.info', badge: 'badge-pending' },
}

export default function MonitoringPage() {
  const { t } = useI18n()
  return (
    <div className="stack">
      <h1>{t('monitoring.title')}</h1>
      <Charts />
      <Alerts />
      <Notifiers />
    </div>
  )
}

function Charts() {
  const { t, language } = useI18n()
  const [range, setRange] = useState<SeriesRange>('1h')
  const series = useLoad((signal) => getMetricsSeries(range, { signal }), range)
  usePoll(true, SERIES_POLL_MS, async (signal) => {
    const next = await getMetricsSeries(range, { signal })
    if (next.range === range) series.set(() => next)
  })
  const data = series.data
  const charts = useMemo(() => (data === null ? [] : monitoringCharts(data.minutes)), [data])
  const read = useMemo(() => (data === null ? null : readouts(data, language)), [data, language])

  return (
    <section className="card stack-sm" aria-labelledby="monitoring-charts">
      <div className="card-head">
        <h2 id="monitoring-charts">{t('monitoring.server')}</h2>
        <div className="segmented" role="group" aria-label={t('monitoring.range')}>
          {RANGES.map((r) => (
            <button
              key={r.range}
              type="button"
              className="button button-quiet"
              aria-pressed={range === r.range}
              onClick={() => setRange(r.range)}
            >
              {t(r.label)}
            </button>
          ))}
        </div>
      </div>
      <p className="muted">{t('monitoring.intro')}</p>
      {series.state.kind === 'failed' && <ErrorMessage error={series.state.error} />}
      {data !== null && data.window.requests === 0 && <p className="muted">{t('monitoring.noTraffic')}</p>}
      {data !== null && read !== null && (
        <div className="charts">
          {charts.map((chart) => (
            <ChartCard key={chart.id} chart={chart} readout={read[chart.id]} series={data} />
          ))}
        </div>
      )}
    </section>
  )
}

function ReadoutText({ readout }: { readout: Readout }) {
  const { t } = useI18n()
  return (
    <p className="readout">
      {readout.map((part, i) => (
        <span key={i}>
          {i > 0 && <span className="muted"> · </span>}
          {part.label !== undefined && <span className="muted">{t(part.label)} </span>}
          {part.text}
        </span>
      ))}
    </p>
  )
}

function ChartCard({ chart, readout, series }: { chart: ChartData; readout: Readout; series: MetricsSeries }) {
  const { t, language } = useI18n()
  const data = useMemo(() => alignedData(chart), [chart])
  const lines = useMemo(() => chart.lines.map((line) => t(line.label)), [chart, t])
  const title = t(chart.title)
  const budget = series.daily_budget_usd
  return (
    <figure className="chart-card" aria-labelledby={`chart-${chart.id}`}>
      <figcaption className="chart-head">
        <h3 id={`chart-${chart.id}`}>{title}</h3>
        <ReadoutText readout={readout} />
      </figcaption>
      {chart.id === 'cost' && budget !== null && (
        <ProgressBar value={budget > 0 ? series.cost_today_usd / budget : 1} label={t('monitoring.budgetUsed')} />
      )}
      <Chart label={title} data={data} lines={lines} format={(v) => formatValue(v, chart.unit, language)} />
    </figure>
  )
}

function Alerts() {
  const { t } = useI18n()
  const [active, setActive] = useState<Alert[] | null>(null)
  const history = usePaged(async (cursor, signal) => {
    const page = await listAlerts({ cursor, limit: 20 }, { signal })
    if (cursor === null) setActive(page.active)
    return page
  }, 'alerts')

  return (
    <section className="card stack-sm" aria-labelledby="monitoring-alerts">
      <div className="card-head">
        <h2 id="monitoring-alerts">{t('monitoring.alerts')}</h2>
        <button type="button" className="button button-quiet" onClick={history.reload}>
          {t('action.refresh')}
        </button>
      </div>
      {history.error !== null && <ErrorMessage error={history.error} />}
      <h3 id="monitoring-active">{t('monitoring.firing')}</h3>
      {active !== null && active.length === 0 && <p className="muted">{t('monitoring.noFiring')}</p>}
      {active !== null && active.length > 0 && (
        <ul className="items" aria-labelledby="monitoring-active">
          {active.map((alert) => (
            <AlertRow key={alert.id} alert={alert} />
          ))}
        </ul>
      )}
      <h3 id="monitoring-history">{t('monitoring.history')}</h3>
      {history.loaded && history.items.length === 0 && <p className="muted">{t('monitoring.noAlerts')}</p>}
      {history.items.length > 0 && (
        <ul className="items" aria-labelledby="monitoring-history">
          {history.items.map((alert) => (
            <AlertRow key={alert.id} alert={alert} />
          ))}
        </ul>
      )}
      {history.hasMore && !history.loading && <LoadMore onLoad={history.loadMore} />}
    </section>
  )
}

function AlertRow({ alert }: { alert: Alert }) {
  const { t, language } = useI18n()
  const severity = SEVERITY[alert.severity] ?? SEVERITY.info
  return (
    <li className="item alert-row">
      <div className="item-head">
        <span className="item-title">{alert.summary}</span>
        <span className={`badge ${severity.badge}`}>{t(severity.label)}</span>
      </div>
      <p className="meta muted">
        <span className="mono">{alert.rule}</span>
        <span>{t('monitoring.firedAt', { date: formatDate(alert.fired_at, language) })}</span>
        <span>
          {alert.resolved_at === null
            ? t('monitoring.stillFiring')
            : t('monitoring.resolvedAt', { date: formatDate(alert.resolved_at, language) })}
        </span>
        <span>{t('monitoring.notifications', { count: formatNumber(alert.notifications, language) })}</span>
      </p>
    </li>
  )
}

/** What a test said per notifier: its result, or that it still runs in the background. */
type Outcome = { kind: 'result'; delivered: boolean; error: string | null } | { kind: 'pending' }

function Notifiers() {
  const { t } = useI18n()
  const notifiers = useLoad((signal) => listNotifiers({ signal }), 'notifiers')
  const [outcomes, setOutcomes] = useState<Record<string, Outcome>>({})
  const [busy, setBusy] = useState<string | null>(null)
  const [error, setError] = useState<unknown>(null)
  const list = notifiers.data

  /** Tests one notifier by name, or every one with `null`. */
  const test = async (name: string | null) => {
    setBusy(name ?? '')
    setError(null)
    try {
      const answer: NotifierTest = await testNotifiers(name ?? undefined)
      const tested = name === null ? (list ?? []).map((n) => n.name) : [name]
      setOutcomes((previous) => {
        const next = { ...previous }
        if (answer.results === null) {
          for (const n of tested) next[n] = { kind: 'pending' }
        } else {
          for (const r of answer.results) next[r.name] = { kind: 'result', delivered: r.delivered, error: r.error }
        }
        return next
      })
      notifiers.reload()
    } catch (caught) {
      setError(caught)
    } finally {
      setBusy(null)
    }
  }

  return (
    <section className="card stack-sm" aria-labelledby="monitoring-notifiers">
      <div className="card-head">
        <h2 id="monitoring-notifiers">{t('monitoring.notifiers')}</h2>
        <span className="actions">
          <button type="button" className="button button-quiet" onClick={notifiers.reload}>
            {t('action.refresh')}
          </button>
          {list !== null && list.length > 0 && (
            <button type="button" className="button" disabled={busy !== null} onClick={() => void test(null)}>
              {t('monitoring.testAll')}
            </button>
          )}
        </span>
      </div>
      {notifiers.state.kind === 'failed' && <ErrorMessage error={notifiers.state.error} />}
      {error !== null && <ErrorMessage error={error} />}
      {list !== null && list.length === 0 && (
        <div className="stack-sm">
          <p>{t('monitoring.noNotifiers')}</p>
          <p className="muted">{t('monitoring.noNotifiersHow')}</p>
        </div>
      )}
      {list !== null && list.length > 0 && (
        <ul className="items">
          {list.map((notifier) => (
            <NotifierRow
              key={notifier.name}
              notifier={notifier}
              outcome={outcomes[notifier.name]}
              busy={busy !== null}
              onTest={() => void test(notifier.name)}
            />
          ))}
        </ul>
      )}
    </section>
  )
}

function NotifierRow({
  notifier,
  outcome,
  busy,
  onTest,
}: {
  notifier: Notifier
  outcome: Outcome | undefined
  busy: boolean
  onTest: () => void
}) {
  const { t, language } = useI18n()
  return (
    <li className="item alert-row">
      <div className="item-head">
        <span className="item-title">
          <span className="mono">{notifier.name}</span> <span className="muted">· {notifier.kind}</span>
        </span>
        <button
          type="button"
          className="button button-quiet"
          disabled={busy}
          aria-label={t('monitoring.testNamed', { name: notifier.name })}
          onClick={onTest}
        >
          {t('monitoring.test')}
        </button>
      </div>
      <p className="mono notifier-target">{notifier.target}</p>
      <p className="meta muted">
        <span>{t('monitoring.sent', { count: formatNumber(notifier.sent, language) })}</span>
        <span>{t('monitoring.failedCount', { count: formatNumber(notifier.failed, language) })}</span>
      </p>
      {notifier.last_error !== null && (
        <p className="error-inline">
          {notifier.last_error_at === null
            ? t('monitoring.lastError', { error: notifier.last_error })
            : t('monitoring.lastErrorAt', {
                error: notifier.last_error,
                date: formatDate(notifier.last_error_at, language),
              })}
        </p>
      )}
      {outcome !== undefined && (
        <p role="status" className={outcome.kind === 'result' && !outcome.delivered ? 'error-inline' : undefined}>
          {outcome.kind === 'pending'
            ? t('monitoring.testPending')
            : outcome.delivered
              ? t('monitoring.testDelivered')
              : t('monitoring.testFailed', { error: outcome.error ?? '' })}
        </p>
      )}
    </li>
  )
}
