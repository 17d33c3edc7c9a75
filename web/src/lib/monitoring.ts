// The Monitoring page's figures from the minute series (GET /api/admin/metrics/series): one
// line per measure over the minutes, the read-out next to each chart's title, and how each
// unit is written.

import type { AlignedData } from 'uplot'
import type { KindCounts, KindLatency, MetricsSeries, ProviderKind, Sampled, SeriesMinute } from '../api.ts'
import type { Language, MessageKey } from '../i18n.ts'
import { formatBytes, formatDate, formatMoney, formatPercent, formatSeconds } from './format.ts'

/** How a chart's values are written. */
export type Unit = 'rate' | 'share' | 'seconds' | 'count' | 'bytes' | 'usd' | 'hours'

export interface Line {
  label: MessageKey
  /** One per minute; null where there is nothing to show (no requests, no sample). */
  values: (number | null)[]
}

export type ChartId =
  | 'requests'
  | 'errors'
  | 'latency'
  | 'jobs'
  | 'providerErrors'
  | 'providerLatency'
  | 'cost'
  | 'disk'
  | 'database'
  | 'backup'

export interface ChartData {
  id: ChartId
  title: MessageKey
  unit: Unit
  /** Unix seconds of each minute's start. */
  x: number[]
  lines: Line[]
}

const KINDS: readonly { kind: ProviderKind; label: MessageKey }[] = [
  { kind: 'tts', label: 'monitoring.kind.tts' },
  { kind: 'llm', label: 'monitoring.kind.llm' },
  { kind: 'asr', label: 'monitoring.kind.asr' },
]

function share(part: number, whole: number): number | null {
  return whole > 0 ? part / whole : null
}

function gauge(minutes: readonly SeriesMinute[], pick: (s: Sampled) => number | null): (number | null)[] {
  return minutes.map((m) => (m.sampled === null ? null : pick(m.sampled)))
}

/** Hours from a minute's start back to the last backup it knew of. */
function backupAge(start: number, s: Sampled): number | null {
  return s.last_backup_unix > 0 ? Math.max(0, start - s.last_backup_unix) / 3600 : null
}

/** Every chart of the page, in the order shown. */
export function monitoringCharts(minutes: readonly SeriesMinute[]): ChartData[] {
  const x = minutes.map((m) => m.start)
  const chart = (id: ChartId, title: MessageKey, unit: Unit, lines: Line[]): ChartData => ({ id, title, unit, x, lines })
  const perKind = (pick: (m: SeriesMinute, kind: ProviderKind) => number | null): Line[] =>
    KINDS.map(({ kind, label }) => ({ label, values: minutes.map((m) => pick(m, kind)) }))
  let spent = 0
  const cumulativeCost = minutes.map((m) => (spent += m.cost_usd))

  return [
    chart('requests', 'monitoring.requests', 'rate', [
      { label: 'monitoring.line.requests', values: minutes.map((m) => m.requests / 60) },
    ]),
    chart('errors', 'monitoring.errors', 'share', [
      { label: 'monitoring.line.errors', values: minutes.map((m) => share(m.errors_5xx, m.requests)) },
    ]),
    chart('latency', 'monitoring.latency', 'seconds', [
      { label: 'monitoring.line.p50', values: minutes.map((m) => m.p50_s) },
      { label: 'monitoring.line.p99', values: minutes.map((m) => m.p99_s) },
    ]),
    chart('jobs', 'monitoring.jobs', 'count', [
      { label: 'monitoring.line.queued', values: gauge(minutes, (s) => s.jobs_queued) },
      { label: 'monitoring.line.running', values: gauge(minutes, (s) => s.jobs_running) },
      { label: 'monitoring.line.failed', values: gauge(minutes, (s) => s.jobs_failed) },
    ]),
    chart(
      'providerErrors',
      'monitoring.providerErrors',
      'share',
      perKind((m, kind) => share(m.provider_errors[kind], m.provider_calls[kind])),
    ),
    chart('providerLatency', 'monitoring.providerLatency', 'seconds', perKind((m, kind) => m.provider_p99_s[kind])),
    chart('cost', 'monitoring.cost', 'usd', [{ label: 'monitoring.line.cost', values: cumulativeCost }]),
    chart('disk', 'monitoring.disk', 'share', [
      { label: 'monitoring.line.diskFree', values: gauge(minutes, (s) => s.disk_free_permille / 1000) },
    ]),
    chart('database', 'monitoring.database', 'bytes', [
      { label: 'monitoring.line.db', values: gauge(minutes, (s) => s.db_bytes) },
      { label: 'monitoring.line.wal', values: gauge(minutes, (s) => s.wal_bytes) },
    ]),
    chart('backup', 'monitoring.backup', 'hours', [
      {
        label: 'monitoring.line.backupAge',
        values: minutes.map((m) => (m.sampled === null ? null : backupAge(m.start, m.sampled))),
      },
    ]),
  ]
}

