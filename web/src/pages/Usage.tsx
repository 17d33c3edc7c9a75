// What the user used and what it cost, per day and service, and the monthly quota.

import { useEffect, useState } from 'react'
import { getUsage } from '../api.ts'
import { ErrorMessage } from '../components/ErrorMessage.tsx'
import { Field } from '../components/Field.tsx'
import { ProgressBar } from '../components/ProgressBar.tsx'
import { UsageChart } from '../components/UsageChart.tsx'
import { useI18n } from '../i18n.ts'
import { formatMoney, formatNumber, isoDay } from '../lib/format.ts'
import { serviceColor, usageSeries } from '../lib/usage.ts'
import type { Metric } from '../lib/usage.ts'
import { useLoad } from '../lib/useLoad.ts'
import { useSession } from '../session.ts'

const PRESETS = [7, 30, 90] as const

function rangeOf(days: number): { from: string; to: string } {
  const to = new Date()
  const from = new Date(to.getTime() - (days - 1) * 86_400_000)
  return { from: isoDay(from), to: isoDay(to) }
}

export default function UsagePage() {
  const { t, language } = useI18n()
  const { user, refresh } = useSession()
  const [range, setRange] = useState(() => rangeOf(30))
  const [metric, setMetric] = useState<Metric>('units')
  const usage = useLoad((signal) => getUsage(range.from, range.to, { signal }), `${range.from}|${range.to}`)

  useEffect(() => {
    void refresh()
  }, [refresh])

  const rows = usage.data ?? []
  const series = usageSeries(rows, range.from, range.to, metric)
  const totalUnits = series.totals.reduce((sum, s) => sum + s.units, 0)
  const totalCost = series.totals.reduce((sum, s) => sum + s.cost_micros, 0)
  const quota = user?.quota
  const viaGateway = series.gateway.some((g) => g.units > 0)

  return (
    <div className="stack">
      <h1>{t('usage.title')}</h1>

      {quota !== undefined && (
        <section className="card stack-sm" aria-labelledby="usage-quota">
          <h2 id="usage-quota">{t('usage.quota')}</h2>
          {quota.chars_per_month === null ? (
            <p>{t('usage.unlimited', { used: formatNumber(quota.chars_used_this_month, language) })}</p>
          ) : (
            <>
              <ProgressBar
                value={quota.chars_per_month > 0 ? quota.chars_used_this_month / quota.chars_per_month : 1}
                label={t('usage.quota')}
              />
              <p>
                {t('usage.quotaText', {
                  used: formatNumber(quota.chars_used_this_month, language),
                  limit: formatNumber(quota.chars_per_month, language),
                })}
              </p>
            </>
          )}
        </section>
      )}

      <section className="card stack-sm" aria-labelledby="usage-chart">
        <h2 id="usage-chart">{t('usage.perDay')}</h2>
        <div className="filters">
          <Field label={t('usage.range')}>
            <select
              value={PRESETS.find((d) => {
                const r = rangeOf(d)
                return r.from === range.from && r.to === range.to
              }) ?? ''}
              onChange={(event) => {
                const days = Number(event.target.value)
                if (days > 0) setRange(rangeOf(days))
              }}
            >
              {PRESETS.map((d) => (
                <option key={d} value={d}>
                  {t('usage.lastDays', { days: d })}
                </option>
              ))}
              <option value="">{t('usage.custom')}</option>
            </select>
          </Field>
          <Field label={t('usage.from')}>
            <input
              type="date"
              value={range.from}
              max={range.to}
              onChange={(event) => event.target.value !== '' && setRange({ ...range, from: event.target.value })}
            />
          </Field>
          <Field label={t('usage.to')}>
            <input
              type="date"
              value={range.to}
              min={range.from}
              onChange={(event) => event.target.value !== '' && setRange({ ...range, to: event.target.value })}
            />
          </Field>
          <Field label={t('usage.metric')}>
            <select value={metric} onChange={(event) => setMetric(event.target.value as Metric)}>
              <option value="units">{t('usage.units')}</option>
              <option value="cost_micros">{t('usage.cost')}</option>
            </select>
          </Field>
        </div>
        {usage.state.kind === 'failed' && <ErrorMessage error={usage.state.error} />}
        <UsageChart
          series={series}
          label={t('usage.chartLabel', { from: range.from, to: range.to })}
        />
        <p className="muted chart-range">
          <span>{range.from}</span>
          <span>{range.to}</span>
        </p>
        {rows.length === 0 && usage.state.kind === 'ok' && <p className="muted">{t('usage.none')}</p>}
        <div className="table-wrap">
          <table className="table">
            <thead>
              <tr>
                <th scope="col">{t('usage.service')}</th>
                <th scope="col" className="num">
                  {t('usage.units')}
                </th>
                <th scope="col" className="num">
                  {t('usage.cost')}
                </th>
                {viaGateway && (
                  <th scope="col" className="num" title={t('usage.gatewayHint')}>
                    {t('usage.gateway')}
                  </th>
                )}
              </tr>
            </thead>
            <tbody>
              {series.services.map((service, index) => (
                <tr key={service}>
                  <th scope="row">
                    <span className="swatch" style={{ background: serviceColor(index) }} aria-hidden="true" />
                    <span className="mono">{service}</span>
                  </th>
                  <td className="num">{formatNumber(series.totals[index]?.units ?? 0, language)}</td>
                  <td className="num">{formatMoney(series.totals[index]?.cost_micros ?? 0, language)}</td>
                  {viaGateway && (
                    <td className="num">{formatNumber(series.gateway[index]?.units ?? 0, language)}</td>
                  )}
                </tr>
              ))}
            </tbody>
            <tfoot>
              <tr>
                <th scope="row">{t('usage.total')}</th>
                <td className="num">{formatNumber(totalUnits, language)}</td>
                <td className="num">{formatMoney(totalCost, language)}</td>
                {viaGateway && (
                  <td className="num">
                    {formatNumber(
                      series.gateway.reduce((sum, g) => sum + g.units, 0),
                      language,
                    )}
                  </td>
                )}
              </tr>
            </tfoot>
          </table>
        </div>
      </section>
    </div>
  )
}
