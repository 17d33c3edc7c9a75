import { describe, expect, it } from 'vitest'
import { START, sample, seriesOf } from '../test/series.ts'
import { alignedData, formatValue, isolatedPoints, monitoringCharts, readouts } from './monitoring.ts'
import type { ChartData, ChartId } from './monitoring.ts'

function byId(charts: ChartData[], id: ChartId): ChartData {
  const chart = charts.find((c) => c.id === id)
  if (chart === undefined) throw new Error(`no chart ${id}`)
  return chart
}

const series = seriesOf('1h', 4, {
  0: { requests: 120, errors_5xx: 6, p50_s: 0.012, p99_s: 0.5, cost_usd: 0.25 },
  1: {
    sampled: sample({ jobs_queued: 3, jobs_running: 1, jobs_failed: 2, db_bytes: 4096, last_backup_unix: START - 7200 }),
    provider_calls: { tts: 4, llm: 0, asr: 0 },
    provider_errors: { tts: 1, llm: 0, asr: 0 },
    provider_p99_s: { tts: 1.5, llm: null, asr: null },
    cost_usd: 0.5,
  },
  2: { requests: 30, p50_s: 0.002, p99_s: 0.04, provider_calls: { tts: 2, llm: 1, asr: 0 }, provider_p99_s: { tts: 0.3, llm: 4, asr: null } },
})

describe('the minute series as chart lines', () => {
  it('gives uPlot the minutes as x and one array per line, gaps as null', () => {
    const charts = monitoringCharts(series.minutes)
    const x = [START, START + 60, START + 120, START + 180]

    expect(alignedData(byId(charts, 'requests'))).toEqual([x, [2, 0, 0.5, 0]])
    // No requests in a minute: no error rate, not zero.
    expect(alignedData(byId(charts, 'errors'))).toEqual([x, [0.05, null, 0, null]])
    expect(alignedData(byId(charts, 'latency'))).toEqual([x, [0.012, null, 0.002, null], [0.5, null, 0.04, null]])
    expect(alignedData(byId(charts, 'jobs'))).toEqual([x, [null, 3, null, null], [null, 1, null, null], [null, 2, null, null]])
    expect(alignedData(byId(charts, 'providerErrors'))).toEqual([
      x,
      [null, 0.25, 0, null],
      [null, null, 0, null],
      [null, null, null, null],
    ])
    expect(alignedData(byId(charts, 'providerLatency'))).toEqual([
      x,
      [null, 1.5, 0.3, null],
      [null, null, 4, null],
      [null, null, null, null],
    ])
    // Cost adds up over the range.
    expect(alignedData(byId(charts, 'cost'))).toEqual([x, [0.25, 0.75, 0.75, 0.75]])
    expect(alignedData(byId(charts, 'disk'))).toEqual([x, [null, 0.5, null, null]])
    expect(alignedData(byId(charts, 'database'))).toEqual([x, [null, 4096, null, null], [null, 0, null, null]])
    // Two hours before the series started, seen one minute in.
    expect(alignedData(byId(charts, 'backup'))).toEqual([x, [null, 2 + 1 / 60, null, null]])
  })

  it('marks the values no line reaches, so they are drawn as dots', () => {
    expect(isolatedPoints([null, 2, null, 3, 4, null, 0])).toEqual([1, 6])
    expect(isolatedPoints([5])).toEqual([0])
    expect(isolatedPoints([1, 2])).toEqual([])
    expect(isolatedPoints([])).toEqual([])
  })

  it('names every line from the dictionary, the provider kinds in a fixed order', () => {
    const charts = monitoringCharts(series.minutes)
    expect(byId(charts, 'providerLatency').lines.map((l) => l.label)).toEqual([
      'monitoring.kind.tts',
      'monitoring.kind.llm',
      'monitoring.kind.asr',
    ])
    expect(charts.map((c) => c.id)).toEqual([
      'requests',
      'errors',
      'latency',
      'jobs',
      'providerErrors',
      'providerLatency',
      'cost',
      'disk',
      'database',
      'backup',
    ])
  })
})

describe('read-outs', () => {
  it('read traffic from the last complete minute and gauges from the latest sample', () => {
    const read = readouts({ ...series, cost_today_usd: 1.5, daily_budget_usd: 5 }, 'en')
    expect(read.requests).toEqual([{ text: '0.5/s' }])
    expect(read.errors).toEqual([{ text: '0%' }])
    expect(read.latency).toEqual([
      { label: 'monitoring.line.p50', text: '2 ms' },
      { label: 'monitoring.line.p99', text: '40 ms' },
    ])
    expect(read.jobs.map((p) => p.text)).toEqual(['3', '1', '2'])
    // Only the kinds that were called.
    expect(read.providerLatency).toEqual([
      { label: 'monitoring.kind.tts', text: '300 ms' },
      { label: 'monitoring.kind.llm', text: '4 s' },
    ])
    expect(read.cost).toEqual([
      { label: 'monitoring.today', text: '$1.50' },
      { label: 'monitoring.budget', text: '$5.00' },
    ])
    expect(read.disk).toEqual([{ text: '50%' }])
  })

  it('say so when there is nothing to read: no traffic, no budget, no backup', () => {
    const quiet = seriesOf('1h', 3, { 1: { sampled: sample() } })
    const read = readouts(quiet, 'en')
    expect(read.errors).toEqual([{ text: '–' }])
    expect(read.providerErrors).toEqual([{ text: '–' }])
    expect(read.cost[1]).toEqual({ label: 'monitoring.noBudget' })
    expect(read.backup).toEqual([{ label: 'monitoring.noBackup' }])
  })
})

describe('values', () => {
  it('are written in the unit of their chart', () => {
    expect(formatValue(0.0004, 'seconds', 'en')).toBe('0.4 ms')
    expect(formatValue(2.5, 'seconds', 'en')).toBe('2.5 s')
    expect(formatValue(0.123, 'share', 'en')).toBe('12.3%')
    expect(formatValue(12.345, 'rate', 'en')).toBe('12/s')
    expect(formatValue(3 * 1024 * 1024, 'bytes', 'en')).toBe('3 MB')
    expect(formatValue(0.0123, 'usd', 'en')).toBe('$0.0123')
    expect(formatValue(26.04, 'hours', 'en')).toBe('26 h')
    expect(formatValue(null, 'count', 'en')).toBe('–')
  })
})