/** The arrays uPlot draws: the minutes' starts, then one array per line. */
export function alignedData(chart: Pick<ChartData, 'x' | 'lines'>): AlignedData {
  return [chart.x, ...chart.lines.map((line) => line.values)]
}

/**
 * The indices of values with no value on either side: a line cannot show them, so the chart
 * draws them as dots (a single minute with requests in a quiet hour).
 */
export function isolatedPoints(values: ArrayLike<number | null | undefined>): number[] {
  const present = (i: number) => i >= 0 && i < values.length && values[i] != null
  const out: number[] = []
  for (let i = 0; i < values.length; i++) {
    if (present(i) && !present(i - 1) && !present(i + 1)) out.push(i)
  }
  return out
}

/** Writes a value of `unit` the way the page shows it. */
export function formatValue(value: number | null, unit: Unit, language: Language): string {
  if (value === null || !Number.isFinite(value)) return '–'
  const number = (digits: number) => new Intl.NumberFormat(language, { maximumFractionDigits: digits })
  switch (unit) {
    case 'rate':
      return `${number(value < 10 ? 2 : 0).format(value)}/s`
    case 'share':
      return formatPercent(value, language)
    case 'seconds':
      return formatSeconds(value, language)
    case 'count':
      return number(1).format(value)
    case 'bytes':
      return formatBytes(value, language)
    case 'usd':
      return formatMoney(Math.round(value * 1e6), language)
    case 'hours':
      return `${number(1).format(value)} h`
  }
}

/**
 * One piece of a read-out: a label and a value ("p99 340 ms"), a value alone, or a label
 * alone when it says everything ("no budget").
 */
export interface ReadoutPart {
  label?: MessageKey
  text?: string
}

/** The figure next to a chart's title. */
export type Readout = ReadoutPart[]

/** The last minute that ended (the series' last one is still running). */
function lastComplete(minutes: readonly SeriesMinute[]): SeriesMinute | null {
  return minutes.length >= 2 ? (minutes[minutes.length - 2] ?? null) : (minutes[0] ?? null)
}

/**
 * Each chart's read-out: traffic from the latest complete minute, gauges from the latest
 * sample, cost from today's ledger.
 */
export function readouts(series: MetricsSeries, language: Language): Record<ChartId, Readout> {
  const minute = lastComplete(series.minutes)
  const latest = series.window.latest
  const value = (v: number | null | undefined, unit: Unit): Readout => [{ text: formatValue(v ?? null, unit, language) }]
  const labelled = (label: MessageKey, v: number | null | undefined, unit: Unit): ReadoutPart => ({
    label,
    text: formatValue(v ?? null, unit, language),
  })
  const calls: KindCounts = minute?.provider_calls ?? { tts: 0, llm: 0, asr: 0 }
  const p99: KindLatency = minute?.provider_p99_s ?? { tts: null, llm: null, asr: null }
  // Kinds without calls in that minute stay out; none at all reads as a dash.
  const perKind = (pick: (kind: ProviderKind) => number | null, unit: Unit): Readout => {
    const parts = KINDS.filter(({ kind }) => calls[kind] > 0).map(({ kind, label }) => labelled(label, pick(kind), unit))
    return parts.length > 0 ? parts : value(null, unit)
  }
  const budget = series.daily_budget_usd
  return {
    requests: value(minute === null ? null : minute.requests / 60, 'rate'),
    errors: value(minute === null ? null : share(minute.errors_5xx, minute.requests), 'share'),
    latency: [labelled('monitoring.line.p50', minute?.p50_s, 'seconds'), labelled('monitoring.line.p99', minute?.p99_s, 'seconds')],
    jobs: [
      labelled('monitoring.line.queued', latest?.jobs_queued, 'count'),
      labelled('monitoring.line.running', latest?.jobs_running, 'count'),
      labelled('monitoring.line.failed', latest?.jobs_failed, 'count'),
    ],
    providerErrors: perKind((kind) => share(minute?.provider_errors[kind] ?? 0, calls[kind]), 'share'),
    providerLatency: perKind((kind) => p99[kind], 'seconds'),
    cost: [
      labelled('monitoring.today', series.cost_today_usd, 'usd'),
      budget === null ? { label: 'monitoring.noBudget' } : labelled('monitoring.budget', budget, 'usd'),
    ],
    disk: value(latest === null ? null : latest.disk_free_permille / 1000, 'share'),
    database: [labelled('monitoring.line.db', latest?.db_bytes, 'bytes'), labelled('monitoring.line.wal', latest?.wal_bytes, 'bytes')],
    backup:
      latest === null
        ? value(null, 'hours')
        : latest.last_backup_unix > 0
          ? [{ text: formatDate(new Date(latest.last_backup_unix * 1000).toISOString(), language) }]
          : [{ label: 'monitoring.noBackup' }],
  }
}
